/* llama.c — the Llama decoder over a batch of rows from several sequences: every matrix
 * multiply runs once over all rows (one pass over the weights per step), attention runs per
 * sequence over that sequence's KV arrays. Numerics follow transformers' LlamaModel in f32. */
#include "models/llama.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/config.h"
#include "formats/weights.h"
#include "models/batch.h"
#include "models/model.h"
#include "tensor/kernels.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/threadpool.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) return rc; } while (0)

static int read_rope(const struct vlm_config *c, json_t *t, struct vlm_llama_hparams *hp, struct vlm_error *err) {
    int rc;
    json_t *rp = json_object_get(t, "rope_parameters");
    json_t *rs = json_object_get(t, "rope_scaling");
    json_t *src = json_is_object(rp) ? rp : json_is_object(rs) ? rs : NULL;
    double theta, factor = 1, lo = 1, hi = 4, partial = 1;
    long long omax = hp->max_pos;
    CHK(vlm_config_num(c, t, "rope_theta", 10000.0, 1e-3, 1e12, &theta, err));
    if (json_is_object(rp)) CHK(vlm_config_num(c, rp, "rope_theta", theta, 1e-3, 1e12, &theta, err));
    CHK(vlm_config_num(c, t, "partial_rotary_factor", 1.0, 1e-3, 1.0, &partial, err));
    const char *type = "default";
    memset(&hp->rope, 0, sizeof hp->rope);
    if (src) {
        const char *ty1 = NULL, *ty2 = NULL;
        CHK(vlm_config_str(c, src, "rope_type", NULL, &ty1, err));
        CHK(vlm_config_str(c, src, "type", NULL, &ty2, err));
        type = ty1 ? ty1 : ty2 ? ty2 : "default";
        CHK(vlm_config_num(c, src, "factor", 1.0, 1e-6, 1e6, &factor, err));
        CHK(vlm_config_num(c, src, "low_freq_factor", 1.0, 1e-6, 1e6, &lo, err));
        CHK(vlm_config_num(c, src, "high_freq_factor", 4.0, 1e-6, 1e6, &hi, err));
        CHK(vlm_config_int(c, src, "original_max_position_embeddings", hp->max_pos, 1, 1 << 30, &omax, err));
    }
    if (!strcmp(type, "default")) hp->rope.type = VLM_ROPE_DEFAULT;
    else if (!strcmp(type, "linear")) hp->rope.type = VLM_ROPE_LINEAR;
    else if (!strcmp(type, "dynamic")) hp->rope.type = VLM_ROPE_DYNAMIC;
    else if (!strcmp(type, "llama3")) hp->rope.type = VLM_ROPE_LLAMA3;
    else return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: rope type \"%s\" is not supported (default, linear, dynamic, llama3)", c->path, type);
    hp->rope.theta = (float)theta;
    hp->rope.factor = (float)factor;
    hp->rope.low_freq_factor = (float)lo;
    hp->rope.high_freq_factor = (float)hi;
    hp->rope.original_max_pos = (int)omax;
    hp->rope.max_pos = hp->max_pos;
    hp->rope.rot_dim = ((int)(hp->d_head * partial)) & ~1;
    if (hp->rope.rot_dim <= 0 || hp->rope.rot_dim > 512)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: rotary dimension %d out of range", c->path, hp->rope.rot_dim);
    return VLM_OK;
}

int vlm_llama_hparams_read(const struct vlm_config *c, json_t *t, float default_rms_eps,
                           struct vlm_llama_hparams *hp, struct vlm_error *err) {
    int rc;
    long long v, d, nh, nkv, hd, ff, nl, mp;
    double eps;
    memset(hp, 0, sizeof *hp);
    CHK(vlm_config_int(c, t, "vocab_size", 32000, 1, 1 << 22, &v, err));
    CHK(vlm_config_int(c, t, "hidden_size", 4096, 1, 1 << 16, &d, err));
    CHK(vlm_config_int(c, t, "intermediate_size", 11008, 1, 1 << 18, &ff, err));
    CHK(vlm_config_int(c, t, "num_hidden_layers", 32, 1, 1024, &nl, err));
    CHK(vlm_config_int(c, t, "num_attention_heads", 32, 1, 1024, &nh, err));
    CHK(vlm_config_int(c, t, "num_key_value_heads", nh, 1, nh, &nkv, err));
    CHK(vlm_config_int(c, t, "head_dim", d / nh, 2, 512, &hd, err));
    CHK(vlm_config_int(c, t, "max_position_embeddings", 2048, 1, 1 << 24, &mp, err));
    CHK(vlm_config_num(c, t, "rms_norm_eps", default_rms_eps, 0, 1, &eps, err));
    if (nh % nkv) return vlm_error_set(err, VLM_E_FORMAT, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", c->path, nh, nkv);
    const char *act;
    CHK(vlm_config_str(c, t, "hidden_act", "silu", &act, err));
    if (strcmp(act, "silu")) return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: hidden_act \"%s\" (only silu)", c->path, act);
    hp->n_vocab = (int)v; hp->d_model = (int)d; hp->d_ff = (int)ff; hp->n_layer = (int)nl;
    hp->n_head = (int)nh; hp->n_head_kv = (int)nkv; hp->d_head = (int)hd; hp->max_pos = (int)mp;
    hp->rms_eps = (float)eps;
    CHK(vlm_config_bool(c, t, "tie_word_embeddings", 0, &hp->tied, err));
    return read_rope(c, t, hp, err);
}

void vlm_tensor_to_f32(const struct vlm_tensor *t, float *dst, int64_t n) {
    struct vlm_tensor row = *t;
    row.n_dims = 2;
    row.ne[0] = 1;
    row.ne[1] = n;
    vlm_tensor_row_f32(&row, 0, dst);
}

/* Binds one tensor with the expected shape; f32 copy of a vector when vec != NULL. */
static int bind(const struct vlm_weights *w, const char *name, int nd, int64_t a, int64_t b,
                const struct vlm_tensor **t, float *vec, struct vlm_error *err) {
    int64_t ne[2] = {a, b};
    int rc = vlm_weights_require(w, name, nd, ne, t, err);
    if (rc == VLM_OK && vec) vlm_tensor_to_f32(*t, vec, a);
    return rc;
}

static int bind_opt_bias(const struct vlm_weights *w, const char *name, int64_t n, const float **out,
                         float **cursor, struct vlm_error *err) {
    *out = NULL;
    if (!vlm_weights_get(w, name)) return VLM_OK;
    const struct vlm_tensor *t;
    int rc = bind(w, name, 1, n, 0, &t, *cursor, err);
    if (rc != VLM_OK) return rc;
    *out = *cursor;
    *cursor += n;
    return VLM_OK;
}

int vlm_llama_load(struct vlm_llama *l, const struct vlm_llama_hparams *hp, const struct vlm_weights *w,
                   const char *prefix, const char *lm_head_name, struct vlm_error *err) {
    return vlm_llama_load_ex(l, hp, w, prefix, lm_head_name, NULL, err);
}

int vlm_llama_load_ex(struct vlm_llama *l, const struct vlm_llama_hparams *hp, const struct vlm_weights *w,
                      const char *prefix, const char *lm_head_name, const uint8_t *foreign,
                      struct vlm_error *err) {
    memset(l, 0, sizeof *l);
    l->hp = *hp;
    int d = hp->d_model, q = hp->n_head * hp->d_head, kvd = hp->n_head_kv * hp->d_head, rc;
    size_t n_owned = (size_t)d * (2 * (size_t)hp->n_layer + 1) + (size_t)hp->n_layer * (size_t)(q + 2 * kvd + d);
    l->owned = vlm_malloc(n_owned * sizeof(float));
    l->layers = vlm_calloc((size_t)hp->n_layer, sizeof *l->layers);
    l->inv_freq = vlm_malloc(sizeof(float) * (size_t)(hp->rope.rot_dim / 2));
    l->kv_layer = vlm_malloc(sizeof(int) * (size_t)hp->n_layer);
    if (foreign) l->foreign = vlm_malloc((size_t)hp->n_layer);
    if (!l->owned || !l->layers || !l->inv_freq || !l->kv_layer || (foreign && !l->foreign))
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory loading the decoder");
    for (int i = 0; i < hp->n_layer; i++) {
        if (l->foreign) l->foreign[i] = foreign[i] != 0;
        l->kv_layer[i] = foreign && foreign[i] ? -1 : l->n_kv_layer++;
    }
    float *cur = l->owned;
    char name[256];
#define NAME(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
    CHK(bind(w, NAME("%sembed_tokens.weight", prefix), 2, hp->n_embd_rows > 0 ? hp->n_embd_rows : hp->n_vocab, d,
             &l->embed, NULL, err));
    CHK(bind(w, NAME("%snorm.weight", prefix), 1, d, 0, &(const struct vlm_tensor *){0}, cur, err));
    l->norm = cur;
    cur += d;
    if (vlm_weights_get(w, lm_head_name)) CHK(bind(w, lm_head_name, 2, hp->n_vocab, d, &l->lm_head, NULL, err));
    else if (hp->tied) l->lm_head = l->embed;
    else return vlm_error_set(err, VLM_E_NOT_FOUND, "%s: missing tensor '%s' (tie_word_embeddings is false)",
                              w->n_files == 1 ? w->files[0] : "the model's safetensors files", lm_head_name);
    for (int i = 0; i < hp->n_layer; i++) {
        struct vlm_llama_layer *L = &l->layers[i];
        const struct vlm_tensor *tmp;
        if (l->foreign && l->foreign[i]) continue;
        CHK(bind(w, NAME("%slayers.%d.input_layernorm.weight", prefix, i), 1, d, 0, &tmp, cur, err));
        L->attn_norm = cur; cur += d;
        CHK(bind(w, NAME("%slayers.%d.post_attention_layernorm.weight", prefix, i), 1, d, 0, &tmp, cur, err));
        L->ffn_norm = cur; cur += d;
        CHK(bind(w, NAME("%slayers.%d.self_attn.q_proj.weight", prefix, i), 2, q, d, &L->wq, NULL, err));
        CHK(bind(w, NAME("%slayers.%d.self_attn.k_proj.weight", prefix, i), 2, kvd, d, &L->wk, NULL, err));
        CHK(bind(w, NAME("%slayers.%d.self_attn.v_proj.weight", prefix, i), 2, kvd, d, &L->wv, NULL, err));
        CHK(bind(w, NAME("%slayers.%d.self_attn.o_proj.weight", prefix, i), 2, d, q, &L->wo, NULL, err));
        CHK(bind_opt_bias(w, NAME("%slayers.%d.self_attn.q_proj.bias", prefix, i), q, &L->bq, &cur, err));
        CHK(bind_opt_bias(w, NAME("%slayers.%d.self_attn.k_proj.bias", prefix, i), kvd, &L->bk, &cur, err));
        CHK(bind_opt_bias(w, NAME("%slayers.%d.self_attn.v_proj.bias", prefix, i), kvd, &L->bv, &cur, err));
        CHK(bind_opt_bias(w, NAME("%slayers.%d.self_attn.o_proj.bias", prefix, i), d, &L->bo, &cur, err));
        CHK(bind(w, NAME("%slayers.%d.mlp.gate_proj.weight", prefix, i), 2, hp->d_ff, d, &L->w_gate, NULL, err));
        CHK(bind(w, NAME("%slayers.%d.mlp.up_proj.weight", prefix, i), 2, hp->d_ff, d, &L->w_up, NULL, err));
        CHK(bind(w, NAME("%slayers.%d.mlp.down_proj.weight", prefix, i), 2, d, hp->d_ff, &L->w_down, NULL, err));
    }
#undef NAME
    vlm_rope_inv_freq(&l->hp.rope, 0, l->inv_freq);
    return VLM_OK;
}

void vlm_llama_free(struct vlm_llama *l) {
    if (!l) return;
    vlm_free(l->owned);
    vlm_free(l->layers);
    vlm_free(l->inv_freq);
    vlm_free(l->foreign);
    vlm_free(l->kv_layer);
    memset(l, 0, sizeof *l);
}

/* The rows of one sequence in the batch (the same for every layer of a step). */
struct att_group {
    int sid, off, nr, contiguous;   /* rows[off .. off+nr) are its batch rows, in order */
};

struct llama_scratch {
    int n_max, n_grp;
    float *x, *xb, *q, *k, *v, *att, *gate, *up, *qg, *og, *inv_freq;
    int32_t *rows;    /* (n_max) batch row indices, grouped by sequence */
    struct att_group *grp;   /* (n_max) */
    int *small;       /* (n_max) groups whose attention runs as one task each */
};

void *vlm_llama_scratch_new(const struct vlm_llama *l, int n) {
    const struct vlm_llama_hparams *hp = &l->hp;
    struct llama_scratch *s = vlm_calloc(1, sizeof *s);
    if (!s || n <= 0) { vlm_free(s); return NULL; }
    size_t N = (size_t)n, q = (size_t)hp->n_head * hp->d_head, kvd = (size_t)hp->n_head_kv * hp->d_head;
    s->n_max = n;
    s->x = vlm_malloc(N * hp->d_model * sizeof(float));
    s->xb = vlm_malloc(N * hp->d_model * sizeof(float));
    s->q = vlm_malloc(N * q * sizeof(float));
    s->att = vlm_malloc(N * q * sizeof(float));
    s->qg = vlm_malloc(N * q * sizeof(float));
    s->og = vlm_malloc(N * q * sizeof(float));
    s->k = vlm_malloc(N * kvd * sizeof(float));
    s->v = vlm_malloc(N * kvd * sizeof(float));
    s->gate = vlm_malloc(N * hp->d_ff * sizeof(float));
    s->up = vlm_malloc(N * hp->d_ff * sizeof(float));
    s->inv_freq = vlm_malloc((size_t)hp->rope.rot_dim / 2 * sizeof(float) + sizeof(float));
    s->rows = vlm_malloc(N * sizeof(int32_t));
    s->grp = vlm_malloc(N * sizeof *s->grp);
    s->small = vlm_malloc(N * sizeof *s->small);
    if (!s->x || !s->xb || !s->q || !s->att || !s->qg || !s->og || !s->k || !s->v || !s->gate ||
        !s->up || !s->inv_freq || !s->rows || !s->grp || !s->small) {
        vlm_llama_scratch_free(s);
        return NULL;
    }
    return s;
}

void vlm_llama_scratch_free(void *p) {
    struct llama_scratch *s = p;
    if (!s) return;
    vlm_free(s->x); vlm_free(s->xb); vlm_free(s->q); vlm_free(s->att); vlm_free(s->qg);
    vlm_free(s->og); vlm_free(s->k); vlm_free(s->v); vlm_free(s->gate); vlm_free(s->up);
    vlm_free(s->inv_freq); vlm_free(s->rows); vlm_free(s->grp); vlm_free(s->small);
    vlm_free(s);
}

/* Several matrix products of the same x in one pool run (q, k, v; gate, up): tensor.h. */
static void matmul_multi(struct vlm_pool *pool, const float *x, int m, int np, const struct vlm_tensor *const *w,
                         const float *const *bias, float *const *y) {
    vlm_matmul_multi(pool, x, m, np, w, bias, y);
}

/* Groups the batch rows by sequence, once per step. */
static void group_rows(struct llama_scratch *s, const struct vlm_batch *b) {
    int n = b->n_tokens, off = 0;
    s->n_grp = 0;
    for (int i = 0; i < n; i++) {
        int sid = b->seq_id[i], seen = 0;
        for (int g = 0; g < s->n_grp && !seen; g++) seen = s->grp[g].sid == sid;
        if (seen) continue;
        struct att_group *g = &s->grp[s->n_grp++];
        g->sid = sid;
        g->off = off;
        g->contiguous = 1;
        for (int j = i; j < n; j++)
            if (b->seq_id[j] == sid) {
                if (off > g->off && j != s->rows[off - 1] + 1) g->contiguous = 0;
                s->rows[off++] = j;
            }
        g->nr = off - g->off;
    }
}

struct attend_ctx {
    const struct vlm_llama *l;
    struct vlm_kv *kv;
    struct llama_scratch *s;
    const struct vlm_batch *b;
    int layer;
};

/* One sequence's rows attend causally to its KV arrays, which already hold this step's keys. */
static void attend_group(const struct attend_ctx *c, const struct att_group *g, struct vlm_pool *pool) {
    const struct vlm_llama_hparams *hp = &c->l->hp;
    struct llama_scratch *s = c->s;
    size_t q = (size_t)hp->n_head * hp->d_head, kvd = (size_t)hp->n_head_kv * hp->d_head;
    const int32_t *rows = s->rows + g->off;
    const float *qs = s->q + (size_t)rows[0] * q;
    float *os = s->att + (size_t)rows[0] * q;
    if (!g->contiguous) {   /* gathered into this group's own part of qg/og */
        for (int r = 0; r < g->nr; r++) memcpy(s->qg + (size_t)(g->off + r) * q, s->q + (size_t)rows[r] * q, sizeof(float) * q);
        qs = s->qg + (size_t)g->off * q;
        os = s->og + (size_t)g->off * q;
    }
    int pos0 = c->b->pos[rows[0]], n_kv = c->b->pos[rows[g->nr - 1]] + 1;
    vlm_attention_kv(pool, os, qs, g->nr, c->kv->seq[g->sid].k[c->layer], c->kv->seq[g->sid].v[c->layer],
                     c->kv->type, n_kv, hp->n_head, hp->n_head_kv, hp->d_head, kvd,
                     1.0f / sqrtf((float)hp->d_head), 1, pos0, NULL);
    if (!g->contiguous)
        for (int r = 0; r < g->nr; r++) memcpy(s->att + (size_t)rows[r] * q, s->og + (size_t)(g->off + r) * q, sizeof(float) * q);
}

static void attend_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct attend_ctx *c = ctx;
    attend_group(c, &c->s->grp[c->s->small[task]], NULL);
}

/* Attention of every sequence in the batch. A decode row's attention is tens of microseconds
 * of work at most, so the small groups (one per decoding sequence) run as one task each in a
 * single pool run; a long prompt chunk uses the whole pool, and so does a lone small group
 * with keys enough to repay a pool run (its heads split over the threads: one decoding
 * sequence at a depth of hundreds would otherwise leave the other threads waiting). */
static void attend(const struct vlm_llama *l, struct vlm_kv *kv, struct vlm_pool *pool, struct llama_scratch *s,
                   const struct vlm_batch *b, int layer) {
    const struct vlm_llama_hparams *hp = &l->hp;
    struct attend_ctx c = {l, kv, s, b, layer};
    int n_small = 0;
    double small_work = 0;
    for (int g = 0; g < s->n_grp; g++) {
        const struct att_group *gr = &s->grp[g];
        double work = (double)gr->nr * (b->pos[s->rows[gr->off + gr->nr - 1]] + 1) * hp->n_head * hp->d_head;
        if (work < (1 << 22)) s->small[n_small++] = g, small_work = work;
        else attend_group(&c, gr, pool);
    }
    if (n_small == 1) attend_group(&c, &s->grp[s->small[0]], small_work >= (1 << 15) ? pool : NULL);
    else if (n_small > 1) vlm_pool_run(pool, n_small, attend_task, &c);
}

static int forward(const struct vlm_llama *l, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                   const struct vlm_batch *b, const int32_t *mpos, const int8_t *want, float *logits,
                   vlm_llama_layer_fn fn, void *fn_ctx, struct vlm_error *err) {
    const struct vlm_llama_hparams *hp = &l->hp;
    struct llama_scratch *s = scratch;
    int n = b->n_tokens, d = hp->d_model, kvd = hp->n_head_kv * hp->d_head;
    if (!s || n > s->n_max) return vlm_error_set(err, VLM_E_INTERNAL, "decoder scratch too small for %d rows", n);
    for (int i = 0; i < n; i++) {
        float *xi = s->x + (size_t)i * d;
        if (b->embd && b->embd[i]) memcpy(xi, b->embd[i], sizeof(float) * d);
        else vlm_tensor_row_f32(l->embed, b->token[i], xi);
    }
    const float *inv_freq = l->inv_freq;
    if (hp->rope.type == VLM_ROPE_DYNAMIC) {
        int max_len = 0;
        for (int i = 0; i < n; i++) if (b->pos[i] + 1 > max_len) max_len = b->pos[i] + 1;
        vlm_rope_inv_freq(&hp->rope, max_len, s->inv_freq);
        inv_freq = s->inv_freq;
    }
    float attn_scale = hp->rope.attention_factor > 0 ? hp->rope.attention_factor : 1.0f;
    group_rows(s, b);
    for (int layer = 0; layer < hp->n_layer; layer++) {
        const struct vlm_llama_layer *L = &l->layers[layer];
        int kl = l->kv_layer[layer];
        if (kl < 0) {
            int rc = fn ? fn(fn_ctx, layer, pool, b, s->x, err)
                        : vlm_error_set(err, VLM_E_INTERNAL, "decoder layer %d has no runner", layer);
            if (rc != VLM_OK) return rc;
            continue;
        }
        vlm_rmsnorm(s->xb, s->x, L->attn_norm, n, d, hp->rms_eps);
        {
            const struct vlm_tensor *w3[3] = {L->wq, L->wk, L->wv};
            const float *b3[3] = {L->bq, L->bk, L->bv};
            float *y3[3] = {s->q, s->k, s->v};
            matmul_multi(pool, s->xb, n, 3, w3, b3, y3);
        }
        if (mpos) {
            vlm_rope_apply_sections(s->q, n, hp->n_head, hp->d_head, mpos, 3, hp->mrope_section, inv_freq);
            vlm_rope_apply_sections(s->k, n, hp->n_head_kv, hp->d_head, mpos, 3, hp->mrope_section, inv_freq);
        } else {
            vlm_rope_apply(s->q, n, hp->n_head, hp->d_head, b->pos, inv_freq, hp->rope.rot_dim, attn_scale);
            vlm_rope_apply(s->k, n, hp->n_head_kv, hp->d_head, b->pos, inv_freq, hp->rope.rot_dim, attn_scale);
        }
        for (int i = 0; i < n; i++)
            vlm_kv_put(kv, b->seq_id[i], kl, b->pos[i], s->k + (size_t)i * kvd, s->v + (size_t)i * kvd);
        attend(l, kv, pool, s, b, kl);
        vlm_matmul(pool, s->att, n, L->wo, L->bo, s->xb);
        vlm_add(s->x, s->xb, (size_t)n * d);
        vlm_rmsnorm(s->xb, s->x, L->ffn_norm, n, d, hp->rms_eps);
        {
            const struct vlm_tensor *w2[2] = {L->w_gate, L->w_up};
            const float *b2[2] = {NULL, NULL};
            float *y2[2] = {s->gate, s->up};
            matmul_multi(pool, s->xb, n, 2, w2, b2, y2);
        }
        vlm_silu_mul(s->gate, s->up, (size_t)n * hp->d_ff);
        vlm_matmul(pool, s->gate, n, L->w_down, NULL, s->xb);
        vlm_add(s->x, s->xb, (size_t)n * d);
    }
    int n_out = 0;
    for (int i = 0; i < n; i++)
        if (want[i]) memcpy(s->xb + (size_t)n_out++ * d, s->x + (size_t)i * d, sizeof(float) * d);
    if (n_out) {
        vlm_rmsnorm(s->xb, s->xb, l->norm, n_out, d, hp->rms_eps);
        vlm_matmul(pool, s->xb, n_out, l->lm_head, NULL, logits);
    }
    return VLM_OK;
}

int vlm_llama_forward(const struct vlm_llama *l, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                      const struct vlm_batch *b, const int8_t *want, float *logits, struct vlm_error *err) {
    return forward(l, kv, pool, scratch, b, NULL, want, logits, NULL, NULL, err);
}

int vlm_llama_forward_ex(const struct vlm_llama *l, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                         const struct vlm_batch *b, const int8_t *want, float *logits,
                         vlm_llama_layer_fn fn, void *fn_ctx, struct vlm_error *err) {
    return forward(l, kv, pool, scratch, b, NULL, want, logits, fn, fn_ctx, err);
}

int vlm_llama_forward_mrope(const struct vlm_llama *l, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                            const struct vlm_batch *b, const int32_t *mpos, const int8_t *want, float *logits,
                            struct vlm_error *err) {
    return forward(l, kv, pool, scratch, b, mpos, want, logits, NULL, NULL, err);
}

void vlm_llama_costs(const struct vlm_llama *l, size_t *decode_bytes, double *token_flops, double *token_flops_ctx) {
    const struct vlm_llama_hparams *h = &l->hp;
    size_t b = l->lm_head->nbytes;
    int n_self = 0;
    for (int i = 0; i < h->n_layer; i++) {
        const struct vlm_llama_layer *L = &l->layers[i];
        if (!L->wq) continue;   /* a layer the family runs itself (Mllama's cross-attention): its own count */
        n_self++;
        b += L->wq->nbytes + L->wk->nbytes + L->wv->nbytes + L->wo->nbytes + L->w_gate->nbytes +
             L->w_up->nbytes + L->w_down->nbytes;
    }
    double d = h->d_model, q = (double)h->n_head * h->d_head, kv = (double)h->n_head_kv * h->d_head;
    *decode_bytes = b;
    *token_flops = n_self * 2.0 * (d * q * 2 + d * kv * 2 + 3 * d * h->d_ff) + 2.0 * d * h->n_vocab;
    *token_flops_ctx = n_self * 2.0 * 2 * q;
}

void vlm_llama_describe(const struct vlm_llama *l, FILE *f) {
    const struct vlm_llama_hparams *t = &l->hp;
    fprintf(f, "text           Llama: %d layers, d_model %d, %d heads (%d kv, head_dim %d), ffn %d, vocab %d,\n"
               "               rope_theta %g, max positions %d, %s embeddings\n",
            t->n_layer, t->d_model, t->n_head, t->n_head_kv, t->d_head, t->d_ff, t->n_vocab, t->rope.theta,
            t->max_pos, l->lm_head == l->embed ? "tied" : "untied");
}
