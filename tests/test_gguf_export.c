/* test_gguf_export.c — `vlm quantize` (vlm_gguf_export) against llama.cpp's own tools: on the
 * tiny Idefics3 fixtures its f32/f16 text + mmproj files equal, key for key and tensor byte for
 * byte, what convert_hf_to_gguf.py wrote (tests/fixtures/gguf; bf16 and q8_0 in
 * tests/fixtures/gguf-write), and its q8_0/q4_0/q4_k_m/q5_k_m
 * files equal what llama-quantize made of the converter's f32 file (tests/fixtures/gguf-write,
 * by scripts/make_gguf_write_fixtures.py); the quantized files load in vlm.c with logits near
 * the f32 safetensors run; bad folders fail with a message. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"

#include "engine/engine.h"
#include "engine/sampler.h"
#include "formats/gguf.h"
#include "models/gguf_export.h"
#include "models/model.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

static char tmp[256];

/* tmp/<name>/: the fixture model's files + the tiny tokenizer, as symlinks. */
static void make_folder(const char *name, char *dir, size_t size) {
    static const char *model_files[] = {"config.json", "model.safetensors", "preprocessor_config.json", "processor_config.json"};
    static const char *tok_files[] = {"tokenizer.json", "tokenizer_config.json", "chat_template.jinja"};
    char src[600], dst[600];
    snprintf(dir, size, "%s/%s", tmp, name);
    mkdir(dir, 0755);
    for (int i = 0; i < 4; i++) {
        snprintf(src, sizeof src, "%s/%s", test_path("tests/fixtures/models"), name);
        strncat(src, "/", sizeof src - strlen(src) - 1);
        strncat(src, model_files[i], sizeof src - strlen(src) - 1);
        snprintf(dst, sizeof dst, "%s/%s", dir, model_files[i]);
        CHECK(symlink(src, dst) == 0);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(src, sizeof src, "%s/%s", test_path("tests/fixtures/gguf-write/tokenizer"), tok_files[i]);
        snprintf(dst, sizeof dst, "%s/%s", dir, tok_files[i]);
        CHECK(symlink(src, dst) == 0);
    }
}

struct gfile { struct vlm_mmap m; struct vlm_gguf g; int ok; };

static void gopen(const char *path, struct gfile *f) {
    struct vlm_error err;
    memset(f, 0, sizeof *f);
    f->ok = vlm_mmap_file(path, &f->m, &err) == VLM_OK && vlm_gguf_parse(f->m.data, f->m.size, path, &f->g, &err) == VLM_OK;
    CHECK_MSG(f->ok, "%s: %s", path, err.msg);
}

static void gclose(struct gfile *f) {
    if (f->ok) vlm_gguf_free(&f->g);
    if (f->m.data) vlm_munmap(&f->m);
}

/* Whether kv a (in ga) holds the same type and value as kv b (in gb). */
static int same_kv(const struct vlm_gguf *ga, const struct vlm_gguf_kv *a, const struct vlm_gguf *gb,
                   const struct vlm_gguf_kv *b) {
    if (a->type != b->type || a->n != b->n) return 0;
    if (a->type == VLM_GGUF_STRING) return !memcmp(a->str, b->str, a->n);
    if (a->type != VLM_GGUF_ARRAY) return a->v.u == b->v.u;
    if (a->arr_type != b->arr_type) return 0;
    if (a->arr_type != VLM_GGUF_STRING) return !memcmp(a->arr, b->arr, a->n * vlm_gguf_value_size(a->arr_type));
    size_t pa = a->offset, pb = b->offset;
    for (uint64_t i = 0; i < a->n; i++) {
        const char *sa, *sb;
        size_t la, lb;
        vlm_gguf_arr_str(ga, &pa, &sa, &la);
        vlm_gguf_arr_str(gb, &pb, &sb, &lb);
        if (la != lb || memcmp(sa, sb, la)) return 0;
    }
    return 1;
}

/* ours against llama.cpp's file: every key and tensor equal, nothing extra. */
static void same_file(const char *ours, const char *ref) {
    struct gfile a, b;
    gopen(ours, &a);
    gopen(ref, &b);
    if (a.ok && b.ok) {
        CHECK_MSG(a.g.n_kv == b.g.n_kv, "%s: %zu keys, llama.cpp %zu", ours, a.g.n_kv, b.g.n_kv);
        for (size_t i = 0; i < b.g.n_kv; i++) {
            const struct vlm_gguf_kv *kb = &b.g.kv[i], *ka = vlm_gguf_find(&a.g, kb->key);
            CHECK_MSG(ka && same_kv(&a.g, ka, &b.g, kb), "%s: key %s differs from %s", ours, kb->key, ref);
        }
        CHECK_MSG(a.g.n_tensors == b.g.n_tensors, "%s: %zu tensors, llama.cpp %zu", ours, a.g.n_tensors, b.g.n_tensors);
        for (size_t i = 0; i < b.g.n_tensors; i++) {
            const struct vlm_gguf_tensor *tb = &b.g.t[i], *ta = vlm_gguf_tensor(&a.g, tb->name);
            CHECK_MSG(ta, "%s: no tensor %s", ours, tb->name);
            if (!ta) continue;
            CHECK_MSG(ta->ggml_type == tb->ggml_type && ta->n_dims == tb->n_dims && !memcmp(ta->ne, tb->ne, sizeof ta->ne),
                      "%s: tensor %s is %s, llama.cpp's %s", ours, tb->name, vlm_gguf_type_name(ta->ggml_type), vlm_gguf_type_name(tb->ggml_type));
            CHECK_MSG(ta->nbytes == tb->nbytes && !memcmp(ta->data, tb->data, ta->nbytes), "%s: tensor %s bytes differ", ours, tb->name);
        }
    }
    gclose(&a);
    gclose(&b);
}

static int export(const char *dir, const char *out, const char *mmproj, int ftype, int mmproj_ftype) {
    struct vlm_gguf_export_params p = {0};
    struct vlm_error err;
    p.src_dir = dir;
    p.out = out;
    p.mmproj_out = mmproj;
    p.ftype = ftype;
    p.mmproj_ftype = mmproj_ftype;
    p.n_threads = 2;
    int rc = vlm_gguf_export(&p, &err);
    CHECK_MSG(rc == VLM_OK, "export %s: %s", dir, err.msg);
    return rc;
}

/* Against the converter's text and mmproj files: ref_dir/<name>-<tag>.gguf and <name>-mmproj-<tag>.gguf. */
static void vs_converter(const char *ref_dir, const char *name, const char *tag, int ftype) {
    char dir[300], out[400], mm[400], ref[600], refmm[600];
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    snprintf(out, sizeof out, "%s/%s-%s.gguf", tmp, name, tag);
    snprintf(mm, sizeof mm, "%s/%s-mmproj-%s.gguf", tmp, name, tag);
    snprintf(ref, sizeof ref, "%s/%s-%s.gguf", test_path(ref_dir), name, tag);
    snprintf(refmm, sizeof refmm, "%s/%s-mmproj-%s.gguf", test_path(ref_dir), name, tag);
    if (export(dir, out, mm, ftype, -1) != VLM_OK) return;
    same_file(out, ref);
    same_file(mm, refmm);
}

/* Against llama-quantize on the converter's f32 file (text only: llama-quantize makes no mmproj). */
static void vs_quantize(const char *type) {
    char dir[300], out[400], ref[600];
    snprintf(dir, sizeof dir, "%s/padded-tile", tmp);
    snprintf(out, sizeof out, "%s/padded-tile-%s.gguf", tmp, type);
    snprintf(ref, sizeof ref, "%s/padded-tile-%s.gguf", test_path("tests/fixtures/gguf-write"), type);
    if (export(dir, out, NULL, vlm_gguf_ftype_parse(type), -1) != VLM_OK) return;
    same_file(out, ref);
}

/* Last-position logits of a prompt of plain tokens (no image: the vision file is checked above). */
static int logits_of(const char *path, const char *mmproj, const int32_t *ids, int n, float **out) {
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = 0;
    mp.n_threads = 1;
    mp.mmproj = mmproj;
    struct vlm_model *m = NULL;
    struct vlm_ctx *ctx = NULL;
    struct vlm_error err;
    int rc = vlm_model_load(path, &mp, &m);
    CHECK_MSG(rc == VLM_OK, "%s: %s", path, vlm_last_error());
    if (rc != VLM_OK) return rc;
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_seq_max = 1;
    cp.n_batch_max = n;
    cp.n_ctx = n;
    cp.n_threads = 1;
    rc = vlm_ctx_new(m, &cp, &ctx, &err);
    int32_t pos[64], seq[64] = {0};
    for (int i = 0; i < n; i++) pos[i] = i;
    struct vlm_batch b = {n, ids, NULL, pos, seq, NULL, NULL};
    if (rc == VLM_OK) rc = vlm_ctx_decode(ctx, &b, &err);
    CHECK_MSG(rc == VLM_OK, "%s: %s", path, err.msg);
    int nv = vlm_model_get_info(m)->n_vocab;
    if (rc == VLM_OK && (*out = vlm_malloc(sizeof(float) * (size_t)nv))) memcpy(*out, vlm_ctx_logits(ctx, 0), sizeof(float) * (size_t)nv);
    vlm_ctx_free(ctx);
    vlm_model_free(m);
    return rc == VLM_OK ? nv : -1;
}

/* Quantized exports against the f32 safetensors: the RMS of the logit differences over the
 * logits' RMS within tol (see main for why each tolerance). */
static void logits_close(const char *type, double tol) {
    static const int32_t ids[] = {1, 45, 120, 7, 88, 230, 15, 99, 3, 250, 61, 300, 300, 12, 140, 77};
    int n = (int)(sizeof ids / sizeof ids[0]);
    char dir[300], out[400], mm[400];
    snprintf(dir, sizeof dir, "%s/padded-tile", tmp);
    snprintf(out, sizeof out, "%s/padded-tile-%s.gguf", tmp, type);
    snprintf(mm, sizeof mm, "%s/padded-tile-mmproj-%s.gguf", tmp, type);
    if (export(dir, out, mm, vlm_gguf_ftype_parse(type), -1) != VLM_OK) return;
    float *a = NULL, *b = NULL;
    int na = logits_of(test_path("tests/fixtures/models/padded-tile"), NULL, ids, n, &a);
    int nb = logits_of(out, mm, ids, n, &b);
    if (na > 0 && na == nb && a && b) {
        double d = 0, rms = 0, mx = 0;
        for (int i = 0; i < na; i++) {
            double e = fabs((double)a[i] - b[i]);
            if (!(e <= mx)) mx = e;
            d += e * e;
            rms += (double)a[i] * a[i];
        }
        rms = sqrt(rms / na);
        d = sqrt(d / na);
        printf("  %s: logit diff RMS %.4g = %.3g of the logits' RMS %.4g (tol %.3g), max %.4g\n", type, d, d / rms, rms, tol, mx);
        CHECK_MSG(d / rms <= tol, "%s: logits differ by %.3g of their RMS", type, d / rms);
    }
    vlm_free(a);
    vlm_free(b);
}

static void errors(void) {
    struct vlm_gguf_export_params p = {0};
    struct vlm_error err;
    char dir[300], out[400], path[400];
    snprintf(dir, sizeof dir, "%s/padded-tile", tmp);
    snprintf(out, sizeof out, "%s/bad.gguf", tmp);
    snprintf(path, sizeof path, "%s/bad-mmproj.gguf", tmp);
    p.src_dir = dir;
    p.out = out;
    p.ftype = VLM_FTYPE_F16;
    p.mmproj_ftype = VLM_FTYPE_Q4_K_M;
    p.mmproj_out = path;
    CHECK(vlm_gguf_export(&p, &err) == VLM_E_INVALID);
    p.mmproj_ftype = -1;
    p.mmproj_out = out;
    CHECK(vlm_gguf_export(&p, &err) == VLM_E_INVALID);
    p.mmproj_out = NULL;
    p.ftype = 99;
    CHECK(vlm_gguf_export(&p, &err) == VLM_E_INVALID);
    p.ftype = VLM_FTYPE_F16;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    CHECK(unlink(path) == 0);
    CHECK(vlm_gguf_export(&p, &err) == VLM_E_NOT_FOUND);
    CHECK(strstr(err.msg, "tokenizer.json") != NULL);
    CHECK(!vlm_file_exists(out));
    snprintf(dir, sizeof dir, "%s/missing", tmp);
    CHECK(vlm_gguf_export(&p, &err) != VLM_OK);
    CHECK(vlm_gguf_ftype_parse("Q4_K_M") == VLM_FTYPE_Q4_K_M && vlm_gguf_ftype_parse("q4_k") < 0);
}

static void cleanup(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp);
}

int main(void) {
    char dir[300];
    snprintf(tmp, sizeof tmp, "/tmp/vlm-test-gguf-export-%d", (int)getpid());
    mkdir(tmp, 0755);
    make_folder("padded-tile", dir, sizeof dir);
    make_folder("rope-linear", dir, sizeof dir);
    vs_converter("tests/fixtures/gguf", "padded-tile", "f32", VLM_FTYPE_F32);
    vs_converter("tests/fixtures/gguf", "padded-tile", "f16", VLM_FTYPE_F16);
    vs_converter("tests/fixtures/gguf", "rope-linear", "f32", VLM_FTYPE_F32);
    vs_converter("tests/fixtures/gguf", "rope-linear", "f16", VLM_FTYPE_F16);
    vs_converter("tests/fixtures/gguf-write", "padded-tile", "conv-bf16", VLM_FTYPE_BF16);
    vs_converter("tests/fixtures/gguf-write", "padded-tile", "conv-q8_0", VLM_FTYPE_Q8_0);
    vs_quantize("q8_0");
    vs_quantize("q4_0");
    vs_quantize("q4_k_m");
    vs_quantize("q5_k_m");
    /* Tolerances: a weight rounded to a step s has an error of RMS s/sqrt(12); relative to the
     * weights' RMS (amax is ~2.5 RMS for 32 normal weights) that is about 0.6% for Q8_0
     * (s = amax/127), 4.5% for Q5_0 (amax/16) and 9% for Q4_0 (amax/8); padded-tile's rows of
     * 32 and 48 make q4_k_m fall back to Q5_0 (attn_v, the embedding: Q8_0; ffn_down: F16).
     * About 7 independent quantized matmuls lie on the path to a logit (2 layers x q/k/v/o/ffn
     * and the tied head), so the logits' relative error is about sqrt(7) = 2.6x the weights':
     * 1.6%, 12%, 24%; activations rounded to int8 per block (as llama.cpp does) add ~0.6%.
     * The bounds are those estimates with 50% headroom. */
    logits_close("q8_0", 0.03);
    logits_close("q4_k_m", 0.18);
    logits_close("q4_0", 0.36);
    errors();
    cleanup();
    printf("%d passed, %d failed\n", test_pass, test_fail);
    return test_fail != 0;
}
