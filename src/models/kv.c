/* kv.c — the decoder's per-sequence KV store: per layer, K and V arrays that grow in chunks
 * as a sequence does, all sequences together under one token cap; a cleared slot gives its
 * memory back at once. */
#include <string.h>

#include "models/model.h"
#include "tensor/tensor.h"
#include "util/alloc.h"
#include "util/error.h"

#define KV_CHUNK 256   /* tokens a sequence grows by at least (amortizes the reallocations) */

int vlm_kv_init(struct vlm_kv *kv, int n_layer, int kv_dim, int n_seq, int n_ctx, long cap_tokens,
                enum vlm_dtype type, struct vlm_error *err) {
    memset(kv, 0, sizeof *kv);
    if (n_layer <= 0 || kv_dim <= 0 || n_seq <= 0 || n_ctx <= 0 || cap_tokens <= 0)
        return vlm_error_set(err, VLM_E_INVALID, "bad KV cache sizes");
    if (type != VLM_DT_F32 && type != VLM_DT_F16 && type != VLM_DT_BF16)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "KV cache type %s is not supported (float32, float16, bfloat16)",
                             vlm_dtype_name(type));
    kv->type = type;
    kv->esize = vlm_dtype_size(type);
    kv->seq = vlm_calloc((size_t)n_seq, sizeof *kv->seq);
    if (!kv->seq) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    kv->n_layer = n_layer;
    kv->kv_dim = kv_dim;
    kv->n_seq = n_seq;
    kv->n_ctx = n_ctx;
    kv->cap_tokens = cap_tokens;
    return VLM_OK;
}

/* Frees a sequence's K/V arrays (its family state stays). */
static void kv_clear_arrays(struct vlm_kv *kv, int s) {
    struct vlm_kv_seq *q = &kv->seq[s];
    if (q->k)
        for (int l = 0; l < kv->n_layer; l++) {
            vlm_free(q->k[l]);
            vlm_free(q->v[l]);
        }
    vlm_free(q->k);
    vlm_free(q->v);
    kv->used_tokens -= q->cap;
    q->k = q->v = NULL;
    q->len = q->cap = q->keep = 0;
}

void vlm_kv_clear(struct vlm_kv *kv, int s) {
    if (!kv || s < 0 || s >= kv->n_seq) return;
    struct vlm_kv_seq *q = &kv->seq[s];
    kv_clear_arrays(kv, s);
    if (q->family_state && kv->state_free) kv->state_free(q->family_state);
    q->family_state = NULL;
    kv->used_tokens -= q->state_tokens;
    q->state_tokens = 0;
}

size_t vlm_kv_token_bytes(const struct vlm_kv *kv) { return 2 * kv->esize * (size_t)kv->kv_dim * (size_t)kv->n_layer; }

void vlm_kv_free(struct vlm_kv *kv) {
    if (!kv || !kv->seq) return;
    for (int s = 0; s < kv->n_seq; s++) vlm_kv_clear(kv, s);
    vlm_free(kv->seq);
    memset(kv, 0, sizeof *kv);
}

/* Gives a sequence's unused capacity back (so that vlm_ctx_kv_free, which counts stored
 * tokens, is what a reservation can really get). */
static void kv_trim(struct vlm_kv *kv, int s) {
    struct vlm_kv_seq *q = &kv->seq[s];
    int keep = q->len > q->keep ? q->len : q->keep;   /* rows reserved for the step in progress stay */
    if (!q->k || q->cap <= keep) return;
    if (keep == 0) { kv_clear_arrays(kv, s); return; }
    size_t bytes = kv->esize * (size_t)keep * (size_t)kv->kv_dim;
    for (int l = 0; l < kv->n_layer; l++) {   /* shrinking realloc keeps the data; a failure keeps the old block */
        void *k = vlm_realloc(q->k[l], bytes), *v = vlm_realloc(q->v[l], bytes);
        if (k) q->k[l] = k;
        if (v) q->v[l] = v;
    }
    kv->used_tokens -= q->cap - keep;
    q->cap = keep;
}

int vlm_kv_reserve(struct vlm_kv *kv, int s, int n, struct vlm_error *err) {
    struct vlm_kv_seq *q = &kv->seq[s];
    if (n > q->keep) q->keep = n;
    if (n <= q->cap) return VLM_OK;
    if (n > kv->n_ctx) return vlm_error_set(err, VLM_E_TOO_LARGE, "sequence of %d tokens passes the context length %d", n, kv->n_ctx);
    long want = q->cap * 2L > n + KV_CHUNK ? q->cap * 2L : (long)n + KV_CHUNK;
    if (want > kv->n_ctx) want = kv->n_ctx;
    if (kv->used_tokens - q->cap + want > kv->cap_tokens) {
        want = n;   /* fall back to exactly what is needed, taking back other sequences' slack */
        for (int o = 0; o < kv->n_seq && kv->used_tokens - q->cap + want > kv->cap_tokens; o++)
            if (o != s) kv_trim(kv, o);
        if (kv->used_tokens - q->cap + want > kv->cap_tokens)
            return vlm_error_set(err, VLM_E_NOMEM, "KV cache full (%ld of %ld tokens in use)", kv->used_tokens, kv->cap_tokens);
    }
    if (!q->k) {
        q->k = vlm_calloc((size_t)kv->n_layer, sizeof *q->k);
        q->v = vlm_calloc((size_t)kv->n_layer, sizeof *q->v);
        if (!q->k || !q->v) {
            vlm_free(q->k); vlm_free(q->v);
            q->k = q->v = NULL;
            return vlm_error_set(err, VLM_E_NOMEM, "out of memory for the KV cache");
        }
    }
    size_t bytes = kv->esize * (size_t)want * (size_t)kv->kv_dim;
    for (int l = 0; l < kv->n_layer; l++) {
        void *k = vlm_realloc(q->k[l], bytes);
        if (k) q->k[l] = k;
        void *v = k ? vlm_realloc(q->v[l], bytes) : NULL;
        if (v) q->v[l] = v;
        if (!k || !v) return vlm_error_set(err, VLM_E_NOMEM, "out of memory for the KV cache");
    }
    kv->used_tokens += want - q->cap;
    q->cap = (int)want;
    return VLM_OK;
}

int vlm_kv_set_state(struct vlm_kv *kv, int s, void *st, long tokens, struct vlm_error *err) {
    struct vlm_kv_seq *q = &kv->seq[s];
    long others = kv->used_tokens - q->state_tokens;
    for (int o = 0; o < kv->n_seq && others + tokens > kv->cap_tokens; o++)
        if (o != s) {
            kv_trim(kv, o);
            others = kv->used_tokens - q->state_tokens;
        }
    if (others + tokens > kv->cap_tokens)
        return vlm_error_set(err, VLM_E_NOMEM, "KV cache full: the images need %ld tokens of room, %ld of %ld are in use",
                             tokens, others, kv->cap_tokens);
    if (q->family_state && kv->state_free) kv->state_free(q->family_state);
    q->family_state = st;
    kv->used_tokens = others + tokens;
    q->state_tokens = tokens;
    return VLM_OK;
}

void vlm_kv_state_shrink(struct vlm_kv *kv, int s, long tokens) {
    struct vlm_kv_seq *q = &kv->seq[s];
    if (tokens < 0 || tokens >= q->state_tokens) return;
    kv->used_tokens -= q->state_tokens - tokens;
    q->state_tokens = tokens;
}

void vlm_kv_put(struct vlm_kv *kv, int s, int l, int pos, const float *k, const float *v) {
    struct vlm_kv_seq *q = &kv->seq[s];
    size_t n = (size_t)kv->kv_dim, off = (size_t)pos * n;
    if (kv->type == VLM_DT_F32) {
        memcpy((float *)q->k[l] + off, k, n * sizeof(float));
        memcpy((float *)q->v[l] + off, v, n * sizeof(float));
    } else if (kv->type == VLM_DT_BF16) {
        vlm_f32_to_bf16_row((uint16_t *)q->k[l] + off, k, n);
        vlm_f32_to_bf16_row((uint16_t *)q->v[l] + off, v, n);
    } else {
        vlm_f32_to_f16_row((uint16_t *)q->k[l] + off, k, n);
        vlm_f32_to_f16_row((uint16_t *)q->v[l] + off, v, n);
    }
}
