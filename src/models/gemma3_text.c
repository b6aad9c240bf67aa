/* gemma3_text.c — the Gemma 3 decoder (see gemma3_text.h) over a batch of rows from several
 * sequences: every matrix multiply runs once over all rows, attention runs per sequence over
 * its KV arrays with per-query key spans (sliding window, image blocks). The KV cache keeps
 * every position for local layers too; the window is applied when attending. */
#include "models/gemma3_text.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/config.h"
#include "formats/weights.h"
#include "models/batch.h"
#include "models/llama.h"
#include "models/model.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/threadpool.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) return rc; } while (0)

/* One RoPE setting: type and factor from obj (a rope_parameters entry or rope_scaling), theta
 * from theta_obj's theta_key (default def_theta). */
static int read_rope(const struct vlm_config *c, json_t *obj, json_t *theta_obj, const char *theta_key,
                     double def_theta, const struct vlm_gemma3_hparams *hp, struct vlm_rope_params *rp,
                     struct vlm_error *err) {
    int rc;
    double theta, factor = 1, lo = 1, hi = 4;
    long long omax = hp->max_pos;
    const char *ty1 = NULL, *ty2 = NULL;
    CHK(vlm_config_num(c, theta_obj, theta_key, def_theta, 1e-3, 1e12, &theta, err));
    CHK(vlm_config_str(c, obj, "rope_type", NULL, &ty1, err));
    CHK(vlm_config_str(c, obj, "type", NULL, &ty2, err));
    CHK(vlm_config_num(c, obj, "factor", 1.0, 1e-6, 1e6, &factor, err));
    CHK(vlm_config_num(c, obj, "low_freq_factor", 1.0, 1e-6, 1e6, &lo, err));
    CHK(vlm_config_num(c, obj, "high_freq_factor", 4.0, 1e-6, 1e6, &hi, err));
    CHK(vlm_config_int(c, obj, "original_max_position_embeddings", hp->max_pos, 1, 1 << 30, &omax, err));
    const char *type = ty1 ? ty1 : ty2 ? ty2 : "default";
    memset(rp, 0, sizeof *rp);
    if (!strcmp(type, "default")) rp->type = VLM_ROPE_DEFAULT;
    else if (!strcmp(type, "linear")) rp->type = VLM_ROPE_LINEAR;
    else if (!strcmp(type, "llama3")) rp->type = VLM_ROPE_LLAMA3;
    else return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: rope type \"%s\" is not supported for Gemma 3 (default, linear, llama3)", c->path, type);
    rp->theta = (float)theta;
    rp->factor = (float)factor;
    rp->low_freq_factor = (float)lo;
    rp->high_freq_factor = (float)hi;
    rp->original_max_pos = (int)omax;
    rp->max_pos = hp->max_pos;
    rp->rot_dim = hp->d_head;
    return VLM_OK;
}

static int read_ropes(const struct vlm_config *c, json_t *t, struct vlm_gemma3_hparams *hp, struct vlm_error *err) {
    int rc;
    json_t *rp = json_object_get(t, "rope_parameters");
    json_t *full = json_object_get(rp, "full_attention"), *slide = json_object_get(rp, "sliding_attention");
    if (json_is_object(full) || json_is_object(slide)) {   /* transformers 5: one entry per layer type */
        CHK(read_rope(c, full, full, "rope_theta", 1000000.0, hp, &hp->rope_global, err));
        return read_rope(c, slide, slide, "rope_theta", 10000.0, hp, &hp->rope_local, err);
    }
    json_t *scaling = json_object_get(t, "rope_scaling");   /* published: scaling applies to global layers */
    CHK(read_rope(c, json_is_object(scaling) ? scaling : NULL, t, "rope_theta", 1000000.0, hp, &hp->rope_global, err));
    return read_rope(c, NULL, t, "rope_local_base_freq", 10000.0, hp, &hp->rope_local, err);
}

static int read_layer_types(const struct vlm_config *c, json_t *t, struct vlm_gemma3_hparams *hp, struct vlm_error *err) {
    json_t *lt = json_object_get(t, "layer_types");
    if (json_is_array(lt)) {
        if ((int)json_array_size(lt) != hp->n_layer)
            return vlm_error_set(err, VLM_E_FORMAT, "%s: layer_types has %zu entries for %d layers", c->path, json_array_size(lt), hp->n_layer);
        for (int i = 0; i < hp->n_layer; i++) {
            const char *s = json_string_value(json_array_get(lt, (size_t)i));
            if (s && !strcmp(s, "sliding_attention")) hp->sliding[i] = 1;
            else if (s && !strcmp(s, "full_attention")) hp->sliding[i] = 0;
            else return vlm_error_set(err, VLM_E_FORMAT, "%s: layer_types[%d] is not \"sliding_attention\" or \"full_attention\"", c->path, i);
        }
        return VLM_OK;
    }
    long long pat;
    int rc;
    CHK(vlm_config_int(c, t, "sliding_window_pattern", 6, 1, 1 << 20, &pat, err));
    for (int i = 0; i < hp->n_layer; i++) hp->sliding[i] = (uint8_t)(((i + 1) % pat) != 0);
    return VLM_OK;
}

int vlm_gemma3_hparams_read(const struct vlm_config *c, json_t *t, struct vlm_gemma3_hparams *hp,
                            struct vlm_error *err) {
    int rc, bidir, bias, gguf;
    long long v, d, nh, nkv, hd, ff, nl, mp, sw = 4096;
    double eps, qpas, acap, fcap;
    const char *act;
    memset(hp, 0, sizeof *hp);
    CHK(vlm_config_int(c, t, "vocab_size", 262208, 1, 1 << 22, &v, err));
    CHK(vlm_config_int(c, t, "hidden_size", 2304, 1, 1 << 16, &d, err));
    CHK(vlm_config_int(c, t, "intermediate_size", 9216, 1, 1 << 18, &ff, err));
    CHK(vlm_config_int(c, t, "num_hidden_layers", 26, 1, VLM_GEMMA3_MAX_LAYERS, &nl, err));
    CHK(vlm_config_int(c, t, "num_attention_heads", 8, 1, 1024, &nh, err));
    CHK(vlm_config_int(c, t, "num_key_value_heads", 4, 1, nh, &nkv, err));
    CHK(vlm_config_int(c, t, "head_dim", 256, 2, 512, &hd, err));
    CHK(vlm_config_int(c, t, "max_position_embeddings", 131072, 1, 1 << 24, &mp, err));
    CHK(vlm_config_num(c, t, "rms_norm_eps", 1e-6, 0, 1, &eps, err));
    CHK(vlm_config_num(c, t, "query_pre_attn_scalar", 256, 1e-6, 1e9, &qpas, err));
    CHK(vlm_config_num(c, t, "attn_logit_softcapping", 0, 0, 1e9, &acap, err));
    CHK(vlm_config_num(c, t, "final_logit_softcapping", 0, 0, 1e9, &fcap, err));
    json_t *swj = json_object_get(t, "sliding_window");
    if (json_is_null(swj)) sw = 0;   /* null: local layers see every earlier key */
    else CHK(vlm_config_int(c, t, "sliding_window", 4096, 1, 1 << 30, &sw, err));
    CHK(vlm_config_str(c, t, "hidden_activation", "gelu_pytorch_tanh", &act, err));
    CHK(vlm_config_bool(c, t, "use_bidirectional_attention", 0, &bidir, err));
    CHK(vlm_config_bool(c, t, "attention_bias", 0, &bias, err));
    CHK(vlm_config_bool(c, t, "vlm_gguf", 0, &gguf, err));
    if (nh % nkv) return vlm_error_set(err, VLM_E_FORMAT, "%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld", c->path, nh, nkv);
    if (strcmp(act, "gelu_pytorch_tanh") && strcmp(act, "gelu_tanh") && strcmp(act, "gelu_new"))
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: hidden_activation \"%s\" (only gelu_pytorch_tanh)", c->path, act);
    if (bidir) return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: use_bidirectional_attention (an embedding model) is not supported", c->path);
    if (bias) return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: attention_bias is not supported for Gemma 3", c->path);
    hp->n_vocab = (int)v; hp->d_model = (int)d; hp->d_ff = (int)ff; hp->n_layer = (int)nl;
    hp->n_head = (int)nh; hp->n_head_kv = (int)nkv; hp->d_head = (int)hd; hp->max_pos = (int)mp;
    hp->rms_eps = (float)eps;
    hp->attn_scale = (float)(1.0 / sqrt(qpas));   /* query_pre_attn_scalar**-0.5 in Python floats */
    /* transformers' Gemma3Attention keeps attn_logit_softcapping but never hands it to the
       attention function (Gemma 2 does): the reference ignores it, and so do we. */
    hp->attn_softcap = 0.0f;
    (void)acap;
    hp->final_softcap = (float)fcap;
    hp->sliding_window = (int)sw;
    hp->gguf = gguf;
    CHK(read_layer_types(c, t, hp, err));
    return read_ropes(c, t, hp, err);
}

/* Binds one tensor; with one_plus, an f32 copy of 1 + w (Gemma3RMSNorm's weight), or of the
 * stored weight as is when it already holds 1 + w (shift 0: llama.cpp's converter adds the 1). */
static int bind(const struct vlm_weights *w, float shift, const char *name, int nd, int64_t a, int64_t b,
                const struct vlm_tensor **t, float **one_plus, const float **out, struct vlm_error *err) {
    int64_t ne[2] = {a, b};
    const struct vlm_tensor *tmp;
    int rc = vlm_weights_require(w, name, nd, ne, t ? t : &tmp, err);
    if (rc != VLM_OK || !one_plus) return rc;
    float *dst = *one_plus;
    vlm_tensor_to_f32(t ? *t : tmp, dst, a);
    if (shift != 0.0f)
        for (int64_t i = 0; i < a; i++) dst[i] = shift + dst[i];
    *out = dst;
    *one_plus += a;
    return VLM_OK;
}

/* sqrt(d) as transformers holds it: a float32 tensor cast to the embedding's dtype (llama.cpp
 * keeps the f32 value: gguf). */
static float embed_scale_for(enum vlm_dtype t, int d, int gguf) {
    float s = (float)sqrt((double)d);
    if (gguf) return s;
    if (t == VLM_DT_BF16) return vlm_bf16_to_f32(vlm_f32_to_bf16(s));
    if (t == VLM_DT_F16) return vlm_f16_to_f32(vlm_f32_to_f16(s));
    return s;
}

int vlm_gemma3_text_load(struct vlm_gemma3_text *g, const struct vlm_gemma3_hparams *hp,
                         const struct vlm_weights *w, const char *prefix, const char *lm_head_name,
                         struct vlm_error *err) {
    memset(g, 0, sizeof *g);
    g->hp = *hp;
    int d = hp->d_model, hd = hp->d_head, q = hp->n_head * hd, kvd = hp->n_head_kv * hd, rc;
    size_t n_owned = (size_t)d * (4 * (size_t)hp->n_layer + 1) + (size_t)hp->n_layer * 2 * (size_t)hd;
    g->owned = vlm_malloc(n_owned * sizeof(float));
    g->layers = vlm_calloc((size_t)hp->n_layer, sizeof *g->layers);
    g->inv_freq_global = vlm_malloc(sizeof(float) * (size_t)(hd / 2));
    g->inv_freq_local = vlm_malloc(sizeof(float) * (size_t)(hd / 2));
    if (!g->owned || !g->layers || !g->inv_freq_global || !g->inv_freq_local)
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory loading the decoder");
    float *cur = g->owned, shift = hp->gguf ? 0.0f : 1.0f;
    char name[256];
#define NAME(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
    CHK(bind(w, shift, NAME("%sembed_tokens.weight", prefix), 2, hp->n_vocab, d, &g->embed, NULL, NULL, err));
    CHK(bind(w, shift, NAME("%snorm.weight", prefix), 1, d, 0, NULL, &cur, &g->norm, err));
    if (hp->tied) g->lm_head = g->embed;   /* transformers ties even when the file has a head */
    else if (vlm_weights_get(w, lm_head_name)) CHK(bind(w, shift, lm_head_name, 2, hp->n_vocab, d, &g->lm_head, NULL, NULL, err));
    else return vlm_error_set(err, VLM_E_NOT_FOUND, "%s: missing tensor '%s' (tie_word_embeddings is false)",
                              w->n_files == 1 ? w->files[0] : "the model's safetensors files", lm_head_name);
    for (int i = 0; i < hp->n_layer; i++) {
        struct vlm_gemma3_layer *L = &g->layers[i];
        char base[192];
        snprintf(base, sizeof base, "%slayers.%d.", prefix, i);
        CHK(bind(w, shift, NAME("%sinput_layernorm.weight", base), 1, d, 0, NULL, &cur, &L->attn_norm, err));
        CHK(bind(w, shift, NAME("%spost_attention_layernorm.weight", base), 1, d, 0, NULL, &cur, &L->post_attn_norm, err));
        CHK(bind(w, shift, NAME("%spre_feedforward_layernorm.weight", base), 1, d, 0, NULL, &cur, &L->ffn_norm, err));
        CHK(bind(w, shift, NAME("%spost_feedforward_layernorm.weight", base), 1, d, 0, NULL, &cur, &L->post_ffn_norm, err));
        CHK(bind(w, shift, NAME("%sself_attn.q_norm.weight", base), 1, hd, 0, NULL, &cur, &L->q_norm, err));
        CHK(bind(w, shift, NAME("%sself_attn.k_norm.weight", base), 1, hd, 0, NULL, &cur, &L->k_norm, err));
        CHK(bind(w, shift, NAME("%sself_attn.q_proj.weight", base), 2, q, d, &L->wq, NULL, NULL, err));
        CHK(bind(w, shift, NAME("%sself_attn.k_proj.weight", base), 2, kvd, d, &L->wk, NULL, NULL, err));
        CHK(bind(w, shift, NAME("%sself_attn.v_proj.weight", base), 2, kvd, d, &L->wv, NULL, NULL, err));
        CHK(bind(w, shift, NAME("%sself_attn.o_proj.weight", base), 2, d, q, &L->wo, NULL, NULL, err));
        CHK(bind(w, shift, NAME("%smlp.gate_proj.weight", base), 2, hp->d_ff, d, &L->w_gate, NULL, NULL, err));
        CHK(bind(w, shift, NAME("%smlp.up_proj.weight", base), 2, hp->d_ff, d, &L->w_up, NULL, NULL, err));
        CHK(bind(w, shift, NAME("%smlp.down_proj.weight", base), 2, d, hp->d_ff, &L->w_down, NULL, NULL, err));
    }
#undef NAME
    g->embed_scale = embed_scale_for(g->embed->type, d, hp->gguf);
    vlm_rope_inv_freq(&g->hp.rope_global, 0, g->inv_freq_global);
    vlm_rope_inv_freq(&g->hp.rope_local, 0, g->inv_freq_local);
    return VLM_OK;
}

void vlm_gemma3_text_free(struct vlm_gemma3_text *g) {
    if (!g) return;
    vlm_free(g->owned);
    vlm_free(g->layers);
    vlm_free(g->inv_freq_global);
    vlm_free(g->inv_freq_local);
    memset(g, 0, sizeof *g);
}

/* The rows of one sequence in the batch, in position order. */
struct g3_group {
    int sid, off, nr;
};

struct g3_scratch {
    int n_max, n_grp;
    float *x, *xb, *q, *k, *v, *att, *gate, *up, *qg, *og;
    int32_t *rows;          /* (n_max) batch row indices, grouped by sequence */
    int32_t *lo_full, *lo_slide, *hi;   /* (n_max) key spans per grouped row */
    struct g3_group *grp;   /* (n_max) */
};

void *vlm_gemma3_scratch_new(const struct vlm_gemma3_text *g, int n) {
    const struct vlm_gemma3_hparams *hp = &g->hp;
    struct g3_scratch *s = vlm_calloc(1, sizeof *s);
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
    s->rows = vlm_malloc(N * sizeof(int32_t));
    s->lo_full = vlm_malloc(N * sizeof(int32_t));
    s->lo_slide = vlm_malloc(N * sizeof(int32_t));
    s->hi = vlm_malloc(N * sizeof(int32_t));
    s->grp = vlm_malloc(N * sizeof *s->grp);
    if (!s->x || !s->xb || !s->q || !s->att || !s->qg || !s->og || !s->k || !s->v || !s->gate || !s->up ||
        !s->rows || !s->lo_full || !s->lo_slide || !s->hi || !s->grp) {
        vlm_gemma3_scratch_free(s);
        return NULL;
    }
    return s;
}

void vlm_gemma3_scratch_free(void *p) {
    struct g3_scratch *s = p;
    if (!s) return;
    vlm_free(s->x); vlm_free(s->xb); vlm_free(s->q); vlm_free(s->att); vlm_free(s->qg); vlm_free(s->og);
    vlm_free(s->k); vlm_free(s->v); vlm_free(s->gate); vlm_free(s->up); vlm_free(s->rows);
    vlm_free(s->lo_full); vlm_free(s->lo_slide); vlm_free(s->hi); vlm_free(s->grp);
    vlm_free(s);
}

/* Groups the rows by sequence and fills each row's key spans: [0 or pos-W+1, pos+1), the end
 * pushed to the end of its image for an image row (transformers' blockwise overlay: image
 * tokens of one run see each other; a sliding layer still cuts keys older than the window). */
static int plan_spans(struct g3_scratch *s, const struct vlm_gemma3_hparams *hp, const struct vlm_batch *b,
                      struct vlm_error *err) {
    int n = b->n_tokens, off = 0;
    s->n_grp = 0;
    for (int i = 0; i < n; i++) {
        int sid = b->seq_id[i], seen = 0;
        for (int gi = 0; gi < s->n_grp && !seen; gi++) seen = s->grp[gi].sid == sid;
        if (seen) continue;
        struct g3_group *g = &s->grp[s->n_grp++];
        g->sid = sid;
        g->off = off;
        for (int j = i; j < n; j++)
            if (b->seq_id[j] == sid) s->rows[off++] = j;
        g->nr = off - g->off;
        const int32_t *r = s->rows + g->off;
        for (int k = 0; k < g->nr; k++) {
            int pos = b->pos[r[k]], img = b->embd && b->embd[r[k]];
            s->lo_full[g->off + k] = 0;
            s->lo_slide[g->off + k] = hp->sliding_window > 0 && pos - hp->sliding_window + 1 > 0 ? pos - hp->sliding_window + 1 : 0;
            s->hi[g->off + k] = pos + 1;
            if (!img) continue;
            int e = k;
            while (e + 1 < g->nr && b->embd[r[e + 1]]) e++;
            if (e == g->nr - 1 && e - k + 1 < hp->image_run)
                return vlm_error_set(err, VLM_E_INVALID, "sequence %d: the step ends inside an image (its %d tokens attend to each other both ways, so they must come in one step)", sid, hp->image_run);
            for (int t = k; t <= e; t++) {
                int p = b->pos[r[t]];
                s->lo_full[g->off + t] = 0;
                s->lo_slide[g->off + t] = hp->sliding_window > 0 && p - hp->sliding_window + 1 > 0 ? p - hp->sliding_window + 1 : 0;
                s->hi[g->off + t] = b->pos[r[e]] + 1;
            }
            k = e;
        }
    }
    return VLM_OK;
}

struct g3_attend {
    const struct vlm_gemma3_text *g;
    struct vlm_kv *kv;
    struct g3_scratch *s;
    int layer;
};

static void attend_group(const struct g3_attend *c, const struct g3_group *gr, struct vlm_pool *pool) {
    const struct vlm_gemma3_hparams *hp = &c->g->hp;
    struct g3_scratch *s = c->s;
    size_t q = (size_t)hp->n_head * hp->d_head, kvd = (size_t)hp->n_head_kv * hp->d_head;
    const int32_t *rows = s->rows + gr->off;
    int contiguous = 1;
    for (int r = 1; r < gr->nr; r++) contiguous &= rows[r] == rows[r - 1] + 1;
    const float *qs = s->q + (size_t)rows[0] * q;
    float *os = s->att + (size_t)rows[0] * q;
    if (!contiguous) {
        for (int r = 0; r < gr->nr; r++) memcpy(s->qg + (size_t)(gr->off + r) * q, s->q + (size_t)rows[r] * q, sizeof(float) * q);
        qs = s->qg + (size_t)gr->off * q;
        os = s->og + (size_t)gr->off * q;
    }
    int sliding = hp->sliding[c->layer];
    struct vlm_attn_spans sp = {(sliding ? s->lo_slide : s->lo_full) + gr->off, s->hi + gr->off, hp->attn_softcap};
    int n_kv = s->hi[gr->off + gr->nr - 1];
    for (int r = 0; r < gr->nr; r++) if (s->hi[gr->off + r] > n_kv) n_kv = s->hi[gr->off + r];
    vlm_attention_spans(pool, os, qs, gr->nr, c->kv->seq[gr->sid].k[c->layer], c->kv->seq[gr->sid].v[c->layer],
                        c->kv->type, n_kv, hp->n_head, hp->n_head_kv, hp->d_head, kvd, hp->attn_scale, &sp);
    if (!contiguous)
        for (int r = 0; r < gr->nr; r++) memcpy(s->att + (size_t)rows[r] * q, s->og + (size_t)(gr->off + r) * q, sizeof(float) * q);
}

static void attend_task(void *ctx, int task, int thread) {
    (void)thread;
    const struct g3_attend *c = ctx;
    attend_group(c, &c->s->grp[task], NULL);
}

/* Attention of every sequence: one pool run with a task per sequence when every sequence has
 * a row or few (decode), else each sequence's rows over the whole pool. */
static void attend(const struct vlm_gemma3_text *g, struct vlm_kv *kv, struct vlm_pool *pool,
                   struct g3_scratch *s, int layer) {
    struct g3_attend c = {g, kv, s, layer};
    int all_small = 1;
    for (int gi = 0; gi < s->n_grp; gi++) all_small &= s->grp[gi].nr <= 4;
    if (all_small && s->n_grp > 1) {
        vlm_pool_run(pool, s->n_grp, attend_task, &c);
        return;
    }
    for (int gi = 0; gi < s->n_grp; gi++) attend_group(&c, &s->grp[gi], pool);
}

static void gelu_mul(float *gate, const float *up, size_t n) {
    vlm_gelu_tanh(gate, n);
    for (size_t i = 0; i < n; i++) gate[i] *= up[i];
}

int vlm_gemma3_forward(const struct vlm_gemma3_text *g, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                       const struct vlm_batch *b, const int8_t *want, float *logits, struct vlm_error *err) {
    const struct vlm_gemma3_hparams *hp = &g->hp;
    struct g3_scratch *s = scratch;
    int n = b->n_tokens, d = hp->d_model, hd = hp->d_head, kvd = hp->n_head_kv * hd;
    if (!s || n > s->n_max) return vlm_error_set(err, VLM_E_INTERNAL, "decoder scratch too small for %d rows", n);
    int rc = plan_spans(s, hp, b, err);
    if (rc != VLM_OK) return rc;
    for (int i = 0; i < n; i++) {
        float *xi = s->x + (size_t)i * d;
        if (b->embd && b->embd[i]) {
            memcpy(xi, b->embd[i], sizeof(float) * d);   /* image rows are not scaled */
        } else {
            vlm_tensor_row_f32(g->embed, b->token[i], xi);
            for (int j = 0; j < d; j++) xi[j] *= g->embed_scale;
        }
    }
    for (int layer = 0; layer < hp->n_layer; layer++) {
        const struct vlm_gemma3_layer *L = &g->layers[layer];
        const float *inv_freq = hp->sliding[layer] ? g->inv_freq_local : g->inv_freq_global;
        vlm_rmsnorm(s->xb, s->x, L->attn_norm, n, d, hp->rms_eps);
        vlm_matmul(pool, s->xb, n, L->wq, NULL, s->q);
        vlm_matmul(pool, s->xb, n, L->wk, NULL, s->k);
        vlm_matmul(pool, s->xb, n, L->wv, NULL, s->v);
        vlm_rmsnorm(s->q, s->q, L->q_norm, n * hp->n_head, hd, hp->rms_eps);
        vlm_rmsnorm(s->k, s->k, L->k_norm, n * hp->n_head_kv, hd, hp->rms_eps);
        vlm_rope_apply(s->q, n, hp->n_head, hd, b->pos, inv_freq, hd, 1.0f);
        vlm_rope_apply(s->k, n, hp->n_head_kv, hd, b->pos, inv_freq, hd, 1.0f);
        for (int i = 0; i < n; i++)
            vlm_kv_put(kv, b->seq_id[i], layer, b->pos[i], s->k + (size_t)i * kvd, s->v + (size_t)i * kvd);
        attend(g, kv, pool, s, layer);
        vlm_matmul(pool, s->att, n, L->wo, NULL, s->xb);
        vlm_rmsnorm(s->xb, s->xb, L->post_attn_norm, n, d, hp->rms_eps);
        vlm_add(s->x, s->xb, (size_t)n * d);
        vlm_rmsnorm(s->xb, s->x, L->ffn_norm, n, d, hp->rms_eps);
        vlm_matmul(pool, s->xb, n, L->w_gate, NULL, s->gate);
        vlm_matmul(pool, s->xb, n, L->w_up, NULL, s->up);
        gelu_mul(s->gate, s->up, (size_t)n * hp->d_ff);
        vlm_matmul(pool, s->gate, n, L->w_down, NULL, s->xb);
        vlm_rmsnorm(s->xb, s->xb, L->post_ffn_norm, n, d, hp->rms_eps);
        vlm_add(s->x, s->xb, (size_t)n * d);
    }
    int n_out = 0;
    for (int i = 0; i < n; i++)
        if (want[i]) memcpy(s->xb + (size_t)n_out++ * d, s->x + (size_t)i * d, sizeof(float) * d);
    if (n_out) {
        vlm_rmsnorm(s->xb, s->xb, g->norm, n_out, d, hp->rms_eps);
        vlm_matmul(pool, s->xb, n_out, g->lm_head, NULL, logits);
        if (hp->final_softcap > 0) {
            float c = hp->final_softcap;
            for (size_t i = 0; i < (size_t)n_out * hp->n_vocab; i++) logits[i] = c * tanhf(logits[i] / c);
        }
    }
    return VLM_OK;
}

double vlm_gemma3_flops_per_token(const struct vlm_gemma3_text *g, double ctx) {
    const struct vlm_gemma3_hparams *h = &g->hp;
    double d = h->d_model, q = (double)h->n_head * h->d_head, kv = (double)h->n_head_kv * h->d_head, f = 0;
    for (int i = 0; i < h->n_layer; i++) {
        double seen = h->sliding[i] && h->sliding_window > 0 && ctx > h->sliding_window ? h->sliding_window : ctx;
        f += 2.0 * (d * q * 2 + d * kv * 2 + 3 * d * h->d_ff) + 2.0 * 2 * seen * q;
    }
    return f + 2.0 * d * h->n_vocab;
}

size_t vlm_gemma3_weight_bytes(const struct vlm_gemma3_text *g) {
    size_t b = g->lm_head->nbytes;   /* the embedding itself is read one row per token */
    for (int i = 0; i < g->hp.n_layer; i++) {
        const struct vlm_gemma3_layer *L = &g->layers[i];
        b += L->wq->nbytes + L->wk->nbytes + L->wv->nbytes + L->wo->nbytes + L->w_gate->nbytes +
             L->w_up->nbytes + L->w_down->nbytes;
    }
    return b;
}
