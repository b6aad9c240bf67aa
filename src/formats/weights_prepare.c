/* weights_prepare.c — --dtype and --quantization on a loaded weight map: sets each matrix's
 * arithmetic, converts matrices to bf16/f16, quantizes them into owned memory (over the
 * thread pool) with llama.cpp's per-tensor fallbacks. */
#include "formats/weights_prepare.h"

#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tensor/quant.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/threadpool.h"
#include "vlm.h"

int vlm_dtype_param_parse(const char *s, enum vlm_dtype_param *out, struct vlm_error *err) {
    static const struct { const char *name; enum vlm_dtype_param v; } names[] = {
        {"auto", VLM_DTYPE_AUTO},         {"float32", VLM_DTYPE_FLOAT32}, {"float", VLM_DTYPE_FLOAT32},
        {"bfloat16", VLM_DTYPE_BFLOAT16}, {"float16", VLM_DTYPE_FLOAT16}, {"half", VLM_DTYPE_FLOAT16},
    };
    *out = VLM_DTYPE_AUTO;
    if (!s || !*s) return VLM_OK;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(s, names[i].name)) {
            *out = names[i].v;
            return VLM_OK;
        }
    return vlm_error_set(err, VLM_E_INVALID,
                         "--dtype: unknown value '%s' (expected auto, float32, float, bfloat16, float16 or half)", s);
}

int vlm_quant_param_parse(const char *s, enum vlm_dtype *out, struct vlm_error *err) {
    static const struct { const char *name; enum vlm_dtype t; } names[] = {
        {"q8_0", VLM_DT_Q8_0}, {"q4_0", VLM_DT_Q4_0}, {"q4_1", VLM_DT_Q4_1}, {"q5_0", VLM_DT_Q5_0},
        {"q5_1", VLM_DT_Q5_1}, {"q4_k", VLM_DT_Q4_K}, {"q5_k", VLM_DT_Q5_K}, {"q6_k", VLM_DT_Q6_K},
    };
    *out = VLM_DT_COUNT;
    if (!s || !*s) return VLM_OK;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcasecmp(s, names[i].name)) {
            *out = names[i].t;
            return VLM_OK;
        }
    return vlm_error_set(err, VLM_E_INVALID,
                         "--quantization: unknown value '%s' (expected q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k)", s);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

enum vlm_dtype vlm_quant_type_for(enum vlm_dtype q, const char *name, int64_t k) {
    enum vlm_dtype t = q;
    if ((q == VLM_DT_Q4_K || q == VLM_DT_Q5_K) &&
        (ends_with(name, "lm_head.weight") || ends_with(name, "embed_tokens.weight")))
        t = VLM_DT_Q6_K;
    if (k % vlm_dtype_block_elems(t)) {
        t = t == VLM_DT_Q4_K ? VLM_DT_Q5_0 : t == VLM_DT_Q5_K ? VLM_DT_Q5_1 : t == VLM_DT_Q6_K ? VLM_DT_Q8_0 : t;
        if (k % vlm_dtype_block_elems(t)) return VLM_DT_COUNT;
    }
    return t;
}

/* Whether a tensor is a matrix that --dtype / --quantization change. Position embeddings are
 * looked up by row, small, and kept exact. */
static int is_matrix(const struct vlm_weight *e) {
    return e->t.n_dims == 2 && !strstr(e->name, "position_embedding") &&
           (e->t.type == VLM_DT_F32 || e->t.type == VLM_DT_F16 || e->t.type == VLM_DT_BF16);
}

/* The pages wholly inside a converted tensor's file bytes are not needed any more: dropping
 * them from this process (they stay in the page cache; a later touch refaults them from the
 * file, the mapping being read-only) keeps RSS at the converted size. */
static void drop_pages(const void *data, size_t n) {
    long pg = sysconf(_SC_PAGESIZE);
    if (pg <= 0) return;
    uintptr_t a = ((uintptr_t)data + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1), b = ((uintptr_t)data + n) & ~((uintptr_t)pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* Replaces e's data by a (rows, k) copy as type t, made over the pool. */
static int convert(struct vlm_weights *w, struct vlm_weight *e, enum vlm_dtype t, struct vlm_pool *pool,
                   struct vlm_error *err) {
    int64_t rows = e->t.ne[0], k = e->t.ne[1];
    size_t rb = vlm_dtype_row_bytes(t, k), nb;
    if (!rb || !vlm_mul_ok(rb, (size_t)rows, &nb))
        return vlm_error_set(err, VLM_E_INVALID, "tensor '%s': cannot be stored as %s", e->name, vlm_dtype_name(t));
    void *dst = vlm_malloc(nb ? nb : 1);
    if (!dst) return vlm_error_set(err, VLM_E_NOMEM, "tensor '%s': out of memory converting to %s", e->name, vlm_dtype_name(t));
    int rc = vlm_quantize_rows(pool, t, dst, e->t.type, e->t.data, rows, k);
    if (rc != VLM_OK) {
        vlm_free(dst);
        return vlm_error_set(err, rc, "tensor '%s': converting to %s failed", e->name, vlm_dtype_name(t));
    }
    w->total_bytes = w->total_bytes - e->t.nbytes + nb;
    if (!e->owned) drop_pages(e->t.data, e->t.nbytes);   /* the bytes were in the file mapping */
    vlm_free(e->owned);
    e->owned = dst;
    e->t.data = dst;
    e->t.nbytes = nb;
    e->t.type = t;
    return VLM_OK;
}

/* Matrices --quantization leaves in a float type: Gemma 3's mm_input_projection_weight is
 * stored (d_vision, d_text) and used as x @ W, so its rows are not the rows a block type groups
 * (the family transposes it); llama.cpp's converter keeps it in F16 too (Gemma3VisionModel's
 * tensor_force_quant). */
static int keep_float(const char *name) {
    return ends_with(name, "mm_input_projection_weight");
}

int vlm_weights_prepare(struct vlm_weights *w, enum vlm_dtype_param dtype, enum vlm_dtype q,
                        struct vlm_pool *pool, struct vlm_error *err) {
    for (size_t i = 0; i < w->n; i++) {
        struct vlm_weight *e = &w->w[i];
        if (!is_matrix(e)) continue;
        int rc = VLM_OK;
        enum vlm_dtype qt = q == VLM_DT_COUNT || keep_float(e->name) ? VLM_DT_COUNT : vlm_quant_type_for(q, e->name, e->t.ne[1]);
        if (qt != VLM_DT_COUNT) rc = convert(w, e, qt, pool, err);
        else if (dtype == VLM_DTYPE_BFLOAT16 && e->t.type != VLM_DT_BF16) rc = convert(w, e, VLM_DT_BF16, pool, err);
        else if (dtype == VLM_DTYPE_FLOAT16 && e->t.type != VLM_DT_F16) rc = convert(w, e, VLM_DT_F16, pool, err);
        if (rc != VLM_OK) return rc;
    }
    /* the arithmetic of every bf16 matrix (2-D and conv kernels) */
    for (size_t i = 0; i < w->n; i++) {
        struct vlm_tensor *t = &w->w[i].t;
        t->compute = t->type == VLM_DT_BF16 && t->n_dims >= 2 && dtype != VLM_DTYPE_FLOAT32 ? VLM_COMPUTE_BF16
                                                                                         : VLM_COMPUTE_F32;
    }
    return VLM_OK;
}
