/* test_model_gemma3.c — Gemma 3 parity with transformers on tiny random models (fixtures from
 * scripts/make_gemma3_fixtures.py): next-token logits of prompts longer than the sliding
 * window, with one image, two images and pan-and-scan crops, or text only (Gemma3ForCausalLM),
 * within 1e-3; identical 16-token greedy continuations; the same logits when the prompt comes
 * in chunks beside another sequence; a step that cuts an image refused; the sliding window and
 * soft-capping shown to matter; clear errors for a missing or misshapen tensor. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#include "engine/engine.h"
#include "engine/sampler.h"
#include "models/model.h"
#include "models/processor.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

struct ref {
    json_t  *j;
    int32_t *ids;
    int      n_ids, n_vocab, n_images;
    float   *logits;
    int32_t  greedy[16];
    struct vlm_image_input img[4];
    float   *pixels;
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
    size_t len, plen = 0;
    char *text = read_all(dir, "ref.json", &len);
    if (!text) return -1;
    r->j = json_loadb(text, len, 0, NULL);
    vlm_free(text);
    if (!r->j) return -1;
    json_t *ids = json_object_get(r->j, "input_ids"), *lg = json_object_get(r->j, "logits");
    r->n_ids = (int)json_array_size(ids);
    r->ids = vlm_malloc(sizeof(int32_t) * (size_t)r->n_ids);
    for (int i = 0; i < r->n_ids; i++) r->ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
    r->n_vocab = (int)json_array_size(lg);
    r->logits = vlm_malloc(sizeof(float) * (size_t)r->n_vocab);
    for (int i = 0; i < r->n_vocab; i++) r->logits[i] = (float)json_number_value(json_array_get(lg, (size_t)i));
    for (int i = 0; i < 16; i++) r->greedy[i] = (int32_t)json_integer_value(json_array_get(json_object_get(r->j, "greedy"), (size_t)i));
    json_t *nt = json_object_get(r->j, "n_tiles"), *nit = json_object_get(r->j, "n_image_tokens");
    r->n_images = (int)json_array_size(nt);
    if (r->n_images > 4) return -1;
    if (!r->n_images) return 0;
    int S = (int)json_integer_value(json_object_get(r->j, "tile_size"));
    r->pixels = read_all(dir, "pixel_values.f32", &plen);
    size_t off = 0;
    for (int i = 0; i < r->n_images; i++) {
        struct vlm_image_input *in = &r->img[i];
        in->n_tiles = (int)json_integer_value(json_array_get(nt, (size_t)i));
        in->channels = 3;
        in->height = in->width = S;
        in->pixels = r->pixels + off * 3 * (size_t)S * S;
        in->n_image_tokens = (int)json_integer_value(json_array_get(nit, (size_t)i));
        off += (size_t)in->n_tiles;
    }
    return r->pixels && plen == off * 3 * (size_t)S * S * 4 ? 0 : -1;
}

static void ref_free(struct ref *r) {
    json_decref(r->j);
    vlm_free(r->ids);
    vlm_free(r->logits);
    vlm_free(r->pixels);
}

static double max_abs_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static struct vlm_model *load(const char *dir, int n_threads) {
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = 0;
    mp.dtype = "float32";   /* exact f32 arithmetic, as the references (the bf16 fixture: f32 math on rounded weights) */
    mp.n_threads = n_threads;
    struct vlm_model *m = NULL;
    if (vlm_model_load(dir, &mp, &m) != VLM_OK) return NULL;
    return m;
}

/* Image embeddings, and per prompt position the row to use (NULL = token). */
static float **encode_all(const struct vlm_model *m, struct vlm_ctx *ctx, struct ref *r, const float **rows) {
    const struct vlm_model_info *mi = vlm_model_get_info(m);
    float **emb = vlm_calloc((size_t)r->n_images + 1, sizeof *emb);
    struct vlm_error err;
    for (int i = 0; i < r->n_images; i++) {
        emb[i] = vlm_malloc(sizeof(float) * (size_t)r->img[i].n_image_tokens * mi->d_model);
        int rc = vlm_ctx_encode_image(ctx, &r->img[i], emb[i], &err);
        CHECK_MSG(rc == VLM_OK, "encode image %d: %s", i, err.msg);
    }
    int img = 0, row = 0;
    for (int p = 0; p < r->n_ids; p++) {
        rows[p] = NULL;
        if (r->ids[p] != mi->image_token_id || img >= r->n_images) continue;
        rows[p] = emb[img] + (size_t)row * mi->d_model;
        if (++row == r->img[img].n_image_tokens) { img++; row = 0; }
    }
    CHECK_EQ_INT(img, r->n_images);
    return emb;
}

static int decode_rows(struct vlm_ctx *ctx, int s, const struct ref *r, const float **rows, int from, int to,
                       struct vlm_error *err) {
    int n = to - from;
    int32_t pos[512], seq[512];
    if (n > 512) return VLM_E_INVALID;
    for (int i = 0; i < n; i++) { pos[i] = from + i; seq[i] = s; }
    struct vlm_batch b = {n, r->ids + from, rows + from, pos, seq, NULL, NULL};
    return vlm_ctx_decode(ctx, &b, err);
}

/* Logits of the prompt (whole, in one step) in out; 16 greedy ids in got (when got). */
static int run_prompt(struct vlm_model *m, struct ref *r, float *out, int32_t *got, enum vlm_kv_dtype kv) {
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_seq_max = 3;
    cp.n_batch_max = 2 * r->n_ids + 8;
    cp.n_ctx = r->n_ids + 32;
    cp.kv_dtype = kv;
    struct vlm_ctx *ctx = NULL;
    struct vlm_error err;
    if (vlm_ctx_new(m, &cp, &ctx, &err) != VLM_OK) return -1;
    const float **rows = vlm_calloc((size_t)r->n_ids, sizeof *rows);
    float **emb = encode_all(m, ctx, r, rows);
    int rc = decode_rows(ctx, 0, r, rows, 0, r->n_ids, &err);
    CHECK_MSG(rc == VLM_OK, "decode: %s", err.msg);
    if (rc == VLM_OK) memcpy(out, vlm_ctx_logits(ctx, 0), sizeof(float) * (size_t)r->n_vocab);
    for (int i = 0; got && rc == VLM_OK && i < 16; i++) {
        int32_t tok = vlm_argmax(vlm_ctx_logits(ctx, 0), r->n_vocab), pos = r->n_ids + i, seq = 0;
        got[i] = tok;
        struct vlm_batch b = {1, &tok, NULL, &pos, &seq, NULL, NULL};
        rc = vlm_ctx_decode(ctx, &b, &err);
        CHECK_MSG(rc == VLM_OK, "decode step %d: %s", i, err.msg);
    }
    /* sequence 1 in chunks that never cut an image (vlm_prefill_take) beside sequence 2 whole
       in the first step: the same logits */
    if (rc == VLM_OK && !got) {
        const struct vlm_model_info *mi = vlm_model_get_info(m);
        int budget = mi->image_rows_whole + 3, at = vlm_prefill_take(mi, rows, 0, (size_t)r->n_ids, budget);
        CHECK(at > 0 && at < r->n_ids);
        int n2 = at + r->n_ids;
        int32_t *ids = vlm_malloc(sizeof(int32_t) * (size_t)n2), *pos = vlm_malloc(sizeof(int32_t) * (size_t)n2),
                *seq = vlm_malloc(sizeof(int32_t) * (size_t)n2);
        const float **er = vlm_calloc((size_t)n2, sizeof *er);
        for (int i = 0; i < n2; i++) {
            int two = i >= at, p = two ? i - at : i;
            ids[i] = r->ids[p]; er[i] = rows[p]; pos[i] = p; seq[i] = two ? 2 : 1;
        }
        struct vlm_batch b2 = {n2, ids, er, pos, seq, NULL, NULL};
        rc = vlm_ctx_decode(ctx, &b2, &err);
        CHECK_MSG(rc == VLM_OK, "batched: %s", err.msg);
        if (rc == VLM_OK) {
            double d2 = max_abs_diff(vlm_ctx_logits(ctx, 1), out, r->n_vocab);
            CHECK_MSG(d2 <= 1e-5, "sequence 2 beside a chunk of 1 differs by %g", d2);
        }
        while (rc == VLM_OK && at < r->n_ids) {
            int k = vlm_prefill_take(mi, rows, (size_t)at, (size_t)(r->n_ids - at), budget);
            CHECK(k > 0);
            if (k <= 0) break;
            rc = decode_rows(ctx, 1, r, rows, at, at + k, &err);
            CHECK_MSG(rc == VLM_OK, "chunk at %d: %s", at, err.msg);
            at += k;
        }
        if (rc == VLM_OK) {
            double d1 = max_abs_diff(vlm_ctx_logits(ctx, 0), out, r->n_vocab);
            printf("    chunked prefill (budget %d) vs whole: max abs diff %.3g\n", budget, d1);
            CHECK_MSG(d1 <= 1e-4, "chunked logits differ by %g", d1);
        }
        /* a step that ends inside an image is refused and changes nothing */
        for (int p = 1; p < r->n_ids && r->n_images; p++) {
            if (!rows[p] || !rows[p - 1]) continue;
            vlm_ctx_seq_clear(ctx, 2);
            int e = decode_rows(ctx, 2, r, rows, 0, p, &err);
            CHECK_EQ_INT(e, VLM_E_INVALID);
            CHECK(strstr(err.msg, "inside an image") != NULL);
            CHECK_EQ_INT(vlm_ctx_seq_len(ctx, 2), 0);
            break;
        }
        vlm_free(ids); vlm_free(pos); vlm_free(seq); vlm_free(er);
    }
    for (int i = 0; i < r->n_images; i++) vlm_free(emb[i]);
    vlm_free(emb);
    vlm_free(rows);
    vlm_ctx_free(ctx);
    return rc;
}

static void check_fixture(const char *name, int n_threads) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/gemma3/%s", name);
    const char *dir = test_path(rel);
    struct ref r;
    if (ref_load(dir, &r) != 0) { CHECK_MSG(0, "%s: reference files unreadable", dir); ref_free(&r); return; }
    struct vlm_model *m = load(dir, n_threads);
    CHECK_MSG(m != NULL, "%s: %s", dir, vlm_last_error());
    if (!m) { ref_free(&r); return; }
    CHECK_EQ_INT(vlm_model_get_info(m)->n_vocab, r.n_vocab);
    float *lg = vlm_malloc(sizeof(float) * (size_t)r.n_vocab), *lg2 = vlm_malloc(sizeof(float) * (size_t)r.n_vocab);
    int32_t got[16];
    if (run_prompt(m, &r, lg, got, VLM_KV_AUTO) == VLM_OK) {
        double d = max_abs_diff(lg, r.logits, r.n_vocab);
        printf("  %s: %d ids, %d image(s), logits max abs diff %.3g (tol 1e-3)\n", name, r.n_ids, r.n_images, d);
        CHECK_MSG(d <= 1e-3, "%s: logits differ by %g", name, d);
        CHECK_MSG(!memcmp(got, r.greedy, sizeof got), "%s: greedy continuation differs (first %d vs %d)", name, got[0], r.greedy[0]);
    }
    if (run_prompt(m, &r, lg2, NULL, VLM_KV_AUTO) == VLM_OK)
        CHECK_MSG(max_abs_diff(lg, lg2, r.n_vocab) <= 1e-5, "%s: a second run differs", name);
    vlm_free(lg); vlm_free(lg2);
    vlm_model_free(m);
    ref_free(&r);
}

/* ---- the same weights under an edited config.json ---- */
static char tmpdir[256];

static const char *variant(const char *fixture, const char *key_path, json_t *value) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/gemma3/%s", fixture);
    const char *src = test_path(rel);
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vlm_gemma3_%d", (int)getpid());
    mkdir(tmpdir, 0700);
    char from[512], to[512];
    snprintf(from, sizeof from, "%s/model.safetensors", src);
    snprintf(to, sizeof to, "%s/model.safetensors", tmpdir);
    unlink(to);
    if (symlink(from, to) != 0) return NULL;
    snprintf(from, sizeof from, "%s/config.json", src);
    json_t *cfg = json_load_file(from, 0, NULL), *obj = cfg;
    char kp[128];
    snprintf(kp, sizeof kp, "%s", key_path);
    char *dot = strchr(kp, '.');
    if (dot) { *dot = '\0'; obj = json_object_get(cfg, kp); }
    json_object_set_new(obj, dot ? dot + 1 : kp, value);
    snprintf(to, sizeof to, "%s/config.json", tmpdir);
    json_dump_file(cfg, to, JSON_INDENT(1));
    json_decref(cfg);
    return tmpdir;
}

static void cleanup_variant(void) {
    char p[512];
    snprintf(p, sizeof p, "%s/model.safetensors", tmpdir); unlink(p);
    snprintf(p, sizeof p, "%s/config.json", tmpdir); unlink(p);
    rmdir(tmpdir);
}

static void expect_load_error(const char *dir, const char *needle1, const char *needle2) {
    struct vlm_model *m = load(dir, 1);
    CHECK_MSG(m == NULL, "%s loaded", dir);
    const char *e = vlm_last_error();
    CHECK_MSG(e && strstr(e, needle1) && (!needle2 || strstr(e, needle2)), "error \"%s\" lacks \"%s\"", e ? e : "", needle1);
    vlm_model_free(m);
}

/* A setting that must change the logits (so the fixture exercises it) does. */
static void expect_logits_move(const char *fixture, const char *key, json_t *value, double at_least) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/gemma3/%s", fixture);
    struct ref r;
    if (ref_load(test_path(rel), &r) != 0) { CHECK(0); ref_free(&r); return; }
    struct vlm_model *m = load(variant(fixture, key, value), 1);
    CHECK_MSG(m != NULL, "%s with %s changed: %s", fixture, key, vlm_last_error());
    float *lg = vlm_malloc(sizeof(float) * (size_t)r.n_vocab);
    if (m && run_prompt(m, &r, lg, NULL, VLM_KV_AUTO) == VLM_OK) {
        double d = max_abs_diff(lg, r.logits, r.n_vocab);
        printf("  %s with %s changed: logits move by %.3g\n", fixture, key, d);
        CHECK_MSG(d >= at_least, "%s: changing %s moved the logits only %g", fixture, key, d);
    }
    vlm_free(lg);
    vlm_model_free(m);
    cleanup_variant();
    ref_free(&r);
}

static void test_errors(void) {
    /* tied model said untied: the missing head is named with its file */
    expect_load_error(variant("two-images-gqa-tied", "tie_word_embeddings", json_false()), "lm_head.weight",
                      "model.safetensors");
    cleanup_variant();
    /* a config that disagrees with the tensors: the tensor and the file are named */
    expect_load_error(variant("text-causallm-gqa", "intermediate_size", json_integer(100)), "mlp.gate_proj.weight",
                      "model.safetensors");
    cleanup_variant();
    expect_load_error(variant("pan-scan-mha-untied-softcap", "mm_tokens_per_image", json_integer(8)), "mm_tokens_per_image",
                      NULL);
    cleanup_variant();
    expect_load_error(variant("text-causallm-gqa", "use_bidirectional_attention", json_true()), "use_bidirectional_attention",
                      NULL);
    cleanup_variant();
}

/* Where a prefill chunk may end: never between two image rows of a model that needs them whole. */
static void test_prefill_take(void) {
    float x = 0;
    const float *rows[12] = {NULL, NULL, &x, &x, &x, NULL, NULL, &x, &x, &x, NULL, NULL};
    struct vlm_model_info whole = {0}, any = {0};
    whole.image_rows_whole = 3;
    CHECK_EQ_INT(vlm_prefill_take(&any, rows, 0, 12, 4), 4);       /* other families: as asked */
    CHECK_EQ_INT(vlm_prefill_take(&whole, rows, 0, 12, 4), 2);     /* would cut the image at 2..4 */
    CHECK_EQ_INT(vlm_prefill_take(&whole, rows, 0, 12, 5), 5);     /* ends with the image */
    CHECK_EQ_INT(vlm_prefill_take(&whole, rows, 2, 10, 2), 0);     /* the image does not fit */
    CHECK_EQ_INT(vlm_prefill_take(&whole, rows, 2, 10, 3), 3);
    CHECK_EQ_INT(vlm_prefill_take(&whole, rows, 5, 7, 100), 7);    /* the rest of the prompt */
    CHECK_EQ_INT(vlm_prefill_take(&whole, rows, 5, 7, 4), 2);
    CHECK_EQ_INT(vlm_prefill_take(&whole, NULL, 0, 12, 4), 4);     /* no images */
    CHECK_EQ_INT(vlm_prefill_take(&whole, rows, 0, 12, 0), 0);
}

/* --quantization on a model whose text width (64) lets the block types reach every matrix,
 * the transposed mm_input_projection_weight included (kept float, as llama.cpp does): it loads,
 * its other matrices are block types, and the logits stay within tol of transformers' f32
 * (|logits| up to 2.2; every norm weight random, 1 + N(0, 0.3), so the 5-8 bit weights and the
 * int8 activations of ~12 matrix products in a row move them by about 3% for Q8_0 and 12% for
 * Q4_K, which falls back to Q5_0 on these widths). */
static void check_quantized(const char *name, const char *quant, double tol) {
    char rel[256];
    snprintf(rel, sizeof rel, "tests/fixtures/gemma3/%s", name);
    const char *dir = test_path(rel);
    struct ref r;
    if (ref_load(dir, &r) != 0) { CHECK_MSG(0, "%s: reference files unreadable", dir); ref_free(&r); return; }
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = 0;
    mp.n_threads = 1;
    mp.quantization = quant;
    struct vlm_model *m = NULL;
    int rc = vlm_model_load(dir, &mp, &m);
    CHECK_MSG(rc == VLM_OK, "%s --quantization %s: %s", name, quant, vlm_last_error());
    if (!m) { ref_free(&r); return; }
    int n_block = 0;
    for (size_t i = 0; i < m->weights.n; i++) n_block += vlm_dtype_block_elems(m->weights.w[i].t.type) > 1;
    CHECK_MSG(n_block >= 15, "%s --quantization %s: only %d block-type tensors", name, quant, n_block);
    float *lg = vlm_malloc(sizeof(float) * (size_t)r.n_vocab);
    if (run_prompt(m, &r, lg, NULL, VLM_KV_AUTO) == VLM_OK) {
        double d = max_abs_diff(lg, r.logits, r.n_vocab);
        printf("  %s --quantization %s: %d block-type tensors, logits max abs diff vs transformers f32 %.3g (tol %g)\n",
               name, quant, n_block, d, tol);
        CHECK_MSG(d <= tol, "%s --quantization %s: logits differ by %g", name, quant, d);
    }
    vlm_free(lg);
    vlm_model_free(m);
    ref_free(&r);
}

/* The same model from llama.cpp's GGUF pair (text file + "gemma3" mmproj, made by
 * scripts/make_gemma3_gguf_fixtures.py with convert_hf_to_gguf.py): the converter writes no
 * window pattern, so the file means both layers local (llama.cpp's default pattern of 6); the
 * safetensors under that layer_types give the same logits but for the input projection, which
 * the converter rounds to F16 (7.6e-5 here; 1e-3); the processor and image token come from the metadata. */
static void check_gguf_pair(void) {
    char text[512], mm[512];
    snprintf(text, sizeof text, "%s", test_path("tests/fixtures/gguf/gemma3-vlm-f32.gguf"));
    snprintf(mm, sizeof mm, "%s", test_path("tests/fixtures/gguf/gemma3-vlm-mmproj-f32.gguf"));
    struct ref r;
    if (ref_load(test_path("tests/fixtures/gemma3/quant-proj-64"), &r) != 0) { CHECK_MSG(0, "quant-proj-64 unreadable"); ref_free(&r); return; }
    const char *dir = variant("quant-proj-64", "text_config.layer_types", json_pack("[s, s]", "sliding_attention", "sliding_attention"));
    struct vlm_model *ms = dir ? load(dir, 1) : NULL, *mg = NULL;
    struct vlm_model_params mp = vlm_model_default_params();
    mp.dtype = "float32";
    mp.n_threads = 1;
    mp.mmproj = mm;
    int rc = vlm_model_load(text, &mp, &mg);
    CHECK_MSG(rc == VLM_OK && ms, "%s + %s: %s", text, mm, vlm_last_error());
    float *ls = vlm_malloc(sizeof(float) * (size_t)r.n_vocab), *lg = vlm_malloc(sizeof(float) * (size_t)r.n_vocab);
    int32_t gs[16], gg[16];
    if (ms && mg && run_prompt(ms, &r, ls, gs, VLM_KV_AUTO) == VLM_OK && run_prompt(mg, &r, lg, gg, VLM_KV_AUTO) == VLM_OK) {
        double d = max_abs_diff(ls, lg, r.n_vocab), dhf = max_abs_diff(ls, r.logits, r.n_vocab);
        printf("  gemma3 GGUF text + mmproj: logits max abs diff vs the safetensors (both layers local) %.3g (tol 1e-3);"
               " the window pattern matters: %.3g from transformers' file\n", d, dhf);
        CHECK_MSG(d <= 1e-3, "GGUF pair logits differ by %g", d);
        const struct vlm_model_info *mi = vlm_model_get_info(mg);
        CHECK_EQ_INT(mi->image_token_id, 390);
        CHECK(vlm_model_processor(mg) != NULL && vlm_model_tokenizer(mg) != NULL);
    }
    vlm_free(ls);
    vlm_free(lg);
    vlm_model_free(ms);
    vlm_model_free(mg);
    if (dir) cleanup_variant();
    ref_free(&r);
}

int main(void) {
    test_prefill_take();
    check_gguf_pair();
    check_fixture("quant-proj-64", 1);
    check_quantized("quant-proj-64", "q8_0", 1e-1);
    check_quantized("quant-proj-64", "q4_k", 4e-1);
    const char *fx[] = {"two-images-gqa-tied", "pan-scan-mha-untied-softcap", "text-causallm-gqa",
                        "two-images-gqa-tied-bf16"};
    for (size_t i = 0; i < sizeof fx / sizeof *fx; i++) check_fixture(fx[i], i % 2 ? 2 : 1);
    /* the fixtures' prompts are longer than their windows, and the window matters */
    expect_logits_move("text-causallm-gqa", "sliding_window", json_integer(4096), 1e-2);
    /* final_logit_softcapping: transformers applies it in Gemma3ForCausalLM only */
    expect_logits_move("text-causallm-gqa", "final_logit_softcapping", json_null(), 1e-2);
    expect_logits_move("two-images-gqa-tied", "text_config.rope_local_base_freq", json_real(1000000.0), 1e-3);
    test_errors();
    TEST_MAIN_END();
}
