/* gguf_weights.c — a parsed GGUF file's tensors into the weight map under a family's names:
 * pattern rules with a block number, shapes turned to our outermost-first order, and the Q/K
 * rows llama.cpp's converter permutes for its RoPE layout put back in Hugging Face order. */
#include <stdio.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/weights.h"
#include "util/alloc.h"
#include "util/error.h"

/* Matches s against pattern p (one optional "%d" standing for a decimal block number without
 * leading zeros); *blk receives the number (-1 when p has none). */
static int match(const char *p, const char *s, int *blk) {
    const char *d = strstr(p, "%d");
    *blk = -1;
    if (!d) return !strcmp(p, s);
    size_t pre = (size_t)(d - p);
    if (strncmp(p, s, pre)) return 0;
    s += pre;
    if (*s < '0' || *s > '9' || (s[0] == '0' && s[1] >= '0' && s[1] <= '9')) return 0;
    long v = 0;
    while (*s >= '0' && *s <= '9') {
        v = v * 10 + (*s++ - '0');
        if (v > 1000000) return 0;
    }
    if (strcmp(d + 2, s)) return 0;
    *blk = (int)v;
    return 1;
}

/* Undoes the converter's permute(): HF row h*hd + s*hd/2 + i was written as row h*hd + 2i + s. */
static int unpermute(const struct vlm_gguf *g, const struct vlm_gguf_tensor *gt, struct vlm_tensor *t,
                     int heads, void **owned, struct vlm_error *err) {
    int64_t rows = t->ne[0];
    if (heads <= 0 || rows <= 0 || rows % heads || (rows / heads) % 2)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s': %lld rows do not split into %d heads of an even size",
                             g->fname, gt->name, (long long)rows, heads);
    size_t rb = gt->nbytes / (size_t)rows;
    uint8_t *dst = vlm_malloc(gt->nbytes ? gt->nbytes : 1);
    if (!dst) return vlm_error_set(err, VLM_E_NOMEM, "out of memory un-permuting '%s'", gt->name);
    int64_t hd = rows / heads, half = hd / 2;
    for (int64_t h = 0; h < heads; h++)
        for (int64_t s = 0; s < 2; s++)
            for (int64_t i = 0; i < half; i++)
                memcpy(dst + (size_t)(h * hd + s * half + i) * rb, gt->data + (size_t)(h * hd + 2 * i + s) * rb, rb);
    t->data = dst;
    *owned = dst;
    return VLM_OK;
}

static int add_one(struct vlm_weights *w, const struct vlm_gguf *g, int file, const struct vlm_gguf_tensor *gt,
                   const struct vlm_gguf_name *r, int blk, int n_head, int n_head_kv, struct vlm_error *err) {
    char name[256];
    int n = blk >= 0 ? snprintf(name, sizeof name, r->name, blk) : snprintf(name, sizeof name, "%s", r->name);
    if (n < 0 || (size_t)n >= sizeof name)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: tensor '%s': mapped name too long", g->fname, gt->name);
    if (gt->dtype == VLM_DT_COUNT)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: tensor '%s' has type %s, which vlm.c does not load",
                             g->fname, gt->name, vlm_gguf_type_name(gt->ggml_type));
    struct vlm_tensor t;
    memset(&t, 0, sizeof t);
    t.type = gt->dtype;
    t.n_dims = (int)gt->n_dims;
    for (uint32_t d = 0; d < gt->n_dims; d++) t.ne[d] = gt->ne[gt->n_dims - 1 - d];
    t.data = gt->data;
    t.nbytes = gt->nbytes;
    int rc;
    if (r->rows == VLM_GGUF_ROWS_AS_IS) {
        rc = vlm_weights_add(w, name, (size_t)n, &t, file, err);
    } else {
        void *owned = NULL;
        rc = unpermute(g, gt, &t, r->rows == VLM_GGUF_ROWS_ROPE_Q ? n_head : n_head_kv, &owned, err);
        if (rc == VLM_OK) rc = vlm_weights_add_owned(w, name, (size_t)n, &t, file, owned, err);
    }
    return rc == VLM_OK ? vlm_weights_set_src_name(w, gt->name, err) : rc;
}

int vlm_gguf_add_tensors(struct vlm_weights *w, const struct vlm_gguf *g, int file,
                         const struct vlm_gguf_name *names, int n_head, int n_head_kv,
                         size_t *n_skipped, struct vlm_error *err) {
    size_t skipped = 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        const struct vlm_gguf_tensor *gt = &g->t[i];
        const struct vlm_gguf_name *r = names;
        int blk = -1;
        while (r->gguf && !match(r->gguf, gt->name, &blk)) r++;
        if (!r->gguf) { skipped++; continue; }
        int rc = add_one(w, g, file, gt, r, blk, n_head, n_head_kv, err);
        if (rc != VLM_OK) return rc;
    }
    if (n_skipped) *n_skipped = skipped;
    return VLM_OK;
}
