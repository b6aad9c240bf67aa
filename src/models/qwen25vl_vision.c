/* qwen25vl_vision.c — the Qwen2.5-VL / Qwen2-VL vision tower (see qwen25vl_vision.h): one image
 * per call, every matrix product over all its patches at once, attention per window (or per
 * frame in full-attention blocks) over the window-ordered patches, then the merger and the
 * inverse window permutation back to the prompt's token order. */
#include "models/qwen25vl_vision.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/config.h"
#include "formats/weights.h"
#include "models/llama.h"
#include "util/alloc.h"
#include "util/error.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) return rc; } while (0)

static int read_act(const struct vlm_config *c, json_t *v, const char *def, enum vlm_qwen_vision_act *act,
                    struct vlm_error *err) {
    const char *a;
    int rc;
    CHK(vlm_config_str(c, v, "hidden_act", def, &a, err));
    if (!strcmp(a, "silu")) *act = VLM_QV_SILU;
    else if (!strcmp(a, "quick_gelu")) *act = VLM_QV_QUICK_GELU;
    else if (!strcmp(a, "gelu")) *act = VLM_QV_GELU;
    else if (!strcmp(a, "gelu_pytorch_tanh") || !strcmp(a, "gelu_new")) *act = VLM_QV_GELU_TANH;
    else return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: vision hidden_act \"%s\" is not supported", c->path, a);
    return VLM_OK;
}

static int read_fullatt(const struct vlm_config *c, json_t *v, struct vlm_qwen_vision_hparams *hp,
                        struct vlm_error *err) {
    json_t *fa = json_object_get(v, "fullatt_block_indexes"), *e;
    size_t i;
    memset(hp->full_attn, 0, sizeof hp->full_attn);
    if (!fa || json_is_null(fa)) {   /* the class default (7, 15, 23, 31) */
        for (int k = 7; k <= 31 && k < hp->n_layer; k += 8) hp->full_attn[k] = 1;
        return VLM_OK;
    }
    if (!json_is_array(fa)) return vlm_error_set(err, VLM_E_FORMAT, "%s: vision_config.fullatt_block_indexes is not a list", c->path);
    json_array_foreach(fa, i, e) {
        if (!json_is_integer(e)) return vlm_error_set(err, VLM_E_FORMAT, "%s: vision_config.fullatt_block_indexes holds a non-integer", c->path);
        json_int_t k = json_integer_value(e);
        if (k >= 0 && k < hp->n_layer) hp->full_attn[k] = 1;   /* Python's `in`: others never match */
    }
    return VLM_OK;
}

int vlm_qwen_vision_hparams_read(const struct vlm_config *c, json_t *v, int v2, struct vlm_qwen_vision_hparams *hp,
                                 struct vlm_error *err) {
    int rc;
    long long d, ff, nl, nh, ch, ps, ms, tp, dout, ws = 112;
    double ratio = 4, theta = 10000;
    memset(hp, 0, sizeof *hp);
    hp->v2 = v2;
    CHK(vlm_config_int(c, v, "depth", 32, 1, VLM_QWEN_VISION_MAX_LAYERS, &nl, err));
    CHK(vlm_config_int(c, v, "num_heads", 16, 1, 256, &nh, err));
    CHK(vlm_config_int(c, v, "in_chans", 3, 1, 4, &ch, err));
    CHK(vlm_config_int(c, v, "in_channels", ch, 1, 4, &ch, err));
    CHK(vlm_config_int(c, v, "patch_size", 14, 1, 1024, &ps, err));
    CHK(vlm_config_int(c, v, "spatial_merge_size", 2, 1, 64, &ms, err));
    CHK(vlm_config_int(c, v, "temporal_patch_size", 2, 1, 16, &tp, err));
    json_t *rp = json_object_get(v, "rope_parameters");
    if (json_is_object(rp)) CHK(vlm_config_num(c, rp, "rope_theta", 10000.0, 1e-3, 1e12, &theta, err));
    if (v2) {
        CHK(vlm_config_int(c, v, "embed_dim", 1280, 1, 1 << 15, &d, err));
        CHK(vlm_config_int(c, v, "hidden_size", 3584, 1, 1 << 16, &dout, err));
        CHK(vlm_config_num(c, v, "mlp_ratio", 4.0, 1e-3, 64, &ratio, err));
        ff = (long long)(d * ratio);
        CHK(read_act(c, v, "quick_gelu", &hp->act, err));
    } else {
        CHK(vlm_config_int(c, v, "hidden_size", 3584, 1, 1 << 15, &d, err));
        CHK(vlm_config_int(c, v, "intermediate_size", 3420, 1, 1 << 17, &ff, err));
        CHK(vlm_config_int(c, v, "out_hidden_size", 3584, 1, 1 << 16, &dout, err));
        CHK(vlm_config_int(c, v, "window_size", 112, 1, 1 << 16, &ws, err));
        CHK(read_act(c, v, "silu", &hp->act, err));
        if (hp->act != VLM_QV_SILU)
            return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: Qwen2.5-VL vision hidden_act must be silu", c->path);
    }
    if (d % nh || (d / nh) % 4 || d / nh > 512)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: vision width %lld does not split into %lld heads of a multiple of 4 (<= 512)", c->path, d, nh);
    if (ff < 1 || ff > (1 << 18)) return vlm_error_set(err, VLM_E_FORMAT, "%s: vision MLP width %lld out of range", c->path, ff);
    hp->d_model = (int)d; hp->d_ff = (int)ff; hp->n_layer = (int)nl; hp->n_head = (int)nh;
    hp->n_channels = (int)ch; hp->patch_size = (int)ps; hp->merge = (int)ms; hp->temporal = (int)tp;
    hp->d_out = (int)dout; hp->window_size = (int)ws; hp->theta = (float)theta;
    hp->window_units = (int)(ws / ms / ps);
    if (!v2 && hp->window_units < 1)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: vision window_size %lld is smaller than one merged patch (%lld px)", c->path, ws, ms * ps);
    if (v2) return VLM_OK;   /* every Qwen2-VL block attends over the whole image */
    return read_fullatt(c, v, hp, err);
}

/* Rows [r0, r0 + n) of a 2-D weight as a tensor of their own. */
static struct vlm_tensor rows_view(const struct vlm_tensor *t, int64_t r0, int64_t n) {
    struct vlm_tensor v = *t;
    size_t rb = vlm_dtype_row_bytes(t->type, t->ne[1]);
    v.ne[0] = n;
    v.data = (const char *)t->data + (size_t)r0 * rb;
    v.nbytes = (size_t)n * rb;
    return v;
}

static int load_layer(struct vlm_qwen_vision *v, int i, const struct vlm_weights *w, const char *prefix, float **cur,
                      struct vlm_error *err) {
    const struct vlm_qwen_vision_hparams *hp = &v->hp;
    struct vlm_qwen_vision_layer *L = &v->layers[i];
    int d = hp->d_model, ff = hp->d_ff, rc;
    char name[320];
#define NAME(s) (snprintf(name, sizeof name, "%sblocks.%d.%s", prefix, i, s), name)
    CHK(vlm_weights_vec_f32(w, NAME("norm1.weight"), d, cur, &L->n1_w, err));
    CHK(vlm_weights_vec_f32(w, NAME("norm2.weight"), d, cur, &L->n2_w, err));
    if (hp->v2) {
        CHK(vlm_weights_vec_f32(w, NAME("norm1.bias"), d, cur, &L->n1_b, err));
        CHK(vlm_weights_vec_f32(w, NAME("norm2.bias"), d, cur, &L->n2_b, err));
    }
    const struct vlm_tensor *qkv;
    const float *bqkv;
    CHK(vlm_weights_mat(w, NAME("attn.qkv.weight"), 3 * (int64_t)d, d, &qkv, err));
    if (!vlm_matmul_supported(qkv->type))
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: tensor '%s': dtype %s", vlm_weights_file_of(w, name), name, vlm_dtype_name(qkv->type));
    L->wq = rows_view(qkv, 0, d);
    L->wk = rows_view(qkv, d, d);
    L->wv = rows_view(qkv, 2 * (int64_t)d, d);
    CHK(vlm_weights_vec_f32(w, NAME("attn.qkv.bias"), 3 * (int64_t)d, cur, &bqkv, err));
    L->bq = bqkv; L->bk = bqkv + d; L->bv = bqkv + 2 * d;
    CHK(vlm_weights_mat(w, NAME("attn.proj.weight"), d, d, &L->wo, err));
    CHK(vlm_weights_vec_f32(w, NAME("attn.proj.bias"), d, cur, &L->bo, err));
    if (hp->v2) {
        CHK(vlm_weights_mat(w, NAME("mlp.fc1.weight"), ff, d, &L->w_up, err));
        CHK(vlm_weights_vec_f32(w, NAME("mlp.fc1.bias"), ff, cur, &L->b_up, err));
        CHK(vlm_weights_mat(w, NAME("mlp.fc2.weight"), d, ff, &L->w_down, err));
        CHK(vlm_weights_vec_f32(w, NAME("mlp.fc2.bias"), d, cur, &L->b_down, err));
    } else {
        CHK(vlm_weights_mat(w, NAME("mlp.gate_proj.weight"), ff, d, &L->w_gate, err));
        CHK(vlm_weights_vec_f32(w, NAME("mlp.gate_proj.bias"), ff, cur, &L->b_gate, err));
        CHK(vlm_weights_mat(w, NAME("mlp.up_proj.weight"), ff, d, &L->w_up, err));
        CHK(vlm_weights_vec_f32(w, NAME("mlp.up_proj.bias"), ff, cur, &L->b_up, err));
        CHK(vlm_weights_mat(w, NAME("mlp.down_proj.weight"), d, ff, &L->w_down, err));
        CHK(vlm_weights_vec_f32(w, NAME("mlp.down_proj.bias"), d, cur, &L->b_down, err));
    }
#undef NAME
    return VLM_OK;
}

int vlm_qwen_vision_load(struct vlm_qwen_vision *v, const struct vlm_qwen_vision_hparams *hp,
                         const struct vlm_weights *w, const char *prefix, struct vlm_error *err) {
    memset(v, 0, sizeof *v);
    v->hp = *hp;
    int d = hp->d_model, ff = hp->d_ff, hd = d / hp->n_head, dm = d * hp->merge * hp->merge, rc;
    size_t n_owned = (size_t)hp->n_layer * (9 * (size_t)d + 2 * (size_t)ff) + 2 * (size_t)d + (size_t)dm + (size_t)hp->d_out;
    v->owned = vlm_malloc(n_owned * sizeof(float));
    v->layers = vlm_calloc((size_t)hp->n_layer, sizeof *v->layers);
    v->inv_freq = vlm_malloc(sizeof(float) * (size_t)(hd / 2));
    if (!v->owned || !v->layers || !v->inv_freq) return vlm_error_set(err, VLM_E_NOMEM, "out of memory loading the vision tower");
    float *cur = v->owned;
    char name[320];
    const struct vlm_tensor *pw;
    {
        int64_t ne[5] = {d, hp->n_channels, hp->temporal, hp->patch_size, hp->patch_size};
        snprintf(name, sizeof name, "%spatch_embed.proj.weight", prefix);
        CHK(vlm_weights_require(w, name, 5, ne, &pw, err));
        if (!vlm_matmul_supported(pw->type))
            return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: tensor '%s': dtype %s", vlm_weights_file_of(w, name), name, vlm_dtype_name(pw->type));
        v->patch_w = *pw;
        v->patch_w.n_dims = 2;
        v->patch_w.ne[1] = (int64_t)hp->n_channels * hp->temporal * hp->patch_size * hp->patch_size;
        v->patch_w.ne[2] = v->patch_w.ne[3] = v->patch_w.ne[4] = 0;
    }
    for (int i = 0; i < hp->n_layer; i++) CHK(load_layer(v, i, w, prefix, &cur, err));
    snprintf(name, sizeof name, "%smerger.ln_q.weight", prefix);
    CHK(vlm_weights_vec_f32(w, name, d, &cur, &v->lnq_w, err));
    if (hp->v2) {
        snprintf(name, sizeof name, "%smerger.ln_q.bias", prefix);
        CHK(vlm_weights_vec_f32(w, name, d, &cur, &v->lnq_b, err));
    }
    snprintf(name, sizeof name, "%smerger.mlp.0.weight", prefix);
    CHK(vlm_weights_mat(w, name, dm, dm, &v->m0, err));
    snprintf(name, sizeof name, "%smerger.mlp.0.bias", prefix);
    CHK(vlm_weights_vec_f32(w, name, dm, &cur, &v->m0_b, err));
    snprintf(name, sizeof name, "%smerger.mlp.2.weight", prefix);
    CHK(vlm_weights_mat(w, name, hp->d_out, dm, &v->m2, err));
    snprintf(name, sizeof name, "%smerger.mlp.2.bias", prefix);
    CHK(vlm_weights_vec_f32(w, name, hp->d_out, &cur, &v->m2_b, err));
    /* axial rotary: theta^(-2i/(hd/2)) for i < hd/4, used once for h and once for w */
    struct vlm_rope_params rp = {.type = VLM_ROPE_DEFAULT, .theta = hp->theta, .rot_dim = hd / 2};
    vlm_rope_inv_freq(&rp, 0, v->inv_freq);
    memcpy(v->inv_freq + hd / 4, v->inv_freq, sizeof(float) * (size_t)(hd / 4));
    return VLM_OK;
}

void vlm_qwen_vision_free(struct vlm_qwen_vision *v) {
    if (!v) return;
    vlm_free(v->owned);
    vlm_free(v->layers);
    vlm_free(v->inv_freq);
    memset(v, 0, sizeof *v);
}

int vlm_qwen_window_index(int gh, int gw, int merge, int units, int32_t *win_index, int32_t *win_len) {
    int lh = gh / merge, lw = gw / merge, n_win = 0, k = 0;
    /* transformers pads to the next multiple (a whole extra window when it divides); windows
       left empty by the padding are dropped by unique_consecutive of the cumulative lengths */
    int nwh = (lh + units - lh % units) / units, nww = (lw + units - lw % units) / units;
    for (int wh = 0; wh < nwh; wh++)
        for (int ww = 0; ww < nww; ww++) {
            int len = 0;
            for (int r = wh * units; r < (wh + 1) * units && r < lh; r++)
                for (int c = ww * units; c < (ww + 1) * units && c < lw; c++) {
                    win_index[k++] = r * lw + c;
                    len++;
                }
            if (len) win_len[n_win++] = len;
        }
    return n_win;
}

static void activate(enum vlm_qwen_vision_act act, float *x, size_t n) {
    if (act == VLM_QV_GELU) vlm_gelu_erf(x, n);
    else if (act == VLM_QV_GELU_TANH) vlm_gelu_tanh(x, n);
    else if (act == VLM_QV_SILU) vlm_silu(x, n);
    else
        for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));   /* quick_gelu */
}

/* Working memory of one image. */
struct vis_buf {
    float *x, *xb, *q, *k, *v, *att, *g, *u, *merged;
    int32_t *pos, *perm, *seg;   /* (n, 2) h/w positions; (units) window order; (segments) patch counts */
};

static void vis_buf_free(struct vis_buf *b) {
    vlm_free(b->x); vlm_free(b->pos); vlm_free(b->perm); vlm_free(b->seg);
}

static int vis_buf_new(struct vis_buf *b, const struct vlm_qwen_vision_hparams *hp, size_t n, size_t units) {
    size_t D = (size_t)hp->d_model, F = (size_t)hp->d_ff, total;
    memset(b, 0, sizeof *b);
    if (!vlm_mul_ok(n, 6 * D + 2 * F, &total)) return VLM_E_TOO_LARGE;
    total += units * (size_t)hp->d_out;
    b->x = vlm_malloc(total * sizeof(float));
    b->pos = vlm_malloc(n * 2 * sizeof(int32_t));
    b->perm = vlm_malloc((units + 1) * sizeof(int32_t));
    b->seg = vlm_malloc((2 * units + 2) * sizeof(int32_t));   /* windows (<= units), then frames (<= units) */
    if (!b->x || !b->pos || !b->perm || !b->seg) { vis_buf_free(b); return VLM_E_NOMEM; }
    b->xb = b->x + n * D; b->q = b->xb + n * D; b->k = b->q + n * D; b->v = b->k + n * D;
    b->att = b->v + n * D; b->g = b->att + n * D; b->u = b->g + n * F; b->merged = b->u + n * F;
    return VLM_OK;
}

/* Rows of x in window order: unit perm[j] (M^2 consecutive rows of w floats) moves to slot j. */
static void permute_units(float *dst, const float *src, const int32_t *perm, int units, size_t unit_floats) {
    for (int j = 0; j < units; j++)
        memcpy(dst + (size_t)j * unit_floats, src + (size_t)perm[j] * unit_floats, unit_floats * sizeof(float));
}

/* Self-attention of q/k/v (n, d) in segments of seg[i] consecutive rows. */
static void attend_segments(const struct vlm_qwen_vision *v, struct vlm_pool *pool, struct vis_buf *b,
                            const int32_t *seg, int n_seg) {
    int d = v->hp.d_model, nh = v->hp.n_head, hd = d / nh;
    float scale = 1.0f / sqrtf((float)hd);
    size_t off = 0;
    for (int s = 0; s < n_seg; s++) {
        size_t o = off * (size_t)d;
        vlm_attention(pool, b->att + o, b->q + o, seg[s], b->k + o, b->v + o, seg[s], nh, nh, hd, (size_t)d, scale,
                      0, 0, NULL);
        off += (size_t)seg[s];
    }
}

static void mlp(const struct vlm_qwen_vision *v, const struct vlm_qwen_vision_layer *L, struct vlm_pool *pool,
                struct vis_buf *b, int n) {
    size_t nf = (size_t)n * v->hp.d_ff;
    if (v->hp.v2) {
        vlm_matmul(pool, b->xb, n, L->w_up, L->b_up, b->u);
        activate(v->hp.act, b->u, nf);
        vlm_matmul(pool, b->u, n, L->w_down, L->b_down, b->xb);
        return;
    }
    vlm_matmul(pool, b->xb, n, L->w_gate, L->b_gate, b->g);
    vlm_matmul(pool, b->xb, n, L->w_up, L->b_up, b->u);
    vlm_silu_mul(b->g, b->u, nf);
    vlm_matmul(pool, b->g, n, L->w_down, L->b_down, b->xb);
}

static void norm(const struct vlm_qwen_vision *v, float *y, const float *x, const float *w, const float *bias, int n) {
    if (v->hp.v2) vlm_layernorm(y, x, w, bias, n, v->hp.d_model, 1e-6f);
    else vlm_rmsnorm(y, x, w, n, v->hp.d_model, 1e-6f);
}

/* h/w patch positions in the processor's merge-window order (get_vision_position_ids), frame by
 * frame, then moved to window order with the rows. */
static void positions(const struct vlm_qwen_vision_hparams *hp, int t, int gh, int gw, const int32_t *perm,
                      int32_t *pos, int32_t *tmp) {
    int M = hp->merge, bw_n = gw / M, per = gh * gw, mm = M * M;
    for (int f = 0; f < t; f++)
        for (int i = 0; i < per; i++) {
            int blk = i / mm, r = (i % mm) / M, c = i % M;
            int32_t *p = tmp + 2 * ((size_t)f * per + i);
            p[0] = (blk / bw_n) * M + r;
            p[1] = (blk % bw_n) * M + c;
        }
    int units = t * per / mm;
    for (int j = 0; j < units; j++)
        memcpy(pos + (size_t)j * mm * 2, tmp + (size_t)perm[j] * mm * 2, sizeof(int32_t) * 2 * (size_t)mm);
}

int vlm_qwen_vision_forward(const struct vlm_qwen_vision *v, struct vlm_pool *pool, const float *pixels,
                            const int grid[3], float *out, struct vlm_error *err) {
    const struct vlm_qwen_vision_hparams *hp = &v->hp;
    int t = grid[0], gh = grid[1], gw = grid[2], M = hp->merge, d = hp->d_model, hd = d / hp->n_head;
    if (t < 1 || gh < 1 || gw < 1 || gh % M || gw % M || (long)t * gh * gw > (1L << 20))
        return vlm_error_set(err, VLM_E_INVALID, "image grid %dx%dx%d does not fit the vision tower (merge %d)", t, gh, gw, M);
    int n = t * gh * gw, mm = M * M, units = n / mm;
    struct vis_buf b;
    int rc = vis_buf_new(&b, hp, (size_t)n, (size_t)units);
    if (rc != VLM_OK) return vlm_error_set(err, rc, "out of memory encoding a %dx%d-patch image", gw, gh);
    /* window order (identity for Qwen2-VL) and the segments each kind of block attends in */
    int n_win = 0;
    if (hp->v2) {
        for (int j = 0; j < units; j++) b.perm[j] = j;
    } else {
        for (int f = 0; f < t; f++) {
            int per = gh * gw / mm;
            int k = vlm_qwen_window_index(gh, gw, M, hp->window_units, b.perm + (size_t)f * per, b.seg + n_win);
            for (int j = 0; j < per; j++) b.perm[(size_t)f * per + j] += f * per;
            n_win += k;
        }
        for (int s = 0; s < n_win; s++) b.seg[s] *= mm;
    }
    int32_t *frames = b.seg + n_win, *tmp = (int32_t *)b.q;   /* q is free until the first block */
    for (int f = 0; f < t; f++) frames[f] = gh * gw;
    positions(hp, t, gh, gw, b.perm, b.pos, tmp);
    vlm_matmul(pool, pixels, n, &v->patch_w, NULL, b.xb);
    permute_units(b.x, b.xb, b.perm, units, (size_t)mm * d);
    int sec[2] = {hd / 4, hd / 4};
    size_t nd = (size_t)n * d;
    for (int l = 0; l < hp->n_layer; l++) {
        const struct vlm_qwen_vision_layer *L = &v->layers[l];
        norm(v, b.xb, b.x, L->n1_w, L->n1_b, n);
        vlm_matmul(pool, b.xb, n, &L->wq, L->bq, b.q);
        vlm_matmul(pool, b.xb, n, &L->wk, L->bk, b.k);
        vlm_matmul(pool, b.xb, n, &L->wv, L->bv, b.v);
        vlm_rope_apply_sections(b.q, n, hp->n_head, hd, b.pos, 2, sec, v->inv_freq);
        vlm_rope_apply_sections(b.k, n, hp->n_head, hd, b.pos, 2, sec, v->inv_freq);
        if (hp->v2 || hp->full_attn[l]) attend_segments(v, pool, &b, frames, t);
        else attend_segments(v, pool, &b, b.seg, n_win);
        vlm_matmul(pool, b.att, n, L->wo, L->bo, b.xb);
        vlm_add(b.x, b.xb, nd);
        norm(v, b.xb, b.x, L->n2_w, L->n2_b, n);
        mlp(v, L, pool, &b, n);
        vlm_add(b.x, b.xb, nd);
    }
    /* merger: ln_q per patch, M^2 neighbours as one row (d*M^2), mlp.0, GELU, mlp.2 */
    norm(v, b.xb, b.x, v->lnq_w, v->lnq_b, n);
    vlm_matmul(pool, b.xb, units, v->m0, v->m0_b, b.att);
    vlm_gelu_erf(b.att, (size_t)units * d * mm);
    vlm_matmul(pool, b.att, units, v->m2, v->m2_b, b.merged);
    for (int j = 0; j < units; j++)   /* back from window order to the prompt's order */
        memcpy(out + (size_t)b.perm[j] * hp->d_out, b.merged + (size_t)j * hp->d_out, sizeof(float) * (size_t)hp->d_out);
    vis_buf_free(&b);
    return VLM_OK;
}

double vlm_qwen_vision_flops(const struct vlm_qwen_vision_hparams *hp, const int grid[3]) {
    double d = hp->d_model, ff = hp->d_ff, mm = (double)hp->merge * hp->merge;
    double pin = (double)hp->n_channels * hp->temporal * hp->patch_size * hp->patch_size;
    double n = (double)grid[0] * grid[1] * grid[2], frame = (double)grid[1] * grid[2];
    double mlp = hp->v2 ? 2 * d * ff : 3 * d * ff, win_pairs = 0;   /* sum over windows of len^2 */
    int units = grid[1] / hp->merge * (grid[2] / hp->merge);
    int32_t *idx = hp->v2 || units <= 0 ? NULL : vlm_malloc(sizeof(int32_t) * 2 * (size_t)units);
    if (idx) {
        int nw = vlm_qwen_window_index(grid[1], grid[2], hp->merge, hp->window_units, idx, idx + units);
        for (int i = 0; i < nw; i++) win_pairs += (double)idx[units + i] * mm * idx[units + i] * mm;
        vlm_free(idx);
    }
    double attn = 0;
    for (int l = 0; l < hp->n_layer; l++)   /* QK^T and PV: 2 x 2 x pairs x d */
        attn += 4.0 * d * grid[0] * (hp->v2 || hp->full_attn[l] || !win_pairs ? frame * frame : win_pairs);
    return 2.0 * n * pin * d + hp->n_layer * 2.0 * n * (4 * d * d + mlp) + attn +
           2.0 * (n / mm) * (d * mm) * (d * mm + hp->d_out);
}
