/* siglip.c — the SigLIP vision tower of Idefics3 (see siglip.h); one tile per call, every
 * matrix multiply over all patches of the tile at once (the compute-bound case). */
#include "models/siglip.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/config.h"
#include "formats/weights.h"
#include "models/llama.h"
#include "util/alloc.h"
#include "util/error.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) return rc; } while (0)

int vlm_siglip_hparams_read(const struct vlm_config *c, json_t *v, struct vlm_siglip_hparams *hp,
                            struct vlm_error *err) {
    int rc;
    long long d, ff, nl, nh, ch, is, ps;
    double eps;
    const char *act;
    CHK(vlm_config_int(c, v, "hidden_size", 1152, 1, 1 << 15, &d, err));
    CHK(vlm_config_int(c, v, "intermediate_size", 3072, 1, 1 << 17, &ff, err));
    CHK(vlm_config_int(c, v, "num_hidden_layers", 12, 1, 256, &nl, err));
    CHK(vlm_config_int(c, v, "num_attention_heads", 16, 1, 256, &nh, err));
    CHK(vlm_config_int(c, v, "num_channels", 3, 1, 4, &ch, err));
    CHK(vlm_config_int(c, v, "image_size", 224, 1, 8192, &is, err));
    CHK(vlm_config_int(c, v, "patch_size", 32, 1, 1024, &ps, err));
    CHK(vlm_config_num(c, v, "layer_norm_eps", 1e-6, 0, 1, &eps, err));
    CHK(vlm_config_str(c, v, "hidden_act", "gelu_pytorch_tanh", &act, err));
    if (d % nh || (d / nh) > 512) return vlm_error_set(err, VLM_E_FORMAT, "%s: vision hidden_size %lld not divisible into %lld heads of at most 512", c->path, d, nh);
    if (is % ps) return vlm_error_set(err, VLM_E_FORMAT, "%s: vision image_size %lld is not a multiple of patch_size %lld", c->path, is, ps);
    if (!strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_new") || !strcmp(act, "gelu_fast")) hp->gelu_tanh = 1;
    else if (!strcmp(act, "gelu")) hp->gelu_tanh = 0;
    else return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: vision hidden_act \"%s\" is not supported", c->path, act);
    hp->d_model = (int)d; hp->d_ff = (int)ff; hp->n_layer = (int)nl; hp->n_head = (int)nh;
    hp->n_channels = (int)ch; hp->image_size = (int)is; hp->patch_size = (int)ps; hp->ln_eps = (float)eps;
    hp->plain_positions = 0;
    return VLM_OK;
}

int vlm_siglip_load(struct vlm_siglip *s, const struct vlm_siglip_hparams *hp, const struct vlm_weights *w,
                    const char *prefix, struct vlm_error *err) {
    memset(s, 0, sizeof *s);
    s->hp = *hp;
    int d = hp->d_model, ff = hp->d_ff, p = hp->patch_size, nps = hp->image_size / p, rc;
    size_t n_owned = (size_t)d * 3 + (size_t)hp->n_layer * (size_t)(8 * d + ff + d);
    s->owned = vlm_malloc(n_owned * sizeof(float));
    s->layers = vlm_calloc((size_t)hp->n_layer, sizeof *s->layers);
    if (!s->owned || !s->layers) return vlm_error_set(err, VLM_E_NOMEM, "out of memory loading the vision tower");
    float *cur = s->owned;
    char name[256];
#define NAME(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
    {
        int64_t ne[4] = {d, hp->n_channels, p, p};
        CHK(vlm_weights_require(w, NAME("%sembeddings.patch_embedding.weight", prefix), 4, ne, &s->patch_w, err));
    }
    CHK(vlm_weights_vec_f32(w, NAME("%sembeddings.patch_embedding.bias", prefix), d, &cur, &s->patch_b, err));
    CHK(vlm_weights_mat(w, NAME("%sembeddings.position_embedding.weight", prefix), (int64_t)nps * nps, d, &s->pos_emb, err));
    CHK(vlm_weights_vec_f32(w, NAME("%spost_layernorm.weight", prefix), d, &cur, &s->post_ln_w, err));
    CHK(vlm_weights_vec_f32(w, NAME("%spost_layernorm.bias", prefix), d, &cur, &s->post_ln_b, err));
    for (int i = 0; i < hp->n_layer; i++) {
        struct vlm_siglip_layer *L = &s->layers[i];
        const char *pre = NAME("%sencoder.layers.%d.", prefix, i);
        char base[256];
        snprintf(base, sizeof base, "%s", pre);
        CHK(vlm_weights_vec_f32(w, NAME("%slayer_norm1.weight", base), d, &cur, &L->ln1_w, err));
        CHK(vlm_weights_vec_f32(w, NAME("%slayer_norm1.bias", base), d, &cur, &L->ln1_b, err));
        CHK(vlm_weights_vec_f32(w, NAME("%slayer_norm2.weight", base), d, &cur, &L->ln2_w, err));
        CHK(vlm_weights_vec_f32(w, NAME("%slayer_norm2.bias", base), d, &cur, &L->ln2_b, err));
        CHK(vlm_weights_mat(w, NAME("%sself_attn.q_proj.weight", base), d, d, &L->wq, err));
        CHK(vlm_weights_mat(w, NAME("%sself_attn.k_proj.weight", base), d, d, &L->wk, err));
        CHK(vlm_weights_mat(w, NAME("%sself_attn.v_proj.weight", base), d, d, &L->wv, err));
        CHK(vlm_weights_mat(w, NAME("%sself_attn.out_proj.weight", base), d, d, &L->wo, err));
        CHK(vlm_weights_vec_f32(w, NAME("%sself_attn.q_proj.bias", base), d, &cur, &L->bq, err));
        CHK(vlm_weights_vec_f32(w, NAME("%sself_attn.k_proj.bias", base), d, &cur, &L->bk, err));
        CHK(vlm_weights_vec_f32(w, NAME("%sself_attn.v_proj.bias", base), d, &cur, &L->bv, err));
        CHK(vlm_weights_vec_f32(w, NAME("%sself_attn.out_proj.bias", base), d, &cur, &L->bo, err));
        CHK(vlm_weights_mat(w, NAME("%smlp.fc1.weight", base), ff, d, &L->fc1, err));
        CHK(vlm_weights_mat(w, NAME("%smlp.fc2.weight", base), d, ff, &L->fc2, err));
        CHK(vlm_weights_vec_f32(w, NAME("%smlp.fc1.bias", base), ff, &cur, &L->b1, err));
        CHK(vlm_weights_vec_f32(w, NAME("%smlp.fc2.bias", base), d, &cur, &L->b2, err));
    }
#undef NAME
    return VLM_OK;
}

void vlm_siglip_free(struct vlm_siglip *s) {
    if (!s) return;
    vlm_free(s->owned);
    vlm_free(s->layers);
    memset(s, 0, sizeof *s);
}

/* torch.bucketize(v, boundaries, right=True): how many boundaries are <= v. */
static int bucket(float v, const float *bounds, int nb) {
    int k = 0;
    while (k < nb && bounds[k] <= v) k++;
    return k;
}

void vlm_siglip_position_ids(int nps, const uint8_t *pm, int gh, int gw, int32_t *ids) {
    /* boundaries = torch.arange(1/nps, 1.0, 1/nps) in float32 (length from double math) */
    float bounds[1024];
    double step = 1.0 / nps;
    int nb = (int)ceil((1.0 - step) / step);
    if (nb > 1024) nb = 1024;
    if (nb < 0) nb = 0;
    for (int i = 0; i < nb; i++) bounds[i] = (float)(step + i * step);
    int nh = 0, nw = 0;
    for (int i = 0; i < gh; i++) nh += pm[(size_t)i * gw] != 0;   /* patch_attention_mask[:, :, 0].sum() */
    for (int j = 0; j < gw; j++) nw += pm[j] != 0;                /* patch_attention_mask[:, 0, :].sum() */
    float sh = 1.0f / (float)nh, sw = 1.0f / (float)nw;          /* inf when 0: every coord clamps */
    const float cap = (float)(1.0 - 1e-6);   /* clamp(max=1 - 1e-6) in float32 */
    for (int i = 0; i < gh; i++) {
        float fh = (float)i * sh;
        if (!(fh <= cap)) fh = cap;
        int bh = bucket(fh, bounds, nb);
        for (int j = 0; j < gw; j++) {
            float fw = (float)j * sw;
            if (!(fw <= cap)) fw = cap;
            size_t k = (size_t)i * gw + j;
            ids[k] = pm[k] ? bh * nps + bucket(fw, bounds, nb) : 0;
        }
    }
}

int vlm_siglip_forward(const struct vlm_siglip *s, struct vlm_pool *pool, const float *img,
                       const uint8_t *pixel_mask, int H, int W, float *out, struct vlm_error *err) {
    const struct vlm_siglip_hparams *hp = &s->hp;
    int p = hp->patch_size, C = hp->n_channels, d = hp->d_model, ff = hp->d_ff;
    if (H <= 0 || W <= 0 || H % p || W % p)
        return vlm_error_set(err, VLM_E_INVALID, "tile %dx%d is not a multiple of the %d-pixel patch", W, H, p);
    int gh = H / p, gw = W / p, n = gh * gw, nps = hp->image_size / p;
    size_t N = (size_t)n, D = (size_t)d, cols_n = N * (size_t)C * p * p;
    float *buf = vlm_malloc(sizeof(float) * (6 * N * D + N * (size_t)ff + cols_n));
    uint8_t *pm = vlm_malloc(N);
    int32_t *ids = vlm_malloc(sizeof(int32_t) * N);
    if (!buf || !pm || !ids) {
        vlm_free(buf); vlm_free(pm); vlm_free(ids);
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory encoding a %dx%d tile", W, H);
    }
    float *x = buf, *xb = x + N * D, *q = xb + N * D, *k = q + N * D, *v = k + N * D, *h = v + N * D;
    float *att = h + N * (size_t)ff, *cols = att + N * D;
    int all_real = 1;
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) {
            int real = 1;
            if (pixel_mask) {   /* a patch is real if any of its pixels is */
                real = 0;
                for (int y = i * p; y < (i + 1) * p && !real; y++)
                    for (int xx = j * p; xx < (j + 1) * p && !real; xx++) real = pixel_mask[(size_t)y * W + xx] != 0;
            }
            pm[(size_t)i * gw + j] = (uint8_t)real;
            all_real &= real;
        }
    if (hp->plain_positions) {
        if (n != nps * nps || pixel_mask) {
            vlm_free(buf); vlm_free(pm); vlm_free(ids);
            return vlm_error_set(err, VLM_E_INVALID, "tile %dx%d: this vision tower takes %dx%d images without padding",
                                 W, H, hp->image_size, hp->image_size);
        }
        for (int i = 0; i < n; i++) ids[i] = i;
    } else {
        vlm_siglip_position_ids(nps, pm, gh, gw, ids);
    }
    vlm_conv2d_patch(pool, x, img, C, H, W, p, s->patch_w, s->patch_b, cols);
    float *row = xb;
    for (int i = 0; i < n; i++) {
        vlm_tensor_row_f32(s->pos_emb, ids[i], row);
        vlm_add(x + (size_t)i * D, row, D);
    }
    float scale = 1.0f / sqrtf((float)(d / hp->n_head));
    for (int l = 0; l < hp->n_layer; l++) {
        const struct vlm_siglip_layer *L = &s->layers[l];
        vlm_layernorm(xb, x, L->ln1_w, L->ln1_b, n, d, hp->ln_eps);
        vlm_matmul(pool, xb, n, L->wq, L->bq, q);
        vlm_matmul(pool, xb, n, L->wk, L->bk, k);
        vlm_matmul(pool, xb, n, L->wv, L->bv, v);
        vlm_attention(pool, att, q, n, k, v, n, hp->n_head, hp->n_head, d / hp->n_head, D, scale, 0, 0,
                      all_real ? NULL : pm);
        vlm_matmul(pool, att, n, L->wo, L->bo, xb);
        vlm_add(x, xb, N * D);
        vlm_layernorm(xb, x, L->ln2_w, L->ln2_b, n, d, hp->ln_eps);
        vlm_matmul(pool, xb, n, L->fc1, L->b1, h);
        if (hp->gelu_tanh) vlm_gelu_tanh(h, N * (size_t)ff);
        else vlm_gelu_erf(h, N * (size_t)ff);
        vlm_matmul(pool, h, n, L->fc2, L->b2, xb);
        vlm_add(x, xb, N * D);
    }
    vlm_layernorm(out, x, s->post_ln_w, s->post_ln_b, n, d, hp->ln_eps);
    vlm_free(buf);
    vlm_free(pm);
    vlm_free(ids);
    return VLM_OK;
}
