/* test_model_llava.c — LLaVA 1.5 (LlavaForConditionalGeneration) parity with transformers on tiny
 * random models (fixtures from scripts/make_llava_fixtures.py): the C processor's pixels from the
 * fixture PNGs, next-token logits of a prompt with images, a 16-token greedy continuation, two
 * sequences batched and chunked, and clear errors for malformed folders and inputs. The
 * LLaVA-1.5-7B-shaped folder (VLM_LLAVA_BIG or /work/models-big/llava-1.5-7b-random), when
 * present, is checked for the real processor's prompt ids and pixels. */
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "image_fixture.h"

#include "engine/engine.h"
#include "engine/prompt.h"
#include "engine/sampler.h"
#include "formats/safetensors.h"
#include "formats/weights.h"
#include "image/image.h"
#include "models/model.h"
#include "models/processor.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#define MAX_IMAGES 4

struct ref {
    json_t  *j;
    int32_t *ids;
    int      n_ids, n_vocab, n_images, size;
    float   *logits, *pixels;
    int32_t  greedy[16];
    struct vlm_image_input img[MAX_IMAGES];
};

static void *read_all(const char *dir, const char *name, size_t *len) {
    char *p = vlm_path_join(dir, name), *data = NULL;
    struct vlm_error err;
    if (vlm_read_file(p, 1u << 30, &data, len, &err) != VLM_OK) data = NULL;
    vlm_free(p);
    return data;
}

static int ref_load(const char *dir, struct ref *r) {
    memset(r, 0, sizeof *r);
    size_t len, plen;
    char *text = read_all(dir, "ref.json", &len);
    if (!text) return -1;
    r->j = json_loadb(text, len, 0, NULL);
    vlm_free(text);
    if (!r->j) return -1;
    json_t *ids = json_object_get(r->j, "input_ids"), *lg = json_object_get(r->j, "logits");
    json_t *nit = json_object_get(r->j, "n_image_tokens");
    r->n_ids = (int)json_array_size(ids);
    r->n_vocab = (int)json_array_size(lg);
    r->n_images = (int)json_array_size(nit);
    r->size = (int)json_integer_value(json_object_get(r->j, "image_size"));
    r->ids = vlm_malloc(sizeof(int32_t) * (size_t)r->n_ids);
    r->logits = vlm_malloc(sizeof(float) * (size_t)r->n_vocab);
    if (!r->ids || !r->logits || r->n_images > MAX_IMAGES) return -1;
    for (int i = 0; i < r->n_ids; i++) r->ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
    for (int i = 0; i < r->n_vocab; i++) r->logits[i] = (float)json_number_value(json_array_get(lg, (size_t)i));
    for (int i = 0; i < 16; i++) r->greedy[i] = (int32_t)json_integer_value(json_array_get(json_object_get(r->j, "greedy"), (size_t)i));
    r->pixels = read_all(dir, "pixel_values.f32", &plen);
    size_t per = (size_t)3 * r->size * r->size, off = 0;
    json_t *nt = json_object_get(r->j, "n_tiles"), *sz = json_object_get(r->j, "image_sizes");
    for (int i = 0; r->pixels && i < r->n_images; i++) {
        struct vlm_image_input *in = &r->img[i];
        json_t *hw = json_array_get(sz, (size_t)i);
        in->n_tiles = (int)json_integer_value(json_array_get(nt, (size_t)i));
        in->channels = 3;
        in->height = in->width = r->size;
        in->pixels = r->pixels + off * per;
        in->orig_height = (int)json_integer_value(json_array_get(hw, 0));
        in->orig_width = (int)json_integer_value(json_array_get(hw, 1));
        in->n_image_tokens = (int)json_integer_value(json_array_get(nit, (size_t)i));
        off += (size_t)in->n_tiles;
    }
    return r->pixels && plen == per * off * sizeof(float) ? 0 : -1;
}

static void ref_free(struct ref *r) {
    json_decref(r->j);
    vlm_free(r->ids);
    vlm_free(r->logits);
    vlm_free(r->pixels);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;   /* NaN counts as infinitely far */
    }
    return m;
}

static struct vlm_model *load_model(const char *dir, int n_threads) {
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = 0;
    mp.n_threads = n_threads;
    struct vlm_model *m = NULL;
    int rc = vlm_model_load(dir, &mp, &m);
    CHECK_MSG(rc == VLM_OK, "%s: %s", dir, vlm_last_error());
    return rc == VLM_OK ? m : NULL;
}

/* The C processor on the fixture's PNGs gives transformers' pixel_values and token count. */
static void check_processor(const char *dir, const struct ref *r) {
    struct vlm_processor *p = NULL;
    struct vlm_error perr;
    CHECK_MSG(vlm_processor_load(dir, &p, &perr) == VLM_OK, "%s: %s", dir, perr.msg);
    for (int i = 0; p && i < r->n_images; i++) {
        char name[32];
        snprintf(name, sizeof name, "image_%d.png", i);
        size_t len;
        uint8_t *png = read_all(dir, name, &len);
        struct vlm_image img = {0, 0, NULL};
        struct vlm_image_input in;
        struct vlm_error err;
        memset(&in, 0, sizeof in);
        int rc = png ? vlm_image_decode(png, len, NULL, &img, &err) : VLM_E_NOT_FOUND;
        if (rc == VLM_OK) rc = vlm_processor_run(p, &img, NULL, &in, &err);
        CHECK_MSG(rc == VLM_OK, "%s/%s: %s", dir, name, rc == VLM_E_NOT_FOUND ? "unreadable" : err.msg);
        if (rc == VLM_OK) {
            CHECK(in.n_tiles == r->img[i].n_tiles && in.height == r->size && in.width == r->size);
            CHECK(in.orig_height == r->img[i].orig_height && in.orig_width == r->img[i].orig_width);
            CHECK_EQ_INT(in.n_image_tokens, r->img[i].n_image_tokens);
            size_t n = (size_t)3 * r->size * r->size * (size_t)(in.n_tiles == r->img[i].n_tiles ? in.n_tiles : 0);
            double d = max_abs_diff(in.pixels, r->img[i].pixels, n);
            CHECK_MSG(d <= 1e-5, "%s/%s: pixel values differ by %g", dir, name, d);
        }
        vlm_image_input_free(&in);
        vlm_image_free(&img);
        vlm_free(png);
    }
    vlm_processor_free(p);
}

/* Decodes rows [from, to) of the prompt into sequence s. */
static int prefill(struct vlm_ctx *ctx, int s, const struct ref *r, const float **rows, int from, int to) {
    int n = to - from;
    int32_t *pos = vlm_malloc(sizeof(int32_t) * (size_t)n), *seq = vlm_malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n; i++) { pos[i] = from + i; seq[i] = s; }
    struct vlm_batch b = {n, r->ids + from, rows + from, pos, seq, NULL, NULL};
    struct vlm_error err;
    int rc = vlm_ctx_decode(ctx, &b, &err);
    if (rc != VLM_OK) fprintf(stderr, "decode: %s\n", err.msg);
    vlm_free(pos);
    vlm_free(seq);
    return rc;
}

/* Sequence 1 prefills in two chunks, sequence 2 whole in the first of those steps: both end
 * with sequence 0's logits. */
static void check_batched(struct vlm_ctx *ctx, const struct ref *r, const float **rows, double tol) {
    int half = r->n_ids / 2, n2 = half + r->n_ids;
    int32_t *ids = vlm_malloc(sizeof(int32_t) * (size_t)n2), *pos = vlm_malloc(sizeof(int32_t) * (size_t)n2),
            *seq = vlm_malloc(sizeof(int32_t) * (size_t)n2);
    const float **er = vlm_calloc((size_t)n2, sizeof *er);
    for (int i = 0; i < n2; i++) {
        int two = i >= half, p = two ? i - half : i;
        ids[i] = r->ids[p]; er[i] = rows[p]; pos[i] = p; seq[i] = two ? 2 : 1;
    }
    struct vlm_batch b = {n2, ids, er, pos, seq, NULL, NULL};
    struct vlm_error err;
    int rc = vlm_ctx_decode(ctx, &b, &err);
    CHECK_MSG(rc == VLM_OK, "batched decode: %s", err.msg);
    if (rc == VLM_OK) {
        CHECK_EQ_INT(vlm_ctx_n_logits(ctx), 2);
        double d2 = max_abs_diff(vlm_ctx_logits(ctx, 1), r->logits, (size_t)r->n_vocab);
        CHECK_MSG(d2 <= tol, "batched seq 2 logits differ by %g", d2);
        CHECK_EQ_INT(prefill(ctx, 1, r, rows, half, r->n_ids), VLM_OK);
        double d1 = max_abs_diff(vlm_ctx_logits(ctx, 0), r->logits, (size_t)r->n_vocab);
        CHECK_MSG(d1 <= tol, "chunked seq 1 logits differ by %g", d1);
    }
    vlm_free(ids); vlm_free(pos); vlm_free(seq); vlm_free(er);
}

static void check_model(const char *dir, double tol, int n_threads, enum vlm_kv_dtype kv) {
    struct ref r;
    if (ref_load(dir, &r) != 0) { CHECK_MSG(0, "%s: reference files unreadable", dir); ref_free(&r); return; }
    struct vlm_model *m = load_model(dir, n_threads);
    if (!m) { ref_free(&r); return; }
    const struct vlm_model_info *mi = vlm_model_get_info(m);
    CHECK_EQ_INT(mi->n_vocab, r.n_vocab);
    if (kv == VLM_KV_AUTO) check_processor(dir, &r);
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_seq_max = 3;
    cp.n_batch_max = r.n_ids + r.n_ids / 2;
    cp.n_ctx = r.n_ids + 32;
    cp.n_threads = n_threads;
    cp.kv_dtype = kv;
    struct vlm_ctx *ctx = NULL;
    struct vlm_error err;
    int rc = vlm_ctx_new(m, &cp, &ctx, &err);
    CHECK_MSG(rc == VLM_OK, "ctx: %s", err.msg);
    float *emb[MAX_IMAGES] = {0};
    const float **rows = vlm_calloc((size_t)r.n_ids, sizeof *rows);
    for (int i = 0; rc == VLM_OK && i < r.n_images; i++) {
        emb[i] = vlm_malloc(sizeof(float) * (size_t)r.img[i].n_image_tokens * mi->d_model);
        rc = vlm_ctx_encode_image(ctx, &r.img[i], emb[i], &err);
        CHECK_MSG(rc == VLM_OK, "encode image %d: %s", i, err.msg);
    }
    int img = 0, row = 0;
    for (int p = 0; rc == VLM_OK && p < r.n_ids; p++) {
        if (r.ids[p] != mi->image_token_id || img >= r.n_images) continue;
        rows[p] = emb[img] + (size_t)row * mi->d_model;
        if (++row == r.img[img].n_image_tokens) { img++; row = 0; }
    }
    if (rc == VLM_OK) CHECK_EQ_INT(img, r.n_images);
    if (rc == VLM_OK && prefill(ctx, 0, &r, rows, 0, r.n_ids) == VLM_OK) {
        float *lg = vlm_ctx_logits(ctx, 0);
        double d = max_abs_diff(lg, r.logits, (size_t)r.n_vocab);
        printf("  %s (KV %s): %d ids, %d image(s), logits max abs diff %.3g (tol %g)\n", dir, vlm_kv_dtype_name(kv),
               r.n_ids, r.n_images, d, tol);
        CHECK_MSG(d <= tol, "%s: logits differ by %g", dir, d);
        int32_t tok = vlm_argmax(lg, r.n_vocab), got[16];
        for (int i = 0; i < 16; i++) {
            got[i] = tok;
            int32_t pos = r.n_ids + i, seq = 0;
            struct vlm_batch b = {1, &tok, NULL, &pos, &seq, NULL, NULL};
            if (vlm_ctx_decode(ctx, &b, &err) != VLM_OK) { CHECK_MSG(0, "decode: %s", err.msg); break; }
            tok = vlm_argmax(vlm_ctx_logits(ctx, 0), r.n_vocab);
        }
        CHECK_MSG(!memcmp(got, r.greedy, sizeof got), "%s: greedy continuation differs (first: %d vs %d)", dir, got[0], r.greedy[0]);
        check_batched(ctx, &r, rows, tol);
    } else {
        CHECK_MSG(0, "%s: prefill failed", dir);
    }
    for (int i = 0; i < MAX_IMAGES; i++) vlm_free(emb[i]);
    vlm_free(rows);
    vlm_ctx_free(ctx);
    vlm_model_free(m);
    ref_free(&r);
}

/* ---- bad inputs and malformed folders ---- */

/* An image of the wrong size or token count is refused, not mis-encoded. */
static void test_bad_inputs(const char *dir) {
    struct ref r;
    if (ref_load(dir, &r) != 0) { CHECK_MSG(0, "%s: reference unreadable", dir); ref_free(&r); return; }
    struct vlm_model *m = load_model(dir, 1);
    if (!m) { ref_free(&r); return; }
    float *emb = vlm_malloc(sizeof(float) * 64 * (size_t)vlm_model_get_info(m)->d_model);
    struct vlm_error err;
    struct vlm_image_input in = r.img[0];
    in.n_image_tokens++;
    CHECK_EQ_INT(vlm_model_encode_image(m, NULL, &in, emb, &err), VLM_E_INVALID);
    CHECK_MSG(strstr(err.msg, "image tokens") != NULL, "%s", err.msg);
    in = r.img[0];
    in.height = in.width = r.size - 2;
    CHECK_EQ_INT(vlm_model_encode_image(m, NULL, &in, emb, &err), VLM_E_INVALID);
    in = r.img[0];
    in.n_tiles = 2;
    CHECK_EQ_INT(vlm_model_encode_image(m, NULL, &in, emb, &err), VLM_E_INVALID);
    CHECK_EQ_INT(vlm_model_encode_image(m, NULL, &r.img[0], emb, &err), VLM_OK);
    vlm_free(emb);
    vlm_model_free(m);
    ref_free(&r);
}

/* LLaVA-NeXT: a tile count or original size that does not fit the pinpoints is refused, and a
 * folder without image_newline names the tensor. */
static void test_next_bad_inputs(const char *dir) {
    struct ref r;
    if (ref_load(dir, &r) != 0) { CHECK_MSG(0, "%s: reference unreadable", dir); ref_free(&r); return; }
    struct vlm_model *m = load_model(dir, 1);
    if (!m) { ref_free(&r); return; }
    float *emb = vlm_malloc(sizeof(float) * (size_t)r.img[0].n_image_tokens * (size_t)vlm_model_get_info(m)->d_model);
    struct vlm_error err;
    struct vlm_image_input in = r.img[0];
    in.n_tiles--;
    CHECK_EQ_INT(vlm_model_encode_image(m, NULL, &in, emb, &err), VLM_E_INVALID);
    CHECK_MSG(strstr(err.msg, "pinpoints") != NULL, "%s", err.msg);
    in = r.img[0];
    in.orig_height = 0;
    CHECK_EQ_INT(vlm_model_encode_image(m, NULL, &in, emb, &err), VLM_E_INVALID);
    in = r.img[0];
    in.orig_width = in.orig_height;   /* another aspect ratio: other tiles or tokens */
    CHECK_EQ_INT(vlm_model_encode_image(m, NULL, &in, emb, &err), VLM_E_INVALID);
    CHECK_EQ_INT(vlm_model_encode_image(m, NULL, &r.img[0], emb, &err), VLM_OK);
    vlm_free(emb);
    vlm_model_free(m);
    ref_free(&r);
}

static char tmpdir[256];

static void write_file(const char *dir, const char *name, const void *data, size_t len) {
    char *p = vlm_path_join(dir, name);
    FILE *f = fopen(p, "wb");
    if (f) { fwrite(data, 1, len, f); fclose(f); }
    vlm_free(p);
}

/* Writes w as tmpdir/model.safetensors without `drop`, with `grow` one row longer. */
static void write_weights(const struct vlm_weights *w, const char *drop, const char *grow) {
    json_t *h = json_object();
    size_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct vlm_weight *e = &w->w[i];
        if (drop && !strcmp(e->name, drop)) continue;
        json_t *shape = json_array();
        size_t nb = e->t.nbytes;
        for (int k = 0; k < e->t.n_dims; k++) {
            int64_t v = e->t.ne[k];
            if (k == 0 && grow && !strcmp(e->name, grow)) { nb = nb / (size_t)v * (size_t)(v + 1); v++; }
            json_array_append_new(shape, json_integer(v));
        }
        json_object_set_new(h, e->name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
                                                  "data_offsets", (json_int_t)off, (json_int_t)(off + nb)));
        off += nb;
    }
    char *hs = json_dumps(h, JSON_COMPACT);
    size_t hl = strlen(hs);
    char *p = vlm_path_join(tmpdir, "model.safetensors");
    FILE *f = fopen(p, "wb");
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(hs, 1, hl, f);
    for (size_t i = 0; i < w->n; i++) {
        const struct vlm_weight *e = &w->w[i];
        if (drop && !strcmp(e->name, drop)) continue;
        fwrite(e->t.data, 1, e->t.nbytes, f);
        if (grow && !strcmp(e->name, grow))
            for (size_t k = 0; k < e->t.nbytes / (size_t)e->t.ne[0]; k++) fputc(0, f);
    }
    fclose(f);
    vlm_free(p);
    free(hs);
    json_decref(h);
}

static void expect_load_error(const char *what, int code, const char *needle1, const char *needle2) {
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = 0;
    struct vlm_model *m = NULL;
    int rc = vlm_model_load(tmpdir, &mp, &m);
    const char *msg = vlm_last_error();
    CHECK_MSG(rc == code, "%s: rc %d (%s), expected %d", what, rc, msg, code);
    CHECK_MSG(m == NULL, "%s: model returned on failure", what);
    CHECK_MSG(!needle1 || strstr(msg, needle1), "%s: message '%s' lacks '%s'", what, msg, needle1);
    CHECK_MSG(!needle2 || strstr(msg, needle2), "%s: message '%s' lacks '%s'", what, msg, needle2);
    vlm_model_free(m);
}

/* config.json of src with the text `from` replaced by `to` (first occurrence). */
static void write_config_edit(const char *src, const char *from, const char *to) {
    size_t len;
    char *cfg = read_all(src, "config.json", &len);
    char *at = cfg ? strstr(cfg, from) : NULL;
    CHECK_MSG(at != NULL, "config.json lacks %s", from);
    if (!at) { vlm_free(cfg); return; }
    size_t fl = strlen(from), tl = strlen(to), pre = (size_t)(at - cfg);
    char *out = vlm_malloc(len - fl + tl);
    memcpy(out, cfg, pre);
    memcpy(out + pre, to, tl);
    memcpy(out + pre + tl, at + fl, len - pre - fl);
    write_file(tmpdir, "config.json", out, len - fl + tl);
    vlm_free(out);
    vlm_free(cfg);
}

static void test_malformed(const char *src) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vlm-test-llava-XXXXXX");
    if (!mkdtemp(tmpdir)) { CHECK_MSG(0, "mkdtemp"); return; }
    size_t len;
    char *cfg = read_all(src, "config.json", &len);
    if (cfg) write_file(tmpdir, "config.json", cfg, len);
    vlm_free(cfg);
    struct vlm_weights w;
    vlm_weights_init(&w);
    struct vlm_error err;
    char *stp = vlm_path_join(src, "model.safetensors");
    CHECK_EQ_INT(vlm_safetensors_load_file(stp, &w, &err), VLM_OK);
    vlm_free(stp);
    /* src uses the published names; the published names are what errors report */
    write_weights(&w, "multi_modal_projector.linear_2.weight", NULL);
    expect_load_error("missing projector", VLM_E_NOT_FOUND, "model.safetensors", "multi_modal_projector.linear_2.weight");
    write_weights(&w, "vision_tower.vision_model.encoder.layers.1.mlp.fc1.bias", NULL);
    expect_load_error("missing vision", VLM_E_NOT_FOUND, "model.safetensors", "vision_tower.vision_model.encoder.layers.1.mlp.fc1.bias");
    write_weights(&w, "vision_tower.vision_model.embeddings.class_embedding", NULL);
    expect_load_error("missing class token", VLM_E_NOT_FOUND, "model.safetensors", "vision_tower.vision_model.embeddings.class_embedding");
    write_weights(&w, "language_model.lm_head.weight", NULL);
    expect_load_error("missing head", VLM_E_NOT_FOUND, "language_model.lm_head.weight", "tie_word_embeddings");
    write_weights(&w, NULL, "multi_modal_projector.linear_1.weight");
    expect_load_error("wrong projector shape", VLM_E_FORMAT, "multi_modal_projector.linear_1.weight", "expected (40, 72)");
    write_weights(&w, NULL, "vision_tower.vision_model.embeddings.position_embedding.weight");
    expect_load_error("wrong positions", VLM_E_FORMAT, "position_embedding", "model.safetensors");
    write_weights(&w, NULL, NULL);
    struct vlm_model *m = load_model(tmpdir, 1);
    vlm_model_free(m);
    /* config values transformers would refuse or run differently */
    write_config_edit(src, "-3,", "-5,");
    expect_load_error("feature layer out of range", VLM_E_FORMAT, "config.json", "vision_feature_layer");
    write_config_edit(src, "\"vision_feature_select_strategy\": \"default\"", "\"vision_feature_select_strategy\": \"cls\"");
    expect_load_error("strategy", VLM_E_UNSUPPORTED, "config.json", "cls");
    write_config_edit(src, "\"model_type\": \"llama\"", "\"model_type\": \"gemma\"");
    expect_load_error("text model type", VLM_E_UNSUPPORTED, "config.json", "gemma");
    write_config_edit(src, "\"projector_hidden_act\": \"gelu\"", "\"projector_hidden_act\": \"relu6\"");
    expect_load_error("projector act", VLM_E_UNSUPPORTED, "config.json", "relu6");
    write_config_edit(src, "\"image_size\": 24", "\"image_size\": 25");
    expect_load_error("image size", VLM_E_FORMAT, "config.json", "patch_size");
    vlm_weights_free(&w);
    const char *names[] = {"config.json", "model.safetensors"};
    for (int i = 0; i < 2; i++) { char *p = vlm_path_join(tmpdir, names[i]); unlink(p); vlm_free(p); }
    rmdir(tmpdir);
}

/* Allocation failure at every point of loading, context creation and encoding a NeXT image
 * returns an error (no crash; LeakSanitizer checks nothing leaks in the sanitizer build). */
static void test_alloc_failures(const char *dir) {
    struct ref r;
    if (ref_load(dir, &r) != 0) { CHECK_MSG(0, "%s: reference unreadable", dir); ref_free(&r); return; }
    int ok_at = 0, failures = 0;
    for (uint64_t n = 1; n < 4000 && !ok_at; n++) {
        struct vlm_model_params mp = vlm_model_default_params();
        mp.load_tokenizer = 0;
        struct vlm_model *m = NULL;
        struct vlm_ctx *ctx = NULL;
        struct vlm_error err;
        float *emb = NULL;
        vlm_alloc_fail_after(n);
        int rc = vlm_model_load(dir, &mp, &m);
        struct vlm_ctx_params cp = vlm_ctx_default_params();
        cp.n_batch_max = 8;
        cp.n_ctx = 16;
        if (rc == VLM_OK) rc = vlm_ctx_new(m, &cp, &ctx, &err);
        if (rc == VLM_OK) {
            emb = malloc(sizeof(float) * (size_t)r.img[0].n_image_tokens * vlm_model_get_info(m)->d_model);
            rc = vlm_ctx_encode_image(ctx, &r.img[0], emb, &err);
        }
        vlm_alloc_fail_after(0);
        if (rc == VLM_OK) ok_at = (int)n;
        else failures++;
        free(emb);
        vlm_ctx_free(ctx);
        vlm_model_free(m);
    }
    printf("  allocation failures: %d failing points returned errors; success from allocation %d\n", failures, ok_at);
    CHECK(ok_at > 10);
    ref_free(&r);
}

/* LlavaNextImageProcessor with llava-v1.6's tiles on the image fixtures: tile count, original
 * size, image-token count, prompt and the pixel tensor's SHA-256 equal transformers'. */
static void test_next_processor(void) {
    char dir[1024], *text;
    size_t len;
    snprintf(dir, sizeof dir, "%s", test_path("tests/fixtures/llava/next-processor-336"));
    struct vlm_processor *p = NULL;
    struct vlm_error err;
    int rc = vlm_processor_load(dir, &p, &err);
    CHECK_MSG(rc == VLM_OK, "%s: %s", dir, err.msg);
    text = read_all(dir, "manifest.json", &len);
    json_t *man = text ? json_loadb(text, len, 0, NULL) : NULL, *c;
    vlm_free(text);
    CHECK(json_array_size(man) >= 20);
    size_t i;
    int checked = 0;
    json_array_foreach(man, i, c) {
        if (!p || (test_quick() && i % 4)) continue;
        const char *name = fx_str(c, "name");
        uint8_t *b = fx_read(name, &len);
        struct vlm_image img = {0, 0, NULL};
        struct vlm_image_input in;
        memset(&in, 0, sizeof in);
        rc = b ? vlm_image_decode(b, len, NULL, &img, &err) : VLM_E_NOT_FOUND;
        if (rc == VLM_OK) rc = vlm_processor_run(p, &img, NULL, &in, &err);
        vlm_free(b);
        vlm_image_free(&img);
        CHECK_MSG(rc == VLM_OK, "%s: %s", name, err.msg);
        if (rc != VLM_OK) continue;
        json_t *sz = json_object_get(c, "image_size");
        CHECK_EQ_INT(in.n_tiles, fx_int(c, "n_tiles"));
        CHECK(in.orig_height == json_integer_value(json_array_get(sz, 0)) &&
              in.orig_width == json_integer_value(json_array_get(sz, 1)));
        CHECK_EQ_INT(in.n_image_tokens, fx_int(c, "n_image_tokens"));
        CHECK(in.prompt && strlen(in.prompt) == 7 * (size_t)in.n_image_tokens);
        char hex[65];
        fx_sha256_hex(in.pixels, (size_t)in.n_tiles * 3 * in.height * in.width * sizeof(float), hex);
        CHECK_MSG(!strcmp(hex, fx_str(c, "sha256")), "%s: LLaVA-NeXT pixel_values differ from transformers", name);
        vlm_image_input_free(&in);
        checked++;
    }
    printf("  LLaVA-NeXT processor: %d images equal to transformers\n", checked);
    json_decref(man);
    vlm_processor_free(p);
}

/* The 7B-shaped folder: the prompt the real LlavaProcessor made (template without BOS, BOS from
 * the tokenizer's post-processor, <image> expanded to 576) and its pixels. */
static void test_big_prompt(const char *dir) {
    size_t len;
    char *text = read_all(dir, "prompt_ref.json", &len);
    json_t *ref = text ? json_loadb(text, len, 0, NULL) : NULL;
    vlm_free(text);
    size_t plen;
    float *pv = read_all(dir, "prompt_pixel_values.f32", &plen);
    uint8_t *png = read_all(dir, "test-640x480.png", &len);
    struct vlm_model_params mp = vlm_model_default_params();
    struct vlm_model *m = NULL;
    struct vlm_image img = {0, 0, NULL};
    struct vlm_error err;
    int rc = ref && pv && png ? vlm_model_load(dir, &mp, &m) : VLM_E_NOT_FOUND;
    CHECK_MSG(rc == VLM_OK, "%s: %s", dir, rc == VLM_E_NOT_FOUND ? "reference files missing" : vlm_last_error());
    if (rc == VLM_OK) rc = vlm_image_decode(png, len, NULL, &img, &err);
    if (rc == VLM_OK) {
        const struct vlm_image *ip = &img;
        json_t *msgs = json_loads("[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":\"x\"}},"
                                  "{\"type\":\"text\",\"text\":\"What is in this image?\"}]}]", 0, NULL);
        struct vlm_prompt_opts o = vlm_prompt_default_opts();
        struct vlm_prompt pr;
        rc = vlm_prompt_prepare(m, msgs, &ip, 1, &o, &pr, &err);
        CHECK_MSG(rc == VLM_OK, "prompt: %s", err.msg);
        if (rc == VLM_OK) {
            json_t *ids = json_object_get(ref, "input_ids");
            int same = pr.n_ids == json_array_size(ids);
            for (size_t i = 0; same && i < pr.n_ids; i++) same = pr.ids[i] == json_integer_value(json_array_get(ids, i));
            printf("  %s: prompt %zu ids (LlavaProcessor: %zu), %zu image tokens\n", dir, pr.n_ids, json_array_size(ids), pr.n_image_tokens);
            CHECK_MSG(same, "prompt ids differ from LlavaProcessor's");
            CHECK_EQ_INT(pr.n_image_tokens, 576);
            CHECK(pr.n_images == 1 && plen == (size_t)3 * 336 * 336 * 4 &&
                  max_abs_diff(pr.images[0].pixels, pv, (size_t)3 * 336 * 336) <= 1e-5);
            vlm_prompt_free(&pr);
        }
        json_decref(msgs);
    }
    vlm_image_free(&img);
    vlm_model_free(m);
    vlm_free(png);
    vlm_free(pv);
    json_decref(ref);
}

int main(void) {
    static const char *const tiny[] = {"gqa-untied-layer-2", "memory-names-mha-tied-two-images-full", "published-names-layers-list",
                                       "next-gqa-untied-wide", "next-memory-names-tied-two-images"};
    char dir[1024];
    for (size_t i = 0; i < sizeof tiny / sizeof tiny[0]; i++) {
        char rel[256];
        snprintf(rel, sizeof rel, "tests/fixtures/llava/%s", tiny[i]);
        snprintf(dir, sizeof dir, "%s", test_path(rel));
        check_model(dir, 1e-3, i % 2 ? 2 : 1, VLM_KV_AUTO);
    }
    /* a 16-bit KV cache: K and V rounded once, the logits move by about that rounding */
    snprintf(dir, sizeof dir, "%s", test_path("tests/fixtures/llava/gqa-untied-layer-2"));
    check_model(dir, 5e-3, 2, VLM_KV_F16);
    test_bad_inputs(dir);
    snprintf(dir, sizeof dir, "%s", test_path("tests/fixtures/llava/next-gqa-untied-wide"));
    test_next_bad_inputs(dir);
    test_alloc_failures(dir);
    snprintf(dir, sizeof dir, "%s", test_path("tests/fixtures/llava/published-names-layers-list"));
    test_malformed(dir);
    test_next_processor();
    const char *big = getenv("VLM_LLAVA_BIG");
    if (!big || !*big) big = "/work/models-big/llava-1.5-7b-random";
    char path[1024];
    snprintf(path, sizeof path, "%s/prompt_ref.json", big);
    if (!vlm_file_exists(path)) printf("SKIP: LLaVA-1.5-7B-shaped folder: %s not found (scripts/make_llava_fixtures.py --big DIR)\n", big);
    else test_big_prompt(big);
    TEST_MAIN_END();
}
