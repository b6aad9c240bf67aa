/* clip_vision.c — the CLIP vision tower (see clip_vision.h): one image per call, every matrix
 * multiply over all its tokens at once; the hidden states LLaVA asks for are copied out as the
 * layers produce them, and layers past the last one asked for are never run. */
#include "models/clip_vision.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/config.h"
#include "formats/weights.h"
#include "models/llama.h"
#include "util/alloc.h"
#include "util/error.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) return rc; } while (0)

int vlm_clip_act_parse(const char *name, enum vlm_clip_act *out) {
    if (!strcmp(name, "quick_gelu")) *out = VLM_CLIP_ACT_QUICK_GELU;
    else if (!strcmp(name, "gelu")) *out = VLM_CLIP_ACT_GELU;
    else if (!strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_new")) *out = VLM_CLIP_ACT_GELU_TANH;
    else if (!strcmp(name, "silu") || !strcmp(name, "swish")) *out = VLM_CLIP_ACT_SILU;
    else return -1;
    return 0;
}

void vlm_clip_act_apply(enum vlm_clip_act a, float *x, size_t n) {
    switch (a) {
    case VLM_CLIP_ACT_QUICK_GELU: vlm_gelu_quick(x, n); break;
    case VLM_CLIP_ACT_GELU: vlm_gelu_erf(x, n); break;
    case VLM_CLIP_ACT_GELU_TANH: vlm_gelu_tanh(x, n); break;
    case VLM_CLIP_ACT_SILU: vlm_silu(x, n); break;
    }
}

int vlm_clip_vision_hparams_read(const struct vlm_config *c, json_t *v, struct vlm_clip_vision_hparams *hp,
                                 struct vlm_error *err) {
    int rc;
    long long d, ff, nl, nh, ch, is, ps;
    double eps;
    const char *act;
    memset(hp, 0, sizeof *hp);
    CHK(vlm_config_int(c, v, "hidden_size", 768, 1, 1 << 15, &d, err));
    CHK(vlm_config_int(c, v, "intermediate_size", 3072, 1, 1 << 17, &ff, err));
    CHK(vlm_config_int(c, v, "num_hidden_layers", 12, 1, 256, &nl, err));
    CHK(vlm_config_int(c, v, "num_attention_heads", 12, 1, 256, &nh, err));
    CHK(vlm_config_int(c, v, "num_channels", 3, 1, 4, &ch, err));
    CHK(vlm_config_int(c, v, "image_size", 224, 1, 4096, &is, err));
    CHK(vlm_config_int(c, v, "patch_size", 32, 1, 1024, &ps, err));
    CHK(vlm_config_num(c, v, "layer_norm_eps", 1e-5, 0, 1, &eps, err));
    CHK(vlm_config_str(c, v, "hidden_act", "quick_gelu", &act, err));
    if (d % nh || (d / nh) > 512)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: vision hidden_size %lld not divisible into %lld heads of at most 512", c->path, d, nh);
    if (is % ps)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: vision image_size %lld is not a multiple of patch_size %lld", c->path, is, ps);
    if (vlm_clip_act_parse(act, &hp->act) != 0)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: vision hidden_act \"%s\" is not supported", c->path, act);
    hp->d_model = (int)d; hp->d_ff = (int)ff; hp->n_layer = (int)nl; hp->n_head = (int)nh;
    hp->n_channels = (int)ch; hp->image_size = (int)is; hp->patch_size = (int)ps; hp->ln_eps = (float)eps;
    return VLM_OK;
}

static int load_layer(const struct vlm_weights *w, const char *base, int d, int ff, float **cur,
                      struct vlm_clip_vision_layer *L, struct vlm_error *err) {
    char name[320];
    int rc;
#define NAME(s) (snprintf(name, sizeof name, "%s%s", base, s), name)
    CHK(vlm_weights_vec_f32(w, NAME("layer_norm1.weight"), d, cur, &L->ln1_w, err));
    CHK(vlm_weights_vec_f32(w, NAME("layer_norm1.bias"), d, cur, &L->ln1_b, err));
    CHK(vlm_weights_vec_f32(w, NAME("layer_norm2.weight"), d, cur, &L->ln2_w, err));
    CHK(vlm_weights_vec_f32(w, NAME("layer_norm2.bias"), d, cur, &L->ln2_b, err));
    CHK(vlm_weights_mat(w, NAME("self_attn.q_proj.weight"), d, d, &L->wq, err));
    CHK(vlm_weights_mat(w, NAME("self_attn.k_proj.weight"), d, d, &L->wk, err));
    CHK(vlm_weights_mat(w, NAME("self_attn.v_proj.weight"), d, d, &L->wv, err));
    CHK(vlm_weights_mat(w, NAME("self_attn.out_proj.weight"), d, d, &L->wo, err));
    CHK(vlm_weights_vec_f32(w, NAME("self_attn.q_proj.bias"), d, cur, &L->bq, err));
    CHK(vlm_weights_vec_f32(w, NAME("self_attn.k_proj.bias"), d, cur, &L->bk, err));
    CHK(vlm_weights_vec_f32(w, NAME("self_attn.v_proj.bias"), d, cur, &L->bv, err));
    CHK(vlm_weights_vec_f32(w, NAME("self_attn.out_proj.bias"), d, cur, &L->bo, err));
    CHK(vlm_weights_mat(w, NAME("mlp.fc1.weight"), ff, d, &L->fc1, err));
    CHK(vlm_weights_mat(w, NAME("mlp.fc2.weight"), d, ff, &L->fc2, err));
    CHK(vlm_weights_vec_f32(w, NAME("mlp.fc1.bias"), ff, cur, &L->b1, err));
    CHK(vlm_weights_vec_f32(w, NAME("mlp.fc2.bias"), d, cur, &L->b2, err));
#undef NAME
    return VLM_OK;
}

int vlm_clip_vision_load(struct vlm_clip_vision *s, const struct vlm_clip_vision_hparams *hp,
                         const struct vlm_weights *w, const char *prefix, int n_used, struct vlm_error *err) {
    memset(s, 0, sizeof *s);
    s->hp = *hp;
    if (n_used < 0 || n_used > hp->n_layer)
        return vlm_error_set(err, VLM_E_INTERNAL, "vision tower: %d of %d layers asked for", n_used, hp->n_layer);
    int d = hp->d_model, ff = hp->d_ff, p = hp->patch_size, nps = hp->image_size / p, rc;
    size_t n_owned = (size_t)d * 3 + (size_t)n_used * (size_t)(9 * d + ff);
    s->owned = vlm_malloc(n_owned * sizeof(float));
    s->layers = vlm_calloc(n_used ? (size_t)n_used : 1, sizeof *s->layers);
    if (!s->owned || !s->layers) return vlm_error_set(err, VLM_E_NOMEM, "out of memory loading the vision tower");
    float *cur = s->owned;
    char name[256];
#define NAME(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
    {
        int64_t ne[4] = {d, hp->n_channels, p, p};
        CHK(vlm_weights_require(w, NAME("%sembeddings.patch_embedding.weight", prefix), 4, ne, &s->patch_w, err));
    }
    CHK(vlm_weights_vec_f32(w, NAME("%sembeddings.class_embedding", prefix), d, &cur, &s->cls, err));
    CHK(vlm_weights_mat(w, NAME("%sembeddings.position_embedding.weight", prefix), (int64_t)nps * nps + 1, d, &s->pos_emb, err));
    CHK(vlm_weights_vec_f32(w, NAME("%spre_layrnorm.weight", prefix), d, &cur, &s->pre_ln_w, err));
    CHK(vlm_weights_vec_f32(w, NAME("%spre_layrnorm.bias", prefix), d, &cur, &s->pre_ln_b, err));
    for (int i = 0; i < n_used; i++) {
        char base[256];
        snprintf(base, sizeof base, "%sencoder.layers.%d.", prefix, i);
        CHK(load_layer(w, base, d, ff, &cur, &s->layers[i], err));
    }
#undef NAME
    s->n_layer_loaded = n_used;
    return VLM_OK;
}

void vlm_clip_vision_free(struct vlm_clip_vision *s) {
    if (!s) return;
    vlm_free(s->owned);
    vlm_free(s->layers);
    memset(s, 0, sizeof *s);
}

double vlm_clip_vision_flops(const struct vlm_clip_vision_hparams *hp, int n_layer) {
    double nps = hp->image_size / hp->patch_size, n = nps * nps + 1, d = hp->d_model, ff = hp->d_ff;
    double p2c = (double)hp->patch_size * hp->patch_size * hp->n_channels;
    double per_layer = 2.0 * n * (4 * d * d + 2 * d * ff) + 2.0 * 2 * n * n * d;
    return 2.0 * (n - 1) * p2c * d + n_layer * per_layer;
}

/* Copies the tokens of hidden state x (n, d) into column block `slot` of out. */
static void take_state(float *out, const float *x, int n, int d, int drop_cls, int slot, int n_states) {
    size_t row = (size_t)n_states * d;
    for (int t = drop_cls; t < n; t++)
        memcpy(out + (size_t)(t - drop_cls) * row + (size_t)slot * d, x + (size_t)t * d, sizeof(float) * (size_t)d);
}

static void take_states(float *out, const float *x, int n, int d, int drop_cls, const int *states,
                        int n_states, int k) {
    for (int j = 0; j < n_states; j++)
        if (states[j] == k) take_state(out, x, n, d, drop_cls, j, n_states);
}

int vlm_clip_vision_forward(const struct vlm_clip_vision *s, struct vlm_pool *pool, const float *img, int H,
                            int W, const int *states, int n_states, int drop_cls, float *out,
                            struct vlm_error *err) {
    const struct vlm_clip_vision_hparams *hp = &s->hp;
    int p = hp->patch_size, C = hp->n_channels, d = hp->d_model, ff = hp->d_ff, last = 0;
    if (H != hp->image_size || W != hp->image_size)
        return vlm_error_set(err, VLM_E_INVALID, "image %dx%d does not match the vision tower's %dx%d", W, H,
                             hp->image_size, hp->image_size);
    for (int j = 0; j < n_states; j++) {
        if (states[j] < 0 || states[j] > s->n_layer_loaded)
            return vlm_error_set(err, VLM_E_INTERNAL, "vision tower: hidden state %d not loaded", states[j]);
        if (states[j] > last) last = states[j];
    }
    int n_patch = (H / p) * (W / p), n = n_patch + 1;
    size_t N = (size_t)n, D = (size_t)d, cols_n = (size_t)n_patch * (size_t)C * p * p;
    float *buf = vlm_malloc(sizeof(float) * (6 * N * D + N * (size_t)ff + cols_n));
    if (!buf) return vlm_error_set(err, VLM_E_NOMEM, "out of memory encoding a %dx%d image", W, H);
    float *x = buf, *xb = x + N * D, *q = xb + N * D, *k = q + N * D, *v = k + N * D, *h = v + N * D;
    float *att = h + N * (size_t)ff, *cols = att + N * D;
    /* embeddings: [class; patches] + positions, then the pre-LayerNorm */
    vlm_conv2d_patch(pool, xb + D, img, C, H, W, p, s->patch_w, NULL, cols);
    memcpy(xb, s->cls, sizeof(float) * D);
    for (int i = 0; i < n; i++) {
        vlm_tensor_row_f32(s->pos_emb, i, q);
        vlm_add(xb + (size_t)i * D, q, D);
    }
    vlm_layernorm(x, xb, s->pre_ln_w, s->pre_ln_b, n, d, hp->ln_eps);
    take_states(out, x, n, d, drop_cls, states, n_states, 0);
    float scale = 1.0f / sqrtf((float)(d / hp->n_head));
    for (int l = 0; l < last; l++) {
        const struct vlm_clip_vision_layer *L = &s->layers[l];
        vlm_layernorm(xb, x, L->ln1_w, L->ln1_b, n, d, hp->ln_eps);
        vlm_matmul(pool, xb, n, L->wq, L->bq, q);
        vlm_matmul(pool, xb, n, L->wk, L->bk, k);
        vlm_matmul(pool, xb, n, L->wv, L->bv, v);
        vlm_attention(pool, att, q, n, k, v, n, hp->n_head, hp->n_head, d / hp->n_head, D, scale, 0, 0, NULL);
        vlm_matmul(pool, att, n, L->wo, L->bo, xb);
        vlm_add(x, xb, N * D);
        vlm_layernorm(xb, x, L->ln2_w, L->ln2_b, n, d, hp->ln_eps);
        vlm_matmul(pool, xb, n, L->fc1, L->b1, h);
        vlm_clip_act_apply(hp->act, h, N * (size_t)ff);
        vlm_matmul(pool, h, n, L->fc2, L->b2, xb);
        vlm_add(x, xb, N * D);
        take_states(out, x, n, d, drop_cls, states, n_states, l + 1);
    }
    vlm_free(buf);
    return VLM_OK;
}
