/* test_model_qwen25vl.c — Qwen2.5-VL / Qwen2-VL parity with transformers on tiny random models
 * (fixtures from scripts/make_qwen25vl_fixtures.py): image embeddings of the vision tower (window
 * attention over grids the windows do and do not divide), next-token logits of prompts with
 * several images, a 16-token greedy continuation and the last step's logits (decode positions
 * carry the rope delta), the same after a prefill in chunks that end inside images beside another
 * sequence, the M-RoPE delta itself, refused batches leaving the state as it was, and load errors
 * naming file and tensor. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"

#include "engine/engine.h"
#include "engine/sampler.h"
#include "models/model.h"
#include "models/processor.h"
#include "models/qwen25vl.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"
#include "util/threadpool.h"

#define MAX_IMG 4

struct ref {
    json_t  *j;
    int32_t *ids;
    int      n_ids, n_vocab, n_images, delta;
    float   *logits, *last, *pixels, *embeds;
    int32_t  greedy[16];
    struct vlm_image_input img[MAX_IMG];
};

static void *read_all(const char *dir, const char *name, size_t *len) {
    char *p = vlm_path_join(dir, name), *data = NULL;
    struct vlm_error err;
    if (vlm_read_file(p, 1u << 30, &data, len, &err) != VLM_OK) data = NULL;
    vlm_free(p);
    return data;
}

static float *floats(json_t *a, int *n) {
    *n = (int)json_array_size(a);
    float *f = vlm_malloc(sizeof(float) * (size_t)(*n ? *n : 1));
    for (int i = 0; i < *n; i++) f[i] = (float)json_number_value(json_array_get(a, (size_t)i));
    return f;
}

/* Reads ref.json and the tensors; images take the vision tower's patch shape (T*C, P, P). */
static int ref_load(const char *dir, const struct vlm_qwen_vision_hparams *vh, struct ref *r) {
    memset(r, 0, sizeof *r);
    size_t len, plen, elen;
    char *text = read_all(dir, "ref.json", &len);
    if (!text) return -1;
    r->j = json_loadb(text, len, 0, NULL);
    vlm_free(text);
    if (!r->j) return -1;
    json_t *ids = json_object_get(r->j, "input_ids"), *grids = json_object_get(r->j, "grid_thw");
    r->n_ids = (int)json_array_size(ids);
    r->ids = vlm_malloc(sizeof(int32_t) * (size_t)r->n_ids);
    for (int i = 0; i < r->n_ids; i++) r->ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
    int nl;
    r->logits = floats(json_object_get(r->j, "logits"), &r->n_vocab);
    r->last = floats(json_object_get(r->j, "last_logits"), &nl);
    for (int i = 0; i < 16; i++) r->greedy[i] = (int32_t)json_integer_value(json_array_get(json_object_get(r->j, "greedy"), (size_t)i));
    r->delta = (int)json_integer_value(json_object_get(r->j, "rope_delta"));
    r->pixels = read_all(dir, "pixel_values.f32", &plen);
    r->embeds = read_all(dir, "image_embeds.f32", &elen);
    r->n_images = (int)json_array_size(grids);
    size_t patches = 0, tokens = 0, pd = (size_t)vh->n_channels * vh->temporal * vh->patch_size * vh->patch_size;
    for (int i = 0; i < r->n_images && i < MAX_IMG; i++) {
        struct vlm_image_input *in = &r->img[i];
        for (int k = 0; k < 3; k++) in->grid_thw[k] = (int)json_integer_value(json_array_get(json_array_get(grids, (size_t)i), (size_t)k));
        in->n_tiles = in->grid_thw[0] * in->grid_thw[1] * in->grid_thw[2];
        in->channels = vh->n_channels * vh->temporal;
        in->height = in->width = vh->patch_size;
        in->pixels = r->pixels ? r->pixels + patches * pd : NULL;
        in->n_image_tokens = in->n_tiles / (vh->merge * vh->merge);
        patches += (size_t)in->n_tiles;
        tokens += (size_t)in->n_image_tokens;
    }
    if (!r->pixels || !r->embeds || nl != r->n_vocab || plen != patches * pd * 4 ||
        (int64_t)json_integer_value(json_object_get(r->j, "patch_dim")) != (int64_t)pd)
        return -1;
    return (int)(elen / 4 / (tokens ? tokens : 1));   /* d_model, checked by the caller */
}

static void ref_free(struct ref *r) {
    json_decref(r->j);
    vlm_free(r->ids); vlm_free(r->logits); vlm_free(r->last); vlm_free(r->pixels); vlm_free(r->embeds);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;   /* NaN counts as infinitely far */
    }
    return m;
}

/* Per prompt position: the embedding row and image of image tokens, NULL for text. */
struct rows {
    const float **embd;
    const struct vlm_image_input **img;
    float *emb;
};

static void rows_build(const struct ref *r, int d, int32_t image_token, struct rows *w) {
    size_t total = 0;
    for (int i = 0; i < r->n_images; i++) total += (size_t)r->img[i].n_image_tokens;
    w->emb = vlm_malloc(sizeof(float) * (total ? total : 1) * (size_t)d);
    w->embd = vlm_calloc((size_t)r->n_ids, sizeof *w->embd);
    w->img = vlm_calloc((size_t)r->n_ids, sizeof *w->img);
    int img = 0, row = 0;
    size_t at = 0;
    for (int p = 0; p < r->n_ids; p++) {
        if (r->ids[p] != image_token || img >= r->n_images) continue;
        w->embd[p] = w->emb + at++ * (size_t)d;
        w->img[p] = &r->img[img];
        if (++row == r->img[img].n_image_tokens) { img++; row = 0; }
    }
    CHECK_EQ_INT(img, r->n_images);
}

static void rows_free(struct rows *w) {
    vlm_free(w->emb); vlm_free(w->embd); vlm_free(w->img);
}

/* Rows [from, to) of the prompt into sequence s. */
static int feed(struct vlm_ctx *ctx, int s, const struct ref *r, const struct rows *w, int from, int to, int with_img,
                struct vlm_error *err) {
    int n = to - from;
    int32_t *pos = vlm_malloc(sizeof(int32_t) * (size_t)n), *seq = vlm_malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) { pos[i] = from + i; seq[i] = s; }
    struct vlm_batch b = {n, r->ids + from, w->embd + from, pos, seq, NULL, with_img ? w->img + from : NULL};
    int rc = vlm_ctx_decode(ctx, &b, err);
    vlm_free(pos);
    vlm_free(seq);
    return rc;
}

/* 16 greedy tokens of sequence s from logits lg at position pos; the last step's logits in last. */
static void greedy(struct vlm_ctx *ctx, int s, const float *lg, int pos, int n_vocab, int32_t *got, float *last) {
    struct vlm_error err;
    int32_t tok = vlm_argmax(lg, n_vocab);
    for (int i = 0; i < 16; i++) {
        got[i] = tok;
        int32_t p = pos + i, sq = s;
        struct vlm_batch b = {1, &tok, NULL, &p, &sq, NULL, NULL};
        if (vlm_ctx_decode(ctx, &b, &err) != VLM_OK) { CHECK_MSG(0, "decode: %s", err.msg); return; }
        tok = vlm_argmax(vlm_ctx_logits(ctx, 0), n_vocab);
    }
    memcpy(last, vlm_ctx_logits(ctx, 0), sizeof(float) * (size_t)n_vocab);
}

/* The rope delta the M-RoPE state machine reaches over the whole prompt, in chunks of `chunk`. */
static int delta_of(const struct ref *r, const struct rows *w, int merge, int chunk) {
    struct vlm_mrope_seq st;
    memset(&st, 0, sizeof st);
    int32_t *mpos = vlm_malloc(sizeof(int32_t) * 3 * (size_t)r->n_ids), *pos = vlm_malloc(sizeof(int32_t) * (size_t)r->n_ids);
    int32_t *seq = vlm_calloc((size_t)r->n_ids, sizeof(int32_t));
    struct vlm_error err;
    for (int i = 0; i < r->n_ids; i++) pos[i] = i;
    for (int at = 0; at < r->n_ids; at += chunk) {
        int n = r->n_ids - at < chunk ? r->n_ids - at : chunk;
        struct vlm_batch b = {n, r->ids + at, w->embd + at, pos + at, seq, NULL, w->img + at};
        CHECK_EQ_INT(vlm_mrope_positions(&b, merge, &st, 1, mpos, &err), VLM_OK);
    }
    vlm_free(mpos); vlm_free(pos); vlm_free(seq);
    return st.next - st.len;
}

static void check_model(const char *dir, int n_threads) {
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = 0;
    mp.n_threads = n_threads;
    struct vlm_model *m = NULL;
    int rc = vlm_model_load(dir, &mp, &m);
    CHECK_MSG(rc == VLM_OK, "%s: %s", dir, vlm_last_error());
    if (rc != VLM_OK) return;
    const struct vlm_qwen25vl *f = m->impl;
    const struct vlm_model_info *mi = vlm_model_get_info(m);
    struct ref r;
    int d = ref_load(dir, &f->vision.hp, &r);
    CHECK_MSG(d == mi->d_model, "%s: reference files unreadable or of another width (%d)", dir, d);
    if (d != mi->d_model) { ref_free(&r); vlm_model_free(m); return; }
    CHECK_EQ_INT(mi->n_vocab, r.n_vocab);
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_seq_max = 3;
    cp.n_batch_max = 2 * r.n_ids;
    cp.n_ctx = r.n_ids + 32;
    cp.n_threads = n_threads;
    struct vlm_ctx *ctx = NULL;
    struct vlm_error err;
    CHECK_EQ_INT(vlm_ctx_new(m, &cp, &ctx, &err), VLM_OK);
    if (!ctx) { ref_free(&r); vlm_model_free(m); return; }
    struct rows w;
    rows_build(&r, d, mi->image_token_id, &w);

    /* the vision tower: every image's merged embeddings in prompt order */
    size_t at = 0;
    double de = 0;
    for (int i = 0; i < r.n_images; i++) {
        size_t n = (size_t)r.img[i].n_image_tokens * (size_t)d;
        rc = vlm_ctx_encode_image(ctx, &r.img[i], w.emb + at, &err);
        CHECK_MSG(rc == VLM_OK, "encode %d: %s", i, err.msg);
        double di = max_abs_diff(w.emb + at, r.embeds + at, n);
        if (di > de) de = di;
        at += n;
    }
    CHECK_MSG(de <= 1e-4, "%s: image embeddings differ by %g", dir, de);
    {   /* another thread count: the same up to rounding (the AVX2/AVX-512 f32 GEMM's sums for
           m > 16 rows follow the row split, ~1e-6 apart; the scalar table is bit-identical) */
        struct vlm_pool *p3 = vlm_pool_new(3);
        size_t n0 = (size_t)r.img[0].n_image_tokens * (size_t)d;
        float *e3 = vlm_malloc(sizeof(float) * n0);
        CHECK(p3 && e3 && vlm_model_encode_image(m, p3, &r.img[0], e3, &err) == VLM_OK);
        double dt = e3 ? max_abs_diff(e3, w.emb, n0) : 1e9;
        CHECK_MSG(dt <= 1e-5, "%s: image embeddings with 3 threads differ by %g", dir, dt);
        vlm_free(e3);
        vlm_pool_free(p3);
    }
    int merge = f->vision.hp.merge;
    CHECK_EQ_INT(delta_of(&r, &w, merge, r.n_ids), r.delta);
    CHECK_EQ_INT(delta_of(&r, &w, merge, 5), r.delta);

    /* sequence 0: the whole prompt in one step, then 16 greedy tokens */
    rc = feed(ctx, 0, &r, &w, 0, r.n_ids, 1, &err);
    CHECK_MSG(rc == VLM_OK, "prefill: %s", err.msg);
    float *lg = rc == VLM_OK ? vlm_ctx_logits(ctx, 0) : NULL;
    double dl = lg ? max_abs_diff(lg, r.logits, (size_t)r.n_vocab) : 1e9;
    float *last = vlm_malloc(sizeof(float) * (size_t)r.n_vocab);
    int32_t got[16] = {0};
    if (lg) greedy(ctx, 0, lg, r.n_ids, r.n_vocab, got, last);
    double dz = lg ? max_abs_diff(last, r.last, (size_t)r.n_vocab) : 1e9;
    printf("  %s: %d ids, %d images, embeds %.3g, logits %.3g, 16th-step logits %.3g (tol 1e-3)\n", dir, r.n_ids,
           r.n_images, de, dl, dz);
    CHECK_MSG(dl <= 1e-3, "%s: logits differ by %g", dir, dl);
    CHECK_MSG(dz <= 1e-3, "%s: 16th decode step's logits differ by %g", dir, dz);
    CHECK_MSG(!memcmp(got, r.greedy, sizeof got), "%s: greedy continuation differs (first: %d vs %d)", dir, got[0], r.greedy[0]);

    /* an image row without its image is refused and leaves sequence 1 as it was */
    CHECK_EQ_INT(feed(ctx, 1, &r, &w, 0, r.n_ids, 0, &err), VLM_E_INVALID);
    CHECK(strstr(err.msg, "image") != NULL);
    CHECK_EQ_INT(vlm_ctx_seq_len(ctx, 1), 0);

    /* sequence 1 in chunks of 7 (ending inside images) beside sequence 2's whole prompt in
     * the first step: the same logits and continuation */
    int ok = 1;
    for (int a = 0; a < r.n_ids && ok; a += 7) {
        int b = a + 7 < r.n_ids ? a + 7 : r.n_ids, n2 = a == 0 ? r.n_ids : 0, n = (b - a) + n2;
        int32_t *ids = vlm_malloc(sizeof(int32_t) * (size_t)n), *pos = vlm_malloc(sizeof(int32_t) * (size_t)n),
                *seq = vlm_malloc(sizeof(int32_t) * (size_t)n);
        const float **er = vlm_calloc((size_t)n, sizeof *er);
        const struct vlm_image_input **ei = vlm_calloc((size_t)n, sizeof *ei);
        for (int i = 0; i < n; i++) {
            int two = i >= b - a, p = two ? i - (b - a) : a + i;
            ids[i] = r.ids[p]; er[i] = w.embd[p]; ei[i] = w.img[p]; pos[i] = p; seq[i] = two ? 2 : 1;
        }
        struct vlm_batch bb = {n, ids, er, pos, seq, NULL, ei};
        ok = vlm_ctx_decode(ctx, &bb, &err) == VLM_OK;
        CHECK_MSG(ok, "chunked prefill: %s", err.msg);
        if (ok && n2) {
            double d2 = max_abs_diff(vlm_ctx_logits(ctx, vlm_ctx_n_logits(ctx) - 1), r.logits, (size_t)r.n_vocab);
            CHECK_MSG(d2 <= 1e-3, "batched sequence 2 logits differ by %g", d2);
        }
        vlm_free(ids); vlm_free(pos); vlm_free(seq); vlm_free(er); vlm_free(ei);
    }
    if (ok) {
        double d1 = max_abs_diff(vlm_ctx_logits(ctx, 0), r.logits, (size_t)r.n_vocab);
        CHECK_MSG(d1 <= 1e-3, "chunked sequence 1 logits differ by %g", d1);
        int32_t got1[16];
        greedy(ctx, 1, vlm_ctx_logits(ctx, 0), r.n_ids, r.n_vocab, got1, last);
        CHECK_MSG(!memcmp(got1, r.greedy, sizeof got1), "chunked sequence 1's greedy continuation differs");
        /* cleared and reused: the state starts over at pos 0 */
        vlm_ctx_seq_clear(ctx, 1);
        CHECK_EQ_INT(feed(ctx, 1, &r, &w, 0, r.n_ids, 1, &err), VLM_OK);
        double d3 = max_abs_diff(vlm_ctx_logits(ctx, 0), r.logits, (size_t)r.n_vocab);
        CHECK_MSG(d3 <= 1e-3, "reused sequence 1 logits differ by %g", d3);
    }
    vlm_free(last);
    rows_free(&w);
    vlm_ctx_free(ctx);
    vlm_model_free(m);
    ref_free(&r);
}

/* ---- load errors name the file and the tensor ---- */

static void copy_to(const char *src, const char *dst, const char *name) {
    size_t len;
    void *d = read_all(src, name, &len);
    char *p = vlm_path_join(dst, name);
    FILE *f = d ? fopen(p, "wb") : NULL;
    if (f) { fwrite(d, 1, len, f); fclose(f); }
    vlm_free(p);
    vlm_free(d);
}

/* Copies the fixture with model.safetensors' header edited: every `from` becomes `to` (same
 * length, so the offsets stay valid). */
static void patched_copy(const char *src, const char *dst, const char *from, const char *to) {
    copy_to(src, dst, "config.json");
    copy_to(src, dst, "preprocessor_config.json");
    size_t len;
    char *d = read_all(src, "model.safetensors", &len);
    if (!d || len < 8) { vlm_free(d); return; }
    uint64_t hl = 0;
    for (int i = 0; i < 8; i++) hl |= (uint64_t)(uint8_t)d[i] << (8 * i);
    size_t fl = strlen(from);
    for (char *p = d + 8; p + fl <= d + 8 + hl; p++)
        if (!memcmp(p, from, fl)) memcpy(p, to, fl);
    char *p = vlm_path_join(dst, "model.safetensors");
    FILE *f = fopen(p, "wb");
    if (f) { fwrite(d, 1, len, f); fclose(f); }
    vlm_free(p);
    vlm_free(d);
}

static void expect_error(const char *dir, const char *what, const char *needle) {
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = 0;
    struct vlm_model *m = NULL;
    int rc = vlm_model_load(dir, &mp, &m);
    const char *msg = vlm_last_error();
    CHECK_MSG(rc != VLM_OK && m == NULL, "%s: loaded", what);
    CHECK_MSG(strstr(msg, needle) && strstr(msg, "model.safetensors"), "%s: message '%s' lacks '%s' or the file", what, msg, needle);
    vlm_model_free(m);
}

static void test_load_errors(const char *fixture) {
    char tmp[] = "/tmp/vlm_qwen_XXXXXX";
    if (!mkdtemp(tmp)) { CHECK_MSG(0, "mkdtemp"); return; }
    /* a missing tensor (renamed in the header) */
    patched_copy(fixture, tmp, "\"visual.merger.mlp.2.bias\"", "\"visual.merger.mlp.2.biaX\"");
    expect_error(tmp, "missing merger bias", "visual.merger.mlp.2.bias");
    /* a tensor of the wrong shape: q_proj.bias and k_proj.bias of layer 0 swapped (GQA sizes) */
    patched_copy(fixture, tmp, "layers.0.self_attn.q_proj.bias", "layers.0.self_attn.Q_proj.bias");
    patched_copy(tmp, tmp, "layers.0.self_attn.k_proj.bias", "layers.0.self_attn.q_proj.bias");
    patched_copy(tmp, tmp, "layers.0.self_attn.Q_proj.bias", "layers.0.self_attn.k_proj.bias");
    expect_error(tmp, "swapped q/k biases", "model.layers.0.self_attn.q_proj.bias");
    /* the Conv3d patch embedding of the wrong temporal size is a shape error too */
    patched_copy(fixture, tmp, "\"visual.patch_embed.proj.weight\"", "\"visual.patch_embed.proj.weighX\"");
    expect_error(tmp, "missing patch embedding", "visual.patch_embed.proj.weight");
    const char *files[] = {"config.json", "preprocessor_config.json", "model.safetensors"};
    for (size_t i = 0; i < 3; i++) {
        char *p = vlm_path_join(tmp, files[i]);
        unlink(p);
        vlm_free(p);
    }
    rmdir(tmp);
}

/* Sections that all read the same position are plain RoPE; the window order of a 3x5 merged
 * grid in 2x2 windows (partial windows at the right and bottom, as transformers pads). */
static void test_pieces(void) {
    float a[2 * 3 * 16], b[2 * 3 * 16], inv[8];
    for (int i = 0; i < 96; i++) a[i] = b[i] = sinf((float)i * 0.37f);
    int32_t pos[2] = {7, 1234}, pos3[6] = {7, 7, 7, 1234, 1234, 1234};
    int sec[3] = {2, 3, 3};
    struct vlm_rope_params rp = {.type = VLM_ROPE_DEFAULT, .theta = 10000.0f, .rot_dim = 16};
    vlm_rope_inv_freq(&rp, 0, inv);
    vlm_rope_apply(a, 2, 3, 16, pos, inv, 16, 1.0f);
    vlm_rope_apply_sections(b, 2, 3, 16, pos3, 3, sec, inv);
    CHECK(max_abs_diff(a, b, 96) == 0);
    int32_t idx[16], len[16];
    int n = vlm_qwen_window_index(6, 10, 2, 2, idx, len);
    const int32_t want_idx[15] = {0, 1, 5, 6, 2, 3, 7, 8, 4, 9, 10, 11, 12, 13, 14}, want_len[6] = {4, 4, 2, 2, 2, 1};
    CHECK_EQ_INT(n, 6);
    CHECK(!memcmp(idx, want_idx, sizeof want_idx) && !memcmp(len, want_len, sizeof want_len));
    n = vlm_qwen_window_index(8, 8, 2, 2, idx, len);   /* divides: no empty windows */
    CHECK_EQ_INT(n, 4);
    CHECK(len[0] == 4 && len[3] == 4 && idx[4] == 2 && idx[15 - 1] == 14);
}

int main(void) {
    test_pieces();
    const char *tiny[] = {"q25-gqa-tied-nodiv", "q25-mha-untied-div-flat", "q25-gqa-untied-three", "q2vl-gqa-tied"};
    for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/fixtures/qwen25vl/%s", tiny[i]);
        check_model(test_path(rel), i % 2 ? 2 : 1);
    }
    test_load_errors(test_path("tests/fixtures/qwen25vl/q25-gqa-tied-nodiv"));
    TEST_MAIN_END();
}
