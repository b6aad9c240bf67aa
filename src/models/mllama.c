/* mllama.c — the Llama 3.2 Vision family table: loading and checking every tensor (published
 * "language_model.model." names and transformers 5's "model.language_model." ones), image
 * encoding, per-sequence cross-attention K/V made once when a sequence gets its images, and
 * the decoder step: llama.c runs the self-attention layers and calls back here for the gated
 * cross-attention layers, as MllamaCrossAttentionDecoderLayer computes them in f32. */
#include "models/mllama.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/config.h"
#include "formats/weights.h"
#include "models/batch.h"
#include "models/mllama_processor.h"
#include "models/model.h"
#include "models/processor.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/threadpool.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) goto fail; } while (0)
#define MLLAMA_MAX_IMAGES 64   /* images of one sequence: a bit set per row */

/* What one sequence keeps: its images' cross-attention K/V for every cross layer, and which
 * prompt tokens attend to which image. */
struct mllama_state {
    int n_images, rows;          /* rows (keys) per image: max_tiles * n_patch */
    int32_t start[MLLAMA_MAX_IMAGES], end[MLLAMA_MAX_IMAGES];   /* end INT_MAX: also every generated token */
    int koff[MLLAMA_MAX_IMAGES], kvalid[MLLAMA_MAX_IMAGES];     /* image i's keys; the first kvalid are its valid tiles' */
    int n_keys;
    /* A row outside every span attends to every key, padded tiles included; once the last such
     * row is done (pos >= compact_after), the padded tiles' keys are dropped (compacted). */
    int compact_after;           /* INT_MAX: never (some generated tokens would be outside every span) */
    int compacted;
    enum vlm_dtype type;
    int n_cross;
    void **k, **v;               /* (n_cross) each (n_keys, kv_dim) of type */
};

static void state_free(void *p) {
    struct mllama_state *st = p;
    if (!st) return;
    for (int c = 0; st->k && c < st->n_cross; c++) {
        vlm_free(st->k[c]);
        vlm_free(st->v[c]);
    }
    vlm_free(st->k);
    vlm_free(st->v);
    vlm_free(st);
}

static int read_cross_layers(const struct vlm_config *c, json_t *tc, int n_layer, uint8_t *is_cross,
                             struct vlm_error *err) {
    static const int def[8] = {3, 8, 13, 18, 23, 28, 33, 38};
    json_t *a = json_object_get(tc, "cross_attention_layers");
    memset(is_cross, 0, (size_t)n_layer);
    if (!a || json_is_null(a)) {
        for (int i = 0; i < 8; i++) {
            if (def[i] >= n_layer)
                return vlm_error_set(err, VLM_E_FORMAT, "%s: text_config.cross_attention_layers is missing and the default layer %d is past num_hidden_layers %d",
                                     c->path, def[i], n_layer);
            is_cross[def[i]] = 1;
        }
        return VLM_OK;
    }
    if (!json_is_array(a)) return vlm_error_set(err, VLM_E_FORMAT, "%s: text_config.cross_attention_layers is not a list", c->path);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) >= n_layer)
            return vlm_error_set(err, VLM_E_FORMAT, "%s: text_config.cross_attention_layers[%zu] is not a layer index below %d", c->path, i, n_layer);
        is_cross[json_integer_value(e)] = 1;
    }
    return VLM_OK;
}

static int load_cross(const struct vlm_weights *w, const char *tp, int layer, const struct vlm_llama_hparams *h,
                      struct vlm_mllama_cross *X, float **cur, struct vlm_error *err) {
    int d = h->d_model, q = h->n_head * h->d_head, kvd = h->n_head_kv * h->d_head, rc;
    char n[320];
    float g;
    const float *gp;
    float *gc = &g;
#define NAME(s) (snprintf(n, sizeof n, "%slayers.%d.%s", tp, layer, s), n)
    if ((rc = vlm_weights_vec_f32(w, NAME("input_layernorm.weight"), d, cur, &X->ln1, err)) ||
        (rc = vlm_weights_vec_f32(w, NAME("post_attention_layernorm.weight"), d, cur, &X->ln2, err)) ||
        (rc = vlm_weights_vec_f32(w, NAME("cross_attn.q_norm.weight"), h->d_head, cur, &X->q_norm, err)) ||
        (rc = vlm_weights_vec_f32(w, NAME("cross_attn.k_norm.weight"), h->d_head, cur, &X->k_norm, err)) ||
        (rc = vlm_weights_mat(w, NAME("cross_attn.q_proj.weight"), q, d, &X->wq, err)) ||
        (rc = vlm_weights_mat(w, NAME("cross_attn.k_proj.weight"), kvd, d, &X->wk, err)) ||
        (rc = vlm_weights_mat(w, NAME("cross_attn.v_proj.weight"), kvd, d, &X->wv, err)) ||
        (rc = vlm_weights_mat(w, NAME("cross_attn.o_proj.weight"), d, q, &X->wo, err)) ||
        (rc = vlm_weights_mat(w, NAME("mlp.gate_proj.weight"), h->d_ff, d, &X->w_gate, err)) ||
        (rc = vlm_weights_mat(w, NAME("mlp.up_proj.weight"), h->d_ff, d, &X->w_up, err)) ||
        (rc = vlm_weights_mat(w, NAME("mlp.down_proj.weight"), d, h->d_ff, &X->w_down, err)))
        return rc;
    if ((rc = vlm_weights_vec_f32(w, NAME("cross_attn_attn_gate"), 1, &gc, &gp, err))) return rc;
    X->attn_gate = tanhf(g);
    gc = &g;
    if ((rc = vlm_weights_vec_f32(w, NAME("cross_attn_mlp_gate"), 1, &gc, &gp, err))) return rc;
    X->mlp_gate = tanhf(g);
#undef NAME
    return VLM_OK;
}

static void mllama_free(struct vlm_model *m) {
    struct vlm_mllama *f = m->impl;
    if (!f) return;
    vlm_mllama_vision_free(&f->vision);
    vlm_llama_free(&f->text);
    vlm_free(f->cross_of);
    vlm_free(f->cross);
    vlm_free(f->owned);
    vlm_free(f);
    m->impl = NULL;
}

static int mllama_load(struct vlm_model *m, struct vlm_error *err) {
    struct vlm_mllama *f = vlm_calloc(1, sizeof *f);
    if (!f) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    m->impl = f;
    const struct vlm_config *c = &m->cfg;
    json_t *vc, *tc;
    struct vlm_mllama_vision_hparams vh;
    struct vlm_llama_hparams th;
    long long itok;
    uint8_t *is_cross = NULL;
    int rc;
    CHK(vlm_config_sub(c, "vision_config", &vc, err));
    CHK(vlm_config_sub(c, "text_config", &tc, err));
    CHK(vlm_mllama_vision_hparams_read(c, vc, &vh, err));
    CHK(vlm_llama_hparams_read(c, tc, 1e-5f, &th, err));
    CHK(vlm_config_int(c, c->root, "image_token_index", th.n_vocab, 0, th.n_vocab + 7, &itok, err));
    th.tied = 0;                      /* lm_head is never tied (the embedding has vocab + 8 rows) */
    th.n_embd_rows = th.n_vocab + 8;
    if (th.d_head * th.n_head != th.d_model) {
        rc = vlm_error_set(err, VLM_E_FORMAT, "%s: text hidden_size %d is not num_attention_heads x head_dim", c->path, th.d_model);
        goto fail;
    }
    is_cross = vlm_malloc((size_t)th.n_layer);
    f->cross_of = vlm_malloc(sizeof(int) * (size_t)th.n_layer);
    if (!is_cross || !f->cross_of) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto fail; }
    CHK(read_cross_layers(c, tc, th.n_layer, is_cross, err));
    for (int i = 0; i < th.n_layer; i++) f->cross_of[i] = is_cross[i] ? f->n_cross++ : -1;
    /* published checkpoints: "language_model.model.", transformers 5 re-saves: "model.language_model." */
    int v5 = vlm_weights_get(&m->weights, "model.language_model.embed_tokens.weight") != NULL;
    const char *tp = v5 ? "model.language_model." : "language_model.model.";
    CHK(vlm_llama_load_ex(&f->text, &th, &m->weights, tp, v5 ? "lm_head.weight" : "language_model.lm_head.weight",
                          is_cross, err));
    CHK(vlm_mllama_vision_load(&f->vision, &vh, &m->weights, v5 ? "model.vision_model." : "vision_model.",
                               v5 ? "model.multi_modal_projector." : "multi_modal_projector.", th.d_model, err));
    f->cross = vlm_calloc((size_t)(f->n_cross ? f->n_cross : 1), sizeof *f->cross);
    f->owned = vlm_malloc(sizeof(float) * (size_t)(f->n_cross ? f->n_cross : 1) * (2 * (size_t)th.d_model + 2 * (size_t)th.d_head));
    if (!f->cross || !f->owned) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); goto fail; }
    float *cur = f->owned;
    for (int i = 0; i < th.n_layer; i++)
        if (f->cross_of[i] >= 0) CHK(load_cross(&m->weights, tp, i, &th, &f->cross[f->cross_of[i]], &cur, err));
    vlm_free(is_cross);
    m->info.n_vocab = th.n_vocab;
    m->info.n_embd_rows = th.n_embd_rows;
    m->info.d_model = th.d_model;
    m->info.n_layer = f->text.n_kv_layer;
    m->info.kv_dim = th.n_head_kv * th.d_head;
    m->info.n_ctx_train = th.max_pos;
    m->info.image_token_id = (int32_t)itok;
    m->info.cross_image_rows = vlm_mllama_vision_rows(&f->vision);
    m->info.max_tiles = vh.max_tiles;
    m->info.max_images = MLLAMA_MAX_IMAGES;
    /* K and V of rows keys per cross layer, in tokens of K and V per self-attention layer */
    m->info.cross_image_tokens = (int)(((long)m->info.cross_image_rows * f->n_cross + f->text.n_kv_layer - 1) /
                                       (f->text.n_kv_layer > 0 ? f->text.n_kv_layer : 1));
    return VLM_OK;
fail:
    vlm_free(is_cross);
    mllama_free(m);
    return rc;
}

static int mllama_encode(const struct vlm_model *m, struct vlm_pool *pool, const struct vlm_image_input *in,
                         float *embd, struct vlm_error *err) {
    const struct vlm_mllama *f = m->impl;
    const struct vlm_mllama_vision_hparams *vh = &f->vision.hp;
    if (!in || !in->pixels || in->n_tiles < 1 || in->n_tiles > vh->max_tiles || in->channels != vh->n_channels ||
        in->height != vh->image_size || in->width != vh->image_size)
        return vlm_error_set(err, VLM_E_INVALID, "image input does not fit the vision tower (%d tiles of %dx%dx%d; need 1..%d tiles of %dx%dx%d)",
                             in ? in->n_tiles : 0, in ? in->channels : 0, in ? in->height : 0, in ? in->width : 0,
                             vh->max_tiles, vh->n_channels, vh->image_size, vh->image_size);
    return vlm_mllama_vision_encode(&f->vision, pool, in->pixels, in->n_tiles, in->aspect_ratio_id, embd, err);
}

/* ---- per-sequence image states ---- */

static void store_rows(void *dst, enum vlm_dtype t, const float *src, size_t n) {
    if (t == VLM_DT_F32) memcpy(dst, src, n * sizeof(float));
    else if (t == VLM_DT_BF16) vlm_f32_to_bf16_row(dst, src, n);
    else vlm_f32_to_f16_row(dst, src, n);
}

/* The last position outside every span (-1 if none), or INT_MAX when generated tokens are. */
static int uncovered_last(const struct mllama_state *st, int n_images, int n_prompt) {
    int last = -1, open_end = 0;
    for (int i = 0; i < n_images; i++) open_end |= st->end[i] == INT_MAX;
    if (!open_end) return INT_MAX;
    for (int p = 0; p < n_prompt; p++) {
        int in = 0;
        for (int i = 0; i < n_images && !in; i++) in = p >= st->start[i] && p < st->end[i];
        if (!in) last = p;
    }
    return last;
}

/* Drops the padded tiles' keys of every image (valid tiles are a prefix of each image's block)
 * and gives their room back to the KV cache. */
static void compact(const struct vlm_model *m, struct vlm_kv *kv, int s, struct mllama_state *st) {
    const struct vlm_mllama *f = m->impl;
    size_t row = (size_t)f->text.hp.n_head_kv * f->text.hp.d_head * vlm_dtype_size(st->type);
    int off = 0;
    for (int i = 0; i < st->n_images; i++) {
        for (int c = 0; c < st->n_cross; c++) {
            memmove((char *)st->k[c] + (size_t)off * row, (char *)st->k[c] + (size_t)st->koff[i] * row, (size_t)st->kvalid[i] * row);
            memmove((char *)st->v[c] + (size_t)off * row, (char *)st->v[c] + (size_t)st->koff[i] * row, (size_t)st->kvalid[i] * row);
        }
        st->koff[i] = off;
        off += st->kvalid[i];
    }
    for (int c = 0; c < st->n_cross; c++) {   /* a failed shrink keeps the larger block */
        void *k = vlm_realloc(st->k[c], (size_t)off * row), *v = vlm_realloc(st->v[c], (size_t)off * row);
        if (k) st->k[c] = k;
        if (v) st->v[c] = v;
    }
    st->n_keys = off;
    st->compacted = 1;
    long tokens = ((long)off * st->n_cross + f->text.n_kv_layer - 1) / f->text.n_kv_layer;
    vlm_kv_state_shrink(kv, s, tokens);
}

static int mllama_set_images(const struct vlm_model *m, struct vlm_kv *kv, struct vlm_pool *pool, int s,
                             int n_images, const float *const *states, const int *n_tiles,
                             const struct vlm_mllama_span *spans, int n_prompt, struct vlm_error *err) {
    const struct vlm_mllama *f = m->impl;
    const struct vlm_llama_hparams *h = &f->text.hp;
    int rows = m->info.cross_image_rows, T = f->vision.hp.max_tiles, np = f->vision.hp.n_patch;
    if (s < 0 || s >= kv->n_seq) return vlm_error_set(err, VLM_E_INVALID, "sequence id %d out of range", s);
    if (kv->seq[s].len > 0) return vlm_error_set(err, VLM_E_INVALID, "sequence %d already has tokens: images go first", s);
    if (n_images < 0 || n_images > MLLAMA_MAX_IMAGES)
        return vlm_error_set(err, VLM_E_INVALID, "%d images in one sequence (at most %d)", n_images, MLLAMA_MAX_IMAGES);
    for (int i = 0; i < n_images; i++)
        if (!states[i] || n_tiles[i] < 1 || n_tiles[i] > T || spans[i].start < 0 || spans[i].end > n_prompt ||
            spans[i].start > spans[i].end)
            return vlm_error_set(err, VLM_E_INVALID, "image %d: %d tiles (1..%d), tokens %d..%d of a %d-token prompt",
                                 i, n_tiles[i], T, spans[i].start, spans[i].end, n_prompt);
    if (n_images == 0) {   /* text only: the cross-attention layers are skipped */
        vlm_kv_set_state(kv, s, NULL, 0, err);
        return VLM_OK;
    }
    long need = (long)n_images * m->info.cross_image_tokens;
    int rc0 = vlm_kv_set_state(kv, s, NULL, need, err);   /* room first: no work for images that do not fit */
    if (rc0 != VLM_OK) return rc0;
    struct mllama_state *st = vlm_calloc(1, sizeof *st);
    int kvd = h->n_head_kv * h->d_head, rc = VLM_OK;
    size_t nk = (size_t)n_images * rows, es = vlm_dtype_size(kv->type);
    float *kb = vlm_malloc(sizeof(float) * (size_t)rows * kvd * 2);
    if (st) {
        st->n_images = n_images; st->rows = rows; st->type = kv->type; st->n_cross = f->n_cross;
        st->k = vlm_calloc((size_t)f->n_cross, sizeof(void *));
        st->v = vlm_calloc((size_t)f->n_cross, sizeof(void *));
        st->n_keys = (int)nk;
    }
    if (!st || !kb || !st->k || !st->v) rc = VLM_E_NOMEM;
    for (int c = 0; c < f->n_cross && rc == VLM_OK; c++) {
        st->k[c] = vlm_malloc(nk * kvd * es);
        st->v[c] = vlm_malloc(nk * kvd * es);
        if (!st->k[c] || !st->v[c]) rc = VLM_E_NOMEM;
    }
    if (rc != VLM_OK) {
        state_free(st);
        vlm_free(kb);
        vlm_kv_set_state(kv, s, NULL, 0, err);
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory for the cross-attention states of %d images", n_images);
    }
    float *vb = kb + (size_t)rows * kvd;
    for (int i = 0; i < n_images; i++) {
        st->start[i] = spans[i].start;
        st->end[i] = spans[i].end >= n_prompt ? INT_MAX : spans[i].end;
        st->koff[i] = i * rows;
        st->kvalid[i] = n_tiles[i] * np;
        for (int c = 0; c < f->n_cross; c++) {
            const struct vlm_mllama_cross *X = &f->cross[c];
            vlm_matmul(pool, states[i], rows, X->wk, NULL, kb);
            vlm_matmul(pool, states[i], rows, X->wv, NULL, vb);
            vlm_rmsnorm(kb, kb, X->k_norm, rows * h->n_head_kv, h->d_head, h->rms_eps);
            size_t off = (size_t)i * rows * kvd * es;
            store_rows((char *)st->k[c] + off, kv->type, kb, (size_t)rows * kvd);
            store_rows((char *)st->v[c] + off, kv->type, vb, (size_t)rows * kvd);
        }
    }
    vlm_free(kb);
    (void)T;
    st->compact_after = uncovered_last(st, n_images, n_prompt);
    rc = vlm_kv_set_state(kv, s, st, need, err);
    if (rc != VLM_OK) state_free(st);
    return rc;
}

/* ---- the decoder step ---- */

/* A run of rows (same sequence, same image set) and its key mask. */
struct xrun {
    const struct mllama_state *st;
    int i0, nr, ci;
    size_t moff;       /* its key mask in s->mask, or (size_t)-1: all keys */
};

struct mllama_scratch {
    void *llama;
    int n_max;
    float *xb, *q, *att, *o, *gate, *up;
    uint64_t *set;     /* (n_max) images each row attends */
    int8_t *has;       /* (n_max) the row's sequence has images */
    uint8_t *mask;     /* grown on demand: the key masks of one layer's runs */
    size_t mask_n;
    struct xrun *runs; /* (n_max) */
    int *small;        /* (n_max) */
};

static void mllama_scratch_free(void *p) {
    struct mllama_scratch *s = p;
    if (!s) return;
    vlm_llama_scratch_free(s->llama);
    vlm_free(s->xb); vlm_free(s->q); vlm_free(s->att); vlm_free(s->o); vlm_free(s->gate); vlm_free(s->up);
    vlm_free(s->set); vlm_free(s->has); vlm_free(s->mask); vlm_free(s->runs); vlm_free(s->small);
    vlm_free(s);
}

static void *mllama_scratch_new(const struct vlm_model *m, int n) {
    const struct vlm_mllama *f = m->impl;
    const struct vlm_llama_hparams *h = &f->text.hp;
    struct mllama_scratch *s = vlm_calloc(1, sizeof *s);
    if (!s || n <= 0) { vlm_free(s); return NULL; }
    size_t N = (size_t)n, d = (size_t)h->d_model, q = (size_t)h->n_head * h->d_head;
    s->n_max = n;
    s->llama = vlm_llama_scratch_new(&f->text, n);
    s->xb = vlm_malloc(N * d * sizeof(float));
    s->o = vlm_malloc(N * d * sizeof(float));
    s->q = vlm_malloc(N * q * sizeof(float));
    s->att = vlm_malloc(N * q * sizeof(float));
    s->gate = vlm_malloc(N * (size_t)h->d_ff * sizeof(float));
    s->up = vlm_malloc(N * (size_t)h->d_ff * sizeof(float));
    s->set = vlm_malloc(N * sizeof *s->set);
    s->has = vlm_malloc(N);
    s->runs = vlm_malloc(N * sizeof(struct xrun));
    s->small = vlm_malloc(N * sizeof(int));
    if (!s->llama || !s->xb || !s->o || !s->q || !s->att || !s->gate || !s->up || !s->set || !s->has || !s->runs ||
        !s->small) {
        mllama_scratch_free(s);
        return NULL;
    }
    return s;
}

struct cross_ctx {
    const struct vlm_mllama *f;
    struct vlm_kv *kv;
    struct mllama_scratch *s;
};

/* A run of rows (same sequence, same image set) attends to that sequence's keys: the valid
 * tiles of the images in the set, or, for a row outside every span, every key (transformers
 * then leaves the row's mask empty and zeroes only the MLP's output). */

struct xattend {
    const struct cross_ctx *c;
    const struct xrun *runs;
    const int *small;
};

static void attend_one(const struct cross_ctx *c, const struct xrun *r, struct vlm_pool *pool) {
    const struct vlm_llama_hparams *h = &c->f->text.hp;
    struct mllama_scratch *s = c->s;
    size_t qd = (size_t)h->n_head * h->d_head;
    vlm_attention_kv(pool, s->att + (size_t)r->i0 * qd, s->q + (size_t)r->i0 * qd, r->nr, r->st->k[r->ci],
                     r->st->v[r->ci], r->st->type, r->st->n_keys, h->n_head, h->n_head_kv, h->d_head,
                     (size_t)h->n_head_kv * h->d_head, 1.0f / sqrtf((float)h->d_head), 0, 0,
                     r->moff == (size_t)-1 ? NULL : s->mask + r->moff);
}

static void attend_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct xattend *a = ctx;
    attend_one(a->c, &a->runs[a->small[task]], NULL);
}

/* Every run's attention: a decode row's is too little work to split across threads, so the
 * small runs (one per decoding sequence) go as one task each in a single pool run. */
static int attend_all(const struct cross_ctx *c, int ci, struct vlm_pool *pool, const struct vlm_batch *b,
                      struct vlm_error *err) {
    struct mllama_scratch *s = c->s;
    const struct vlm_llama_hparams *h = &c->f->text.hp;
    int n = b->n_tokens, n_runs = 0, n_small = 0;
    size_t need = 0;
    for (int pass = 0; pass < 2; pass++) {   /* 0: count the mask bytes, 1: fill the runs and masks */
        size_t moff = 0;
        n_runs = 0;
        for (int i = 0; i < n;) {
            int j = i + 1;
            while (j < n && b->seq_id[j] == b->seq_id[i] && s->set[j] == s->set[i]) j++;
            const struct mllama_state *st = c->kv->seq[b->seq_id[i]].family_state;
            if (s->has[i]) {
                if (!s->set[i] && st->compacted)   /* cannot happen: compaction waits for the last such row */
                    return vlm_error_set(err, VLM_E_INTERNAL, "a row outside every image span after the padded tiles were dropped");
                if (pass) {
                    struct xrun *r = &s->runs[n_runs];
                    *r = (struct xrun){st, i, j - i, ci, s->set[i] ? moff : (size_t)-1};
                    if (s->set[i]) {
                        memset(s->mask + moff, 0, (size_t)st->n_keys);
                        for (int k = 0; k < st->n_images; k++)
                            if ((s->set[i] >> k) & 1) memset(s->mask + moff + st->koff[k], 1, (size_t)st->kvalid[k]);
                    }
                }
                n_runs++;
                if (s->set[i]) moff += (size_t)st->n_keys;
            }
            i = j;
        }
        need = moff;
        if (!pass && s->mask_n < need) {
            uint8_t *nm = vlm_realloc(s->mask, need);
            if (!nm) return vlm_error_set(err, VLM_E_NOMEM, "out of memory for the cross-attention masks");
            s->mask = nm;
            s->mask_n = need;
        }
    }
    for (int r = 0; r < n_runs; r++) {
        double work = (double)s->runs[r].nr * s->runs[r].st->n_keys * h->n_head * h->d_head;
        if (work < (1 << 22)) s->small[n_small++] = r;
        else attend_one(c, &s->runs[r], pool);
    }
    struct xattend a = {c, s->runs, s->small};
    if (n_small == 1) attend_one(c, &s->runs[s->small[0]], NULL);
    else if (n_small > 1) vlm_pool_run(pool, n_small, attend_task, &a);
    return VLM_OK;
}

static int cross_layer(void *ctx, int layer, struct vlm_pool *pool, const struct vlm_batch *b, float *x,
                       struct vlm_error *err) {
    const struct cross_ctx *c = ctx;
    const struct vlm_mllama *f = c->f;
    const struct vlm_llama_hparams *h = &f->text.hp;
    struct mllama_scratch *s = c->s;
    const struct vlm_mllama_cross *X = &f->cross[f->cross_of[layer]];
    int n = b->n_tokens, d = h->d_model, any = 0, rc;
    for (int i = 0; i < n; i++) {
        const struct mllama_state *st = c->kv->seq[b->seq_id[i]].family_state;
        s->has[i] = st && st->n_images > 0;
        s->set[i] = 0;
        for (int j = 0; s->has[i] && j < st->n_images; j++)
            if (b->pos[i] >= st->start[j] && b->pos[i] < st->end[j]) s->set[i] |= 1ull << j;
        any |= s->has[i];
    }
    if (!any) return VLM_OK;   /* no sequence has images: the layer is skipped, as transformers does */
    vlm_rmsnorm(s->xb, x, X->ln1, n, d, h->rms_eps);
    vlm_matmul(pool, s->xb, n, X->wq, NULL, s->q);
    vlm_rmsnorm(s->q, s->q, X->q_norm, n * h->n_head, h->d_head, h->rms_eps);
    if ((rc = attend_all(c, f->cross_of[layer], pool, b, err)) != VLM_OK) return rc;
    vlm_matmul(pool, s->att, n, X->wo, NULL, s->o);
    for (int i = 0; i < n; i++)
        if (s->has[i])
            for (int k = 0; k < d; k++) x[(size_t)i * d + k] += X->attn_gate * s->o[(size_t)i * d + k];
    vlm_rmsnorm(s->xb, x, X->ln2, n, d, h->rms_eps);
    vlm_matmul(pool, s->xb, n, X->w_gate, NULL, s->gate);
    vlm_matmul(pool, s->xb, n, X->w_up, NULL, s->up);
    vlm_silu_mul(s->gate, s->up, (size_t)n * h->d_ff);
    vlm_matmul(pool, s->gate, n, X->w_down, NULL, s->o);
    for (int i = 0; i < n; i++)
        if (s->has[i] && s->set[i])   /* full_text_row_masked_out_mask zeroes the rows outside every span */
            for (int k = 0; k < d; k++) x[(size_t)i * d + k] += X->mlp_gate * s->o[(size_t)i * d + k];
    return VLM_OK;
}

static int mllama_forward(const struct vlm_model *m, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                          const struct vlm_batch *b, const int8_t *want, float *logits, struct vlm_error *err) {
    const struct vlm_mllama *f = m->impl;
    struct mllama_scratch *s = scratch;
    if (!s || b->n_tokens > s->n_max) return vlm_error_set(err, VLM_E_INTERNAL, "decoder scratch too small for %d rows", b->n_tokens);
    struct cross_ctx c = {f, kv, s};
    int rc = vlm_llama_forward_ex(&f->text, kv, pool, s->llama, b, want, logits, cross_layer, &c, err);
    for (int i = 0; i < b->n_tokens && rc == VLM_OK; i++) {
        struct mllama_state *st = kv->seq[b->seq_id[i]].family_state;
        if (st && !st->compacted && b->pos[i] >= st->compact_after) compact(m, kv, b->seq_id[i], st);
    }
    return rc;
}

static void mllama_describe(const struct vlm_model *m, FILE *out) {
    const struct vlm_mllama *f = m->impl;
    const struct vlm_mllama_vision_hparams *v = &f->vision.hp;
    const struct vlm_llama_hparams *t = &f->text.hp;
    fprintf(out, "vision         Mllama: %d local + %d gated global layers, d_model %d, %d heads, ffn %d, up to %d tiles of %dx%d px,\n"
                 "               patch %d (%d tokens per tile), %d intermediate layers -> %d, %d aspect ratios\n",
            v->n_layer, v->n_global, v->d_model, v->n_head, v->d_ff, v->max_tiles, v->image_size, v->image_size,
            v->patch_size, v->n_patch, v->n_inter, v->out_dim, v->n_ratios);
    fprintf(out, "connector      linear %d -> %d; %d cross-attention states per image (%d KV tokens)\n", v->out_dim, t->d_model,
            m->info.cross_image_rows, m->info.cross_image_tokens);
    fprintf(out, "text           Llama 3 + %d gated cross-attention layers: %d layers, d_model %d, %d heads (%d kv, head_dim %d),\n"
                 "               ffn %d, vocab %d (+8 embedding rows), rope_theta %g, max positions %d, untied head\n",
            f->n_cross, t->n_layer, t->d_model, t->n_head, t->n_head_kv, t->d_head, t->d_ff, t->n_vocab, t->rope.theta,
            t->max_pos);
}

/* The largest canvas: every tile of an image through both encoders (as transformers runs them,
 * padded tiles included), the cross-attention layers' weights and their keys over one image. */
static void mllama_costs(const struct vlm_model *m, struct vlm_family_costs *c) {
    const struct vlm_mllama *f = m->impl;
    const struct vlm_mllama_vision_hparams *v = &f->vision.hp;
    const struct vlm_llama_hparams *h = &f->text.hp;
    for (int r = 0; r < v->n_ratios; r++)
        if (v->ratios[r][0] * v->ratios[r][1] > c->image_tiles) {
            c->image_tiles = v->ratios[r][0] * v->ratios[r][1];
            c->image_aspect_ratio_id = r + 1;
        }
    double d = v->d_model, ff = v->d_ff, n = (double)v->max_tiles * v->n_pad;
    double p2c = (double)v->patch_size * v->patch_size * v->n_channels;
    double per_layer = 2.0 * n * (4 * d * d + 2 * d * ff) + 2.0 * 2 * n * n * d;
    c->image_size = v->image_size;
    c->image_tokens = 1;
    /* per tile, as bench reports it */
    c->image_flops = (2.0 * c->image_tiles * (v->n_patch - 1) * p2c * d + (v->n_layer + v->n_global) * per_layer +
                      2.0 * v->max_tiles * v->n_patch * (double)v->out_dim * h->d_model) / (c->image_tiles ? c->image_tiles : 1);
    vlm_llama_costs(&f->text, &c->decode_bytes, &c->token_flops, &c->token_flops_ctx);
    double dm = h->d_model, q = (double)h->n_head * h->d_head;
    for (int i = 0; i < f->n_cross; i++) {
        const struct vlm_mllama_cross *X = &f->cross[i];
        c->decode_bytes += X->wq->nbytes + X->wo->nbytes + X->w_gate->nbytes + X->w_up->nbytes + X->w_down->nbytes;
        c->token_flops += 2.0 * (dm * q * 2 + 3 * dm * h->d_ff) + 2.0 * 2 * m->info.cross_image_rows * q;
    }
    c->cross_kv_bytes = (double)m->info.cross_image_tokens * m->info.n_layer * m->info.kv_dim * 2 * 4;
}

const struct vlm_family vlm_family_mllama = {
    .name = "mllama",
    .image_mode = VLM_IMAGES_CROSS_ATTN,
    .load = mllama_load,
    .free = mllama_free,
    .encode_image = mllama_encode,
    .scratch_new = mllama_scratch_new,
    .scratch_free = mllama_scratch_free,
    .forward = mllama_forward,
    .seq_set_images = mllama_set_images,
    .seq_state_free = state_free,
    .describe = mllama_describe,
    .costs = mllama_costs,
};
