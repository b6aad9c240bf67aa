/* test_model_gguf.c — SmolVLM/Idefics3 from llama.cpp's GGUF files (tests/fixtures/gguf, made
 * by scripts/make_gguf_fixtures.py with llama.cpp's own converter from the tiny safetensors
 * fixtures): logits and greedy continuation of a prompt with images equal to vlm.c on the same
 * model's safetensors; the tokenizer, chat template and processor built from metadata; the
 * folder form; clear errors for a missing or wrong mmproj. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

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
#include "formats/gguf.h"
#include "models/gemma3_gguf.h"

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
    struct vlm_batch b = {r->n_ids, r->ids, rows, pos, seq, NULL, NULL};
    if (!rc && vlm_ctx_decode(ctx, &b, &err) != VLM_OK) { fprintf(stderr, "decode: %s\n", err.msg); rc = -1; }
    if (!rc) {
        *logits = vlm_malloc(sizeof(float) * (size_t)mi->n_vocab);
        memcpy(*logits, vlm_ctx_logits(ctx, 0), sizeof(float) * (size_t)mi->n_vocab);
        int32_t tok = vlm_argmax(*logits, mi->n_vocab);
        for (int i = 0; i < N_GREEDY && !rc; i++) {
            greedy[i] = tok;
            int32_t p = r->n_ids + i, s = 0;
            struct vlm_batch one = {1, &tok, NULL, &p, &s, NULL, NULL};
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
    mp.dtype = "float32";   /* exact f32 arithmetic whatever the file's dtype: the formats are compared */
    mp.mmproj = mmproj;
    struct vlm_model *m = NULL;
    int rc = vlm_model_load(path, &mp, &m);
    CHECK_MSG(rc == VLM_OK, "%s: %s", path, vlm_last_error());
    return m;
}

/* A GGUF pair against the safetensors folder it was converted from. */
static void parity_paths(const char *dir, const char *text, const char *mm, const char *label, double tol, int want_greedy) {
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
        printf("  %s: logits max abs diff vs safetensors %.3g (tol %g)\n", label, d, tol);
        CHECK_MSG(d <= tol, "%s: logits differ by %g", label, d);
        if (want_greedy) CHECK_MSG(!memcmp(gs, gg, sizeof gs), "%s: greedy continuation differs", label);
    }
    vlm_free(ls);
    vlm_free(lg);
    vlm_model_free(ms);
    vlm_model_free(mg);
    ref_free(&r);
}

/* GGUF (name-type.gguf + name-mmproj-type.gguf) against the safetensors of the same model. */
static void parity(const char *name, const char *type, double tol, int want_greedy) {
    char dir[512], text[512], mm[512], label[128];
    snprintf(dir, sizeof dir, "%s%s", test_path("tests/fixtures/models/"), name);
    snprintf(text, sizeof text, "%s%s-%s.gguf", test_path("tests/fixtures/gguf/"), name, type);
    snprintf(mm, sizeof mm, "%s%s-mmproj-%s.gguf", test_path("tests/fixtures/gguf/"), name, type);
    snprintf(label, sizeof label, "%s %s", name, type);
    parity_paths(dir, text, mm, label, tol, want_greedy);
}

/* Replaces every block-type weight of m by its f32 dequantization (exact, as gguf-py's) and
 * reloads the family: the same model computed in plain f32, the reference for how far the
 * quantized kernels' own rounding (activations to int8 per 32-block) moves the logits. */
static int dequantize_model(struct vlm_model *m) {
    struct vlm_error err;
    m->family->free(m);
    for (size_t i = 0; i < m->weights.n; i++) {
        struct vlm_weight *e = &m->weights.w[i];
        if (vlm_dtype_block_elems(e->t.type) <= 1) continue;
        int64_t rows = 1, n = e->t.ne[e->t.n_dims - 1];
        for (int d = 0; d + 1 < e->t.n_dims; d++) rows *= e->t.ne[d];
        float *f = vlm_malloc(sizeof(float) * (size_t)(rows * n));
        struct vlm_tensor mat = e->t;
        mat.n_dims = 2; mat.ne[0] = rows; mat.ne[1] = n;
        for (int64_t r = 0; r < rows; r++) vlm_tensor_row_f32(&mat, r, f + r * n);
        vlm_free(e->owned);
        e->owned = f;
        e->t.type = VLM_DT_F32;
        e->t.data = f;
        e->t.nbytes = sizeof(float) * (size_t)(rows * n);
    }
    int rc = m->family->load(m, &err);
    if (rc != VLM_OK) fprintf(stderr, "reload: %s\n", err.msg);
    return rc;
}

static double max_diff(const float *a, const float *b, int n) {
    double d = 0;
    for (int i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= d)) d = e;
    }
    return d;
}

/* A quantized GGUF against the same file dequantized to f32 (tol_kernels: the quantized
 * kernels' activation rounding only) and against the safetensors it was converted from
 * (tol_file: plus the weights' quantization error). */
static void parity_quant(const char *name, const char *type, double tol_kernels, double tol_file) {
    char dir[512], text[512], mm[512];
    snprintf(dir, sizeof dir, "%s%s", test_path("tests/fixtures/models/"), name);
    snprintf(text, sizeof text, "%s%s-%s.gguf", test_path("tests/fixtures/gguf/"), name, type);
    snprintf(mm, sizeof mm, "%s%s-mmproj-%s.gguf", test_path("tests/fixtures/gguf/"), name, type);
    struct ref r;
    if (ref_load(dir, &r)) { CHECK_MSG(0, "%s: reference unreadable", dir); ref_free(&r); return; }
    struct vlm_model *mq = load(text, mm, 0), *md = load(text, mm, 0), *ms = load(dir, NULL, 0);
    float *lq = NULL, *ld = NULL, *ls = NULL;
    int32_t gq[N_GREEDY], gd[N_GREEDY], gs[N_GREEDY];
    int n_quant = 0;
    for (size_t i = 0; mq && i < mq->weights.n; i++) n_quant += vlm_dtype_block_elems(mq->weights.w[i].t.type) > 1;
    CHECK_MSG(n_quant >= 20, "%s: only %d block-type tensors", text, n_quant);
    if (mq && md && ms && dequantize_model(md) == VLM_OK) {
        CHECK(run(mq, &r, &lq, gq) == 0);
        CHECK(run(md, &r, &ld, gd) == 0);
        CHECK(run(ms, &r, &ls, gs) == 0);
    }
    if (lq && ld && ls) {
        int n = vlm_model_get_info(mq)->n_vocab;
        double dk = max_diff(lq, ld, n), df = max_diff(lq, ls, n), amax = 0;
        for (int i = 0; i < n; i++) amax = fabs(ld[i]) > amax ? fabs(ld[i]) : amax;
        printf("  %s %s (%d block tensors): logits (max |l| %.3g) max abs diff vs dequantized f32 %.3g (tol %g), vs safetensors %.3g (tol %g)\n",
               name, type, n_quant, amax, dk, tol_kernels, df, tol_file);
        CHECK_MSG(dk <= tol_kernels, "%s %s: quantized kernels move logits by %g", name, type, dk);
        CHECK_MSG(df <= tol_file, "%s %s: logits differ from the safetensors by %g", name, type, df);
        CHECK_MSG(!memcmp(gq, gd, sizeof gq), "%s %s: greedy continuation differs from the dequantized model's", name, type);
    }
    vlm_free(lq); vlm_free(ld); vlm_free(ls);
    vlm_model_free(mq); vlm_model_free(md); vlm_model_free(ms);
    ref_free(&r);
}

/* Copies the bytes of src to dir/name (truncated to n bytes when n > 0). */
static void copy_to(const char *src, const char *dir, const char *name, size_t n) {
    size_t len;
    char *data = NULL;
    struct vlm_error err;
    if (vlm_read_file(src, 1u << 28, &data, &len, &err) != VLM_OK) { CHECK_MSG(0, "%s unreadable", src); return; }
    char *p = vlm_path_join(dir, name);
    FILE *f = fopen(p, "wb");
    if (f) { fwrite(data, 1, n ? n : len, f); fclose(f); }
    vlm_free(p);
    vlm_free(data);
}

static int load_err(const char *path, const char *mmproj, const char *want1, const char *want2) {
    struct vlm_model_params mp = vlm_model_default_params();
    mp.mmproj = mmproj;
    struct vlm_model *m = NULL;
    int rc = vlm_model_load(path, &mp, &m);
    const char *msg = vlm_last_error();
    CHECK_MSG(rc != VLM_OK, "%s: loaded", path);
    CHECK_MSG(strstr(msg, want1) && (!want2 || strstr(msg, want2)), "%s: message \"%s\" lacks \"%s\" / \"%s\"", path, msg, want1, want2 ? want2 : "");
    vlm_model_free(m);
    return rc;
}

/* The folder form, the text parts from metadata, and load errors. */
static void folder_and_errors(void) {
    char text[512], mm[512], other_mm[512], dir[] = "/tmp/vlm-gguf-XXXXXX";
    snprintf(text, sizeof text, "%s", test_path("tests/fixtures/gguf/padded-tile-f32.gguf"));
    snprintf(mm, sizeof mm, "%s", test_path("tests/fixtures/gguf/padded-tile-mmproj-f32.gguf"));
    snprintf(other_mm, sizeof other_mm, "%s", test_path("tests/fixtures/gguf/rope-linear-mmproj-f32.gguf"));
    if (!mkdtemp(dir)) { CHECK_MSG(0, "mkdtemp"); return; }
    copy_to(text, dir, "model.gguf", 0);
    copy_to(mm, dir, "vision.gguf", 0);
    struct vlm_model *m = load(dir, NULL, 1);
    if (m) {
        CHECK(vlm_model_tokenizer(m) && vlm_model_template(m) && vlm_model_processor(m));
        const struct vlm_model_info *mi = vlm_model_get_info(m);
        CHECK_EQ_INT(mi->image_token_id, 300);
        CHECK_EQ_INT(mi->bos_id, 1);
        int has_eou = 0;
        for (int i = 0; i < mi->n_eos; i++) has_eou |= mi->eos_ids[i] == vlm_tokenizer_token_id(vlm_model_tokenizer(m), "<end_of_utterance>");
        CHECK(has_eou);
        CHECK_EQ_STR(vlm_processor_image_placeholder(vlm_model_processor(m)), "<image>");
    }
    vlm_model_free(m);
    load_err(text, NULL, "--mmproj", text);                         /* text file alone */
    load_err(text, other_mm, "connector.modality_projection", other_mm); /* another model's mmproj */
    load_err(mm, NULL, "clip", mm);                                  /* an mmproj as the text file */
    copy_to(other_mm, dir, "vision2.gguf", 0);
    load_err(dir, NULL, "more than one mmproj", dir);
    char *v2 = vlm_path_join(dir, "vision2.gguf");
    remove(v2);
    vlm_free(v2);
    copy_to(text, dir, "model.gguf", 5000);                          /* truncated text file */
    char *tp = vlm_path_join(dir, "model.gguf");
    load_err(dir, NULL, tp, "offset");
    remove(tp);
    vlm_free(tp);
    char *vp = vlm_path_join(dir, "vision.gguf");
    remove(vp);
    vlm_free(vp);
    rmdir(dir);
}

/* Runs ids through m (text only): the last row's logits into logits (n_vocab) and n greedy
 * tokens into greedy. */
static int run_text(const struct vlm_model *m, const int32_t *ids, int n_ids, float *logits, int32_t *greedy, int n) {
    const struct vlm_model_info *mi = vlm_model_get_info(m);
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_seq_max = 1;
    cp.n_batch_max = n_ids;
    cp.n_ctx = n_ids + n + 1;
    cp.n_threads = 1;
    struct vlm_ctx *ctx = NULL;
    struct vlm_error err;
    if (vlm_ctx_new(m, &cp, &ctx, &err) != VLM_OK) { fprintf(stderr, "ctx: %s\n", err.msg); return -1; }
    int32_t *pos = vlm_malloc(sizeof(int32_t) * (size_t)n_ids), *seq = vlm_calloc((size_t)n_ids, sizeof *seq);
    for (int i = 0; i < n_ids; i++) pos[i] = i;
    struct vlm_batch b = {n_ids, ids, NULL, pos, seq, NULL, NULL};
    int rc = vlm_ctx_decode(ctx, &b, &err) == VLM_OK ? 0 : -1;
    if (!rc) memcpy(logits, vlm_ctx_logits(ctx, 0), sizeof(float) * (size_t)mi->n_vocab);
    int32_t tok = rc ? 0 : vlm_argmax(logits, mi->n_vocab);
    for (int i = 0; i < n && !rc; i++) {
        greedy[i] = tok;
        int32_t p = n_ids + i, s = 0;
        struct vlm_batch one = {1, &tok, NULL, &p, &s, NULL, NULL};
        if (vlm_ctx_decode(ctx, &one, &err) != VLM_OK) rc = -1;
        else tok = vlm_argmax(vlm_ctx_logits(ctx, 0), mi->n_vocab);
    }
    if (rc) fprintf(stderr, "decode: %s\n", err.msg);
    vlm_free(pos);
    vlm_free(seq);
    vlm_ctx_free(ctx);
    return rc;
}

/* Gemma 3 text GGUF (llama.cpp's converter: norms stored as 1 + w, tied Q8_0 embedding, sliding
 * window, linear RoPE on the global layer, final soft-capping) against transformers' logits of
 * the safetensors it came from and vlm.c on those safetensors. f32: the same arithmetic, so
 * 1e-4. Q8_0: quantized weights and int8 activations move these logits (|l| < 1.5) by ~1e-2;
 * 5e-2 against the file dequantized to f32 (the kernels' rounding) and 1e-1 against the f32
 * model (no greedy check for Q8_0: the continuation's top-2 gaps go down to 0.0025). */
static void gemma3_text(void) {
    char dir[512], f32[512], q8[512];
    snprintf(dir, sizeof dir, "%s", test_path("tests/fixtures/gemma3/gguf-text"));
    snprintf(f32, sizeof f32, "%s", test_path("tests/fixtures/gguf/gemma3-text-f32.gguf"));
    snprintf(q8, sizeof q8, "%s", test_path("tests/fixtures/gguf/gemma3-text-q8_0.gguf"));
    size_t len;
    char *text = read_rel(dir, "ref.json", &len);
    json_t *ref = text ? json_loadb(text, len, 0, NULL) : NULL;
    vlm_free(text);
    if (!ref) { CHECK_MSG(0, "%s/ref.json unreadable", dir); return; }
    json_t *jids = json_object_get(ref, "input_ids"), *jl = json_object_get(ref, "logits"), *jg = json_object_get(ref, "greedy");
    int n_ids = (int)json_array_size(jids), n_vocab = (int)json_array_size(jl);
    int32_t ids[64], g_hf[N_GREEDY], g[4][N_GREEDY];
    for (int i = 0; i < n_ids && i < 64; i++) ids[i] = (int32_t)json_integer_value(json_array_get(jids, (size_t)i));
    for (int i = 0; i < N_GREEDY; i++) g_hf[i] = (int32_t)json_integer_value(json_array_get(jg, (size_t)i));
    float *hf = vlm_malloc(sizeof(float) * (size_t)n_vocab), *l[4];
    for (int i = 0; i < n_vocab; i++) hf[i] = (float)json_number_value(json_array_get(jl, (size_t)i));
    struct vlm_model *m[4] = {load(dir, NULL, 0), load(f32, NULL, 1), load(q8, NULL, 0), load(q8, NULL, 0)};
    const char *label[4] = {"safetensors", "gguf f32", "gguf q8_0", "gguf q8_0 dequantized"};
    int ok = m[0] && m[1] && m[2] && m[3] && dequantize_model(m[3]) == VLM_OK && n_ids <= 64;
    for (int k = 0; k < 4; k++) {
        l[k] = vlm_malloc(sizeof(float) * (size_t)n_vocab);
        if (ok) {
            CHECK_EQ_INT(vlm_model_get_info(m[k])->n_vocab, n_vocab);
            ok = run_text(m[k], ids, n_ids, l[k], g[k], N_GREEDY) == 0;
        }
    }
    CHECK(ok);
    if (ok) {
        double d[4] = {max_diff(l[0], hf, n_vocab), max_diff(l[1], hf, n_vocab), max_diff(l[2], l[3], n_vocab), max_diff(l[2], l[1], n_vocab)};
        printf("  gemma3 text: logits max abs diff vs transformers: safetensors %.3g, gguf f32 %.3g; "
               "q8_0 vs dequantized %.3g, vs f32 %.3g\n", d[0], d[1], d[2], d[3]);
        CHECK_MSG(d[0] <= 1e-4 && d[1] <= 1e-4, "%s / %s differ from transformers", label[0], label[1]);
        CHECK_MSG(d[2] <= 5e-2 && d[3] <= 1e-1, "%s: logits differ by %g / %g", label[2], d[2], d[3]);
        CHECK_MSG(!memcmp(g[0], g_hf, sizeof g_hf) && !memcmp(g[1], g_hf, sizeof g_hf), "greedy differs from transformers'");
        const struct vlm_model_info *mi = vlm_model_get_info(m[1]);
        CHECK_EQ_INT(mi->bos_id, 1);
        CHECK(vlm_model_tokenizer(m[1]) != NULL);
    }
    for (int k = 0; k < 4; k++) { vlm_free(l[k]); vlm_model_free(m[k]); }
    vlm_free(hf);
    json_decref(ref);
}

static struct vlm_gguf_kv *kv_of(struct vlm_gguf *g, const char *key) {
    return (struct vlm_gguf_kv *)vlm_gguf_find(g, key);
}

/* Builds the config of g, expecting an error naming want when want is non-NULL. */
static json_t *gemma3_cfg(const struct vlm_gguf *g, const char *want) {
    json_t *tc = json_object();
    struct vlm_error err;
    vlm_error_clear(&err);
    int rc = vlm_gguf_gemma3_text_config(g, tc, &err);
    if (want) {
        CHECK_MSG(rc != VLM_OK && strstr(err.msg, want) && strstr(err.msg, g->fname), "want an error naming %s: \"%s\"", want, err.msg);
        json_decref(tc);
        return NULL;
    }
    CHECK_MSG(rc == VLM_OK, "%s", err.msg);
    return tc;
}

/* The gemma3.* metadata as llama.cpp reads it, and every value checked: the converter's
 * file gives the config transformers has, edited metadata gives llama.cpp's defaults or errors
 * naming file and key. */
static void gemma3_config_rules(void) {
    char *data = NULL;
    size_t len = 0;
    const char *path = test_path("tests/fixtures/gguf/gemma3-text-q8_0.gguf");
    char fname[512];
    snprintf(fname, sizeof fname, "%s", path);
    struct vlm_error err;
    struct vlm_gguf g;
    if (vlm_read_file(fname, 1u << 24, &data, &len, &err) != VLM_OK || vlm_gguf_parse((const uint8_t *)data, len, fname, &g, &err) != VLM_OK) {
        CHECK_MSG(0, "%s: %s", fname, err.msg);
        vlm_free(data);
        return;
    }
    json_t *tc = gemma3_cfg(&g, NULL);
    if (tc) {
        char *s = json_dumps(json_object_get(tc, "layer_types"), JSON_COMPACT);
        CHECK_EQ_STR(s, "[\"sliding_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\",\"sliding_attention\",\"full_attention\"]");
        free(s);
        s = json_dumps(json_object_get(tc, "rope_parameters"), JSON_COMPACT | JSON_SORT_KEYS);
        CHECK_EQ_STR(s, "{\"full_attention\":{\"factor\":2.0,\"rope_theta\":1000000.0,\"rope_type\":\"linear\"},"
                        "\"sliding_attention\":{\"rope_theta\":10000.0,\"rope_type\":\"default\"}}");
        free(s);
        CHECK_EQ_INT(json_integer_value(json_object_get(tc, "sliding_window")), 4);
        CHECK_EQ_INT(json_integer_value(json_object_get(tc, "query_pre_attn_scalar")), 32);
        CHECK_EQ_INT(json_integer_value(json_object_get(tc, "vocab_size")), 420);
        CHECK(json_is_true(json_object_get(tc, "tie_word_embeddings")) && json_is_true(json_object_get(tc, "vlm_gguf")));
        CHECK_NEAR(json_number_value(json_object_get(tc, "final_logit_softcapping")), 5.0, 1e-9);
        json_decref(tc);
    }
    struct vlm_gguf_kv *sw = kv_of(&g, "gemma3.attention.sliding_window"), *kl = kv_of(&g, "gemma3.attention.key_length");
    struct vlm_gguf_kv *hk = kv_of(&g, "gemma3.attention.head_count_kv"), *st = kv_of(&g, "gemma3.rope.scaling.type");
    if (!sw || !kl || !hk || !st) { CHECK_MSG(0, "fixture lacks keys"); vlm_gguf_free(&g); vlm_free(data); return; }
    uint64_t sw0 = sw->v.u;
    sw->v.u = 0;   /* no window: every layer global, as llama.cpp's LLAMA_SWA_TYPE_NONE */
    if ((tc = gemma3_cfg(&g, NULL))) {
        char *s = json_dumps(json_object_get(tc, "layer_types"), JSON_COMPACT);
        CHECK(s && !strstr(s, "sliding") && json_is_null(json_object_get(tc, "sliding_window")));
        free(s);
        json_decref(tc);
    }
    sw->v.u = sw0;
    sw->type = VLM_GGUF_STRING;
    gemma3_cfg(&g, "gemma3.attention.sliding_window");
    sw->type = VLM_GGUF_U32;
    kl->v.u = 4096;
    gemma3_cfg(&g, "gemma3.attention.key_length");
    kl->v.u = 32;
    hk->v.u = 3;   /* more KV heads than heads */
    gemma3_cfg(&g, "gemma3.attention.head_count_kv");
    hk->v.u = 1;
    const char *ty = st->str;
    st->str = "yarn!!";   /* 6 bytes, as "linear" */
    gemma3_cfg(&g, "rope.scaling.type");
    st->str = ty;
    vlm_gguf_free(&g);
    vlm_free(data);
}

int main(void) {
    gemma3_config_rules();
    gemma3_text();
    parity("padded-tile", "f32", 1e-4, 1);
    parity("rope-linear", "f32", 1e-4, 1);
    parity("padded-tile", "f16", 1e-2, 1);
    parity("rope-linear", "f16", 1e-2, 1);
    parity_quant("split-gqa-untied", "q8_0", 5e-2, 2e-1);
    folder_and_errors();
    /* A SmolVLM-256M-shaped model (not committed): VLM_GGUF_BIG=DIR holding src/ (the
     * safetensors folder with ref.json) and text-bf16.gguf + mmproj-f16.gguf converted from it. */
    const char *big = getenv("VLM_GGUF_BIG");
    if (big) {
        char d[512], t[512], m[512];
        snprintf(d, sizeof d, "%s/src", big);
        snprintf(t, sizeof t, "%s/text-bf16.gguf", big);
        snprintf(m, sizeof m, "%s/mmproj-f16.gguf", big);
        parity_paths(d, t, m, "SmolVLM-256M shape, bf16 text + f16 mmproj", 1e-2, 1);
    }
    TEST_MAIN_END();
}
