/* mllama_vision.c — MllamaVisionModel + multi_modal_projector in f32, as transformers computes
 * them: every image runs as max_num_tiles tiles of n_pad tokens (class + patches + zero rows up
 * to a multiple of 8) in one sequence, where a padded token (padding row or padded tile) sees
 * only real tokens while a real token sees every token (transformers' aspect-ratio mask hides a
 * key from a query only when both are padding). */
#include "models/mllama_vision.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "formats/config.h"
#include "formats/weights.h"
#include "models/llama.h"
#include "util/alloc.h"
#include "util/error.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) return rc; } while (0)

static int read_int_list(const struct vlm_config *c, json_t *v, const char *key, int *out, int max, int *n,
                         struct vlm_error *err) {
    json_t *a = json_object_get(v, key);
    if (!a || json_is_null(a)) return VLM_OK;   /* keep the defaults */
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > (size_t)max)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: vision_config.%s must be a list of 1..%d integers", c->path, key, max);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *e = json_array_get(a, i);
        if (!json_is_integer(e) || json_integer_value(e) < 0 || json_integer_value(e) > 1024)
            return vlm_error_set(err, VLM_E_FORMAT, "%s: vision_config.%s[%zu] is not an integer in 0..1024", c->path, key, i);
        out[i] = (int)json_integer_value(e);
    }
    *n = (int)json_array_size(a);
    return VLM_OK;
}

static int read_ratios(const struct vlm_config *c, json_t *v, struct vlm_mllama_vision_hparams *hp,
                       struct vlm_error *err) {
    json_t *a = json_object_get(v, "supported_aspect_ratios");
    if (!a || json_is_null(a)) {   /* transformers' default for max_num_tiles 4 */
        static const int def[8][2] = {{1, 1}, {1, 2}, {1, 3}, {1, 4}, {2, 1}, {2, 2}, {3, 1}, {4, 1}};
        if (hp->max_tiles != 4)
            return vlm_error_set(err, VLM_E_FORMAT, "%s: vision_config.supported_aspect_ratios is needed when max_num_tiles is not 4", c->path);
        memcpy(hp->ratios, def, sizeof def);
        hp->n_ratios = 8;
        return VLM_OK;
    }
    if (!json_is_array(a) || json_array_size(a) == 0 || json_array_size(a) > VLM_MLLAMA_MAX_RATIOS)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: vision_config.supported_aspect_ratios must be a list of 1..%d pairs", c->path, VLM_MLLAMA_MAX_RATIOS);
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *p = json_array_get(a, i), *x = json_array_get(p, 0), *y = json_array_get(p, 1);
        if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_integer(x) || !json_is_integer(y) ||
            json_integer_value(x) < 1 || json_integer_value(y) < 1 ||
            json_integer_value(x) * json_integer_value(y) > hp->max_tiles)
            return vlm_error_set(err, VLM_E_FORMAT, "%s: vision_config.supported_aspect_ratios[%zu] is not a pair of tile counts within max_num_tiles %d",
                                 c->path, i, hp->max_tiles);
        hp->ratios[i][0] = (int)json_integer_value(x);
        hp->ratios[i][1] = (int)json_integer_value(y);
    }
    hp->n_ratios = (int)json_array_size(a);
    return VLM_OK;
}

int vlm_mllama_vision_hparams_read(const struct vlm_config *c, json_t *v, struct vlm_mllama_vision_hparams *hp,
                                   struct vlm_error *err) {
    int rc;
    long long d, ff, nl, ng, nh, ch, is, ps, mt, od;
    double eps;
    const char *act;
    memset(hp, 0, sizeof *hp);
    CHK(vlm_config_int(c, v, "hidden_size", 1280, 1, 1 << 15, &d, err));
    CHK(vlm_config_int(c, v, "intermediate_size", 5120, 1, 1 << 17, &ff, err));
    CHK(vlm_config_int(c, v, "num_hidden_layers", 32, 1, 256, &nl, err));
    CHK(vlm_config_int(c, v, "num_global_layers", 8, 0, 256, &ng, err));
    CHK(vlm_config_int(c, v, "attention_heads", 16, 1, 256, &nh, err));
    CHK(vlm_config_int(c, v, "num_channels", 3, 1, 4, &ch, err));
    CHK(vlm_config_int(c, v, "image_size", 448, 1, 4096, &is, err));
    CHK(vlm_config_int(c, v, "patch_size", 14, 1, 1024, &ps, err));
    CHK(vlm_config_int(c, v, "max_num_tiles", 4, 1, 64, &mt, err));
    CHK(vlm_config_int(c, v, "vision_output_dim", 7680, 1, 1 << 18, &od, err));
    CHK(vlm_config_num(c, v, "norm_eps", 1e-5, 0, 1, &eps, err));
    CHK(vlm_config_str(c, v, "hidden_act", "gelu", &act, err));
    if (strcmp(act, "gelu")) return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: vision hidden_act \"%s\" is not supported (gelu)", c->path, act);
    if (d % nh || d / nh > 512) return vlm_error_set(err, VLM_E_FORMAT, "%s: vision hidden_size %lld not divisible into %lld heads of at most 512", c->path, d, nh);
    if (is % ps || is / ps > 256) return vlm_error_set(err, VLM_E_FORMAT, "%s: vision image_size %lld is not a multiple of patch_size %lld (at most 256 per side)", c->path, is, ps);
    hp->d_model = (int)d; hp->d_ff = (int)ff; hp->n_layer = (int)nl; hp->n_global = (int)ng; hp->n_head = (int)nh;
    hp->n_channels = (int)ch; hp->image_size = (int)is; hp->patch_size = (int)ps; hp->max_tiles = (int)mt;
    hp->out_dim = (int)od; hp->norm_eps = (float)eps;
    static const int def_inter[5] = {3, 7, 15, 23, 30};
    memcpy(hp->inter, def_inter, sizeof def_inter);
    hp->n_inter = 5;
    CHK(read_int_list(c, v, "intermediate_layers_indices", hp->inter, VLM_MLLAMA_MAX_INTER, &hp->n_inter, err));
    for (int i = 0; i < hp->n_inter; i++)
        if (hp->inter[i] >= hp->n_layer)
            return vlm_error_set(err, VLM_E_FORMAT, "%s: vision_config.intermediate_layers_indices[%d] = %d is past num_hidden_layers %d",
                                 c->path, i, hp->inter[i], hp->n_layer);
    if ((long long)hp->d_model * (1 + hp->n_inter) != od)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: vision_output_dim %lld is not hidden_size %d x (1 + %d intermediate layers)",
                             c->path, od, hp->d_model, hp->n_inter);
    CHK(read_ratios(c, v, hp, err));
    int side = hp->image_size / hp->patch_size;
    hp->n_patch = side * side + 1;
    hp->n_pad = (hp->n_patch + 7) / 8 * 8;
    return VLM_OK;
}

/* tanh of a one-element gate tensor. */
static int gate(const struct vlm_weights *w, const char *name, float *out, struct vlm_error *err) {
    float g, *cur = &g;
    const float *p;
    int rc = vlm_weights_vec_f32(w, name, 1, &cur, &p, err);
    if (rc == VLM_OK) *out = tanhf(g);
    return rc;
}

static int load_layer(struct vlm_mllama_vision *v, const struct vlm_weights *w, const char *base, int gated,
                      struct vlm_mllama_vision_layer *L, float **cur, struct vlm_error *err) {
    int d = v->hp.d_model, ff = v->hp.d_ff, rc;
    char name[320];
#define NAME(s) (snprintf(name, sizeof name, "%s%s", base, s), name)
    CHK(vlm_weights_vec_f32(w, NAME("input_layernorm.weight"), d, cur, &L->ln1_w, err));
    CHK(vlm_weights_vec_f32(w, NAME("input_layernorm.bias"), d, cur, &L->ln1_b, err));
    CHK(vlm_weights_vec_f32(w, NAME("post_attention_layernorm.weight"), d, cur, &L->ln2_w, err));
    CHK(vlm_weights_vec_f32(w, NAME("post_attention_layernorm.bias"), d, cur, &L->ln2_b, err));
    CHK(vlm_weights_mat(w, NAME("self_attn.q_proj.weight"), d, d, &L->wq, err));
    CHK(vlm_weights_mat(w, NAME("self_attn.k_proj.weight"), d, d, &L->wk, err));
    CHK(vlm_weights_mat(w, NAME("self_attn.v_proj.weight"), d, d, &L->wv, err));
    CHK(vlm_weights_mat(w, NAME("self_attn.o_proj.weight"), d, d, &L->wo, err));
    CHK(vlm_weights_mat(w, NAME("mlp.fc1.weight"), ff, d, &L->fc1, err));
    CHK(vlm_weights_mat(w, NAME("mlp.fc2.weight"), d, ff, &L->fc2, err));
    CHK(vlm_weights_vec_f32(w, NAME("mlp.fc1.bias"), ff, cur, &L->b1, err));
    CHK(vlm_weights_vec_f32(w, NAME("mlp.fc2.bias"), d, cur, &L->b2, err));
    L->gate_attn = L->gate_ffn = 1.0f;
    if (gated) {
        CHK(gate(w, NAME("gate_attn"), &L->gate_attn, err));
        CHK(gate(w, NAME("gate_ffn"), &L->gate_ffn, err));
    }
#undef NAME
    return VLM_OK;
}

int vlm_mllama_vision_load(struct vlm_mllama_vision *v, const struct vlm_mllama_vision_hparams *hp,
                           const struct vlm_weights *w, const char *prefix, const char *proj_prefix,
                           int d_text, struct vlm_error *err) {
    memset(v, 0, sizeof *v);
    v->hp = *hp;
    v->d_text = d_text;
    int d = hp->d_model, ff = hp->d_ff, p = hp->patch_size, nl = hp->n_layer + hp->n_global, rc;
    size_t n_owned = (size_t)d * (5 + (size_t)hp->n_patch) + (size_t)d_text + (size_t)nl * (size_t)(6 * d + ff);
    v->owned = vlm_malloc(n_owned * sizeof(float));
    v->layers = vlm_calloc((size_t)nl, sizeof *v->layers);
    if (!v->owned || !v->layers) return vlm_error_set(err, VLM_E_NOMEM, "out of memory loading the vision tower");
    float *cur = v->owned;
    char name[320];
#define NAME(...) (snprintf(name, sizeof name, __VA_ARGS__), name)
    {
        int64_t ne[4] = {d, hp->n_channels, p, p};
        CHK(vlm_weights_require(w, NAME("%spatch_embedding.weight", prefix), 4, ne, &v->patch_w, err));
    }
    CHK(vlm_weights_vec_f32(w, NAME("%sclass_embedding", prefix), d, &cur, &v->class_emb, err));
    {
        const struct vlm_tensor *t;
        CHK(vlm_weights_mat(w, NAME("%sgated_positional_embedding.embedding", prefix), hp->n_patch, d, &t, err));
        vlm_tensor_to_f32(t, cur, (int64_t)hp->n_patch * d);
        v->pos_emb = cur;
        cur += (size_t)hp->n_patch * d;
    }
    CHK(gate(w, NAME("%sgated_positional_embedding.gate", prefix), &v->pos_gate, err));
    CHK(vlm_weights_mat(w, NAME("%sgated_positional_embedding.tile_embedding.weight", prefix), hp->n_ratios + 1,
            (int64_t)hp->max_tiles * hp->n_patch * d, &v->tile_pos, err));
    CHK(vlm_weights_mat(w, NAME("%spre_tile_positional_embedding.embedding.weight", prefix), hp->n_ratios + 1,
            (int64_t)hp->max_tiles * d, &v->pre_tile, err));
    CHK(gate(w, NAME("%spre_tile_positional_embedding.gate", prefix), &v->pre_gate, err));
    CHK(vlm_weights_mat(w, NAME("%spost_tile_positional_embedding.embedding.weight", prefix), hp->n_ratios + 1,
            (int64_t)hp->max_tiles * d, &v->post_tile, err));
    CHK(gate(w, NAME("%spost_tile_positional_embedding.gate", prefix), &v->post_gate, err));
    CHK(vlm_weights_vec_f32(w, NAME("%slayernorm_pre.weight", prefix), d, &cur, &v->ln_pre_w, err));
    CHK(vlm_weights_vec_f32(w, NAME("%slayernorm_pre.bias", prefix), d, &cur, &v->ln_pre_b, err));
    CHK(vlm_weights_vec_f32(w, NAME("%slayernorm_post.weight", prefix), d, &cur, &v->ln_post_w, err));
    CHK(vlm_weights_vec_f32(w, NAME("%slayernorm_post.bias", prefix), d, &cur, &v->ln_post_b, err));
    for (int i = 0; i < nl; i++) {
        char base[256];
        int global = i >= hp->n_layer;
        snprintf(base, sizeof base, "%s%s.layers.%d.", prefix, global ? "global_transformer" : "transformer",
                 global ? i - hp->n_layer : i);
        CHK(load_layer(v, w, base, global, &v->layers[i], &cur, err));
    }
    CHK(vlm_weights_mat(w, NAME("%sweight", proj_prefix), d_text, hp->out_dim, &v->proj_w, err));
    CHK(vlm_weights_vec_f32(w, NAME("%sbias", proj_prefix), d_text, &cur, &v->proj_b, err));
#undef NAME
    return VLM_OK;
}

void vlm_mllama_vision_free(struct vlm_mllama_vision *v) {
    if (!v) return;
    vlm_free(v->owned);
    vlm_free(v->layers);
    memset(v, 0, sizeof *v);
}

int vlm_mllama_vision_rows(const struct vlm_mllama_vision *v) { return v->hp.max_tiles * v->hp.n_patch; }

struct venc {
    const struct vlm_mllama_vision *v;
    struct vlm_pool *pool;
    int T, n_valid, L, np;        /* tiles, valid tiles, tokens per tile (padded), real tokens per tile */
    float *x, *xb, *q, *k, *v_, *att, *h;
    uint8_t *real;                /* (T*L) 1 = a real token (valid tile, not a padding row) */
};

/* Attention of all T*L tokens: real queries see every key, padded queries only real keys. */
static void attend_all(const struct venc *e) {
    const struct vlm_mllama_vision_hparams *hp = &e->v->hp;
    int d = hp->d_model, hd = d / hp->n_head, n = e->T * e->L;
    float scale = 1.0f / sqrtf((float)hd);
    for (int t = 0; t < e->T; t++) {
        size_t o = (size_t)t * e->L * d;
        int nr = t < e->n_valid ? e->np : 0;   /* real queries of this tile, then padded ones */
        if (nr)
            vlm_attention(e->pool, e->att + o, e->q + o, nr, e->k, e->v_, n, hp->n_head, hp->n_head, hd, (size_t)d,
                          scale, 0, 0, NULL);
        if (e->L - nr)
            vlm_attention(e->pool, e->att + o + (size_t)nr * d, e->q + o + (size_t)nr * d, e->L - nr, e->k, e->v_, n,
                          hp->n_head, hp->n_head, hd, (size_t)d, scale, 0, 0, e->real);
    }
}

static void encoder_layer(const struct venc *e, const struct vlm_mllama_vision_layer *L) {
    const struct vlm_mllama_vision_hparams *hp = &e->v->hp;
    int d = hp->d_model, n = e->T * e->L;
    size_t N = (size_t)n * d;
    vlm_layernorm(e->xb, e->x, L->ln1_w, L->ln1_b, n, d, hp->norm_eps);
    vlm_matmul(e->pool, e->xb, n, L->wq, NULL, e->q);
    vlm_matmul(e->pool, e->xb, n, L->wk, NULL, e->k);
    vlm_matmul(e->pool, e->xb, n, L->wv, NULL, e->v_);
    attend_all(e);
    vlm_matmul(e->pool, e->att, n, L->wo, NULL, e->xb);
    if (L->gate_attn != 1.0f)
        for (size_t i = 0; i < N; i++) e->xb[i] *= L->gate_attn;
    vlm_add(e->x, e->xb, N);
    vlm_layernorm(e->xb, e->x, L->ln2_w, L->ln2_b, n, d, hp->norm_eps);
    vlm_matmul(e->pool, e->xb, n, L->fc1, L->b1, e->h);
    vlm_gelu_erf(e->h, (size_t)n * hp->d_ff);
    vlm_matmul(e->pool, e->h, n, L->fc2, L->b2, e->xb);
    if (L->gate_ffn != 1.0f)
        for (size_t i = 0; i < N; i++) e->xb[i] *= L->gate_ffn;
    vlm_add(e->x, e->xb, N);
}

/* Adds tanh(gate) * emb[ar] (T, d) to every row r0..r1 of each tile. */
static void add_tile_emb(const struct venc *e, const struct vlm_tensor *t, int ar, float g, int r0, int r1) {
    int d = e->v->hp.d_model;
    float *row = e->xb;   /* (T*d) scratch */
    vlm_tensor_row_f32(t, ar, row);
    for (int tile = 0; tile < e->T; tile++)
        for (int r = r0; r < r1; r++) {
            float *x = e->x + ((size_t)tile * e->L + r) * d;
            const float *em = row + (size_t)tile * d;
            for (int j = 0; j < d; j++) x[j] += em[j] * g;
        }
}

/* Patch embedding, tile/position embeddings, layernorm_pre and the zero padding rows. */
static int embed(const struct venc *e, const float *pixels, int ar, struct vlm_error *err) {
    const struct vlm_mllama_vision *v = e->v;
    const struct vlm_mllama_vision_hparams *hp = &v->hp;
    int d = hp->d_model, C = hp->n_channels, S = hp->image_size, p = hp->patch_size, npat = e->np - 1;
    size_t tile_px = (size_t)C * S * S;
    memset(e->x, 0, sizeof(float) * (size_t)e->T * e->L * d);
    for (int t = 0; t < e->n_valid; t++)   /* padded tiles are zero pixels: zero embeddings (no conv bias) */
        vlm_conv2d_patch(e->pool, e->x + ((size_t)t * e->L + 1) * d, pixels + (size_t)t * tile_px, C, S, S, p,
                         v->patch_w, NULL, e->h);
    add_tile_emb(e, v->pre_tile, ar, v->pre_gate, 1, 1 + npat);
    float *tp = vlm_malloc(sizeof(float) * (size_t)e->T * e->np * d);
    if (!tp) return vlm_error_set(err, VLM_E_NOMEM, "out of memory for the tile position embedding");
    vlm_tensor_row_f32(v->tile_pos, ar, tp);
    float g = v->pos_gate, one_m = 1.0f - g;
    for (int t = 0; t < e->T; t++) {
        float *x0 = e->x + (size_t)t * e->L * d;
        memcpy(x0, v->class_emb, sizeof(float) * d);
        for (int r = 0; r < e->np; r++) {
            float *x = x0 + (size_t)r * d;
            const float *pe = v->pos_emb + (size_t)r * d, *te = tp + ((size_t)t * e->np + r) * d;
            for (int j = 0; j < d; j++) x[j] = (x[j] + one_m * pe[j]) + g * te[j];
        }
        vlm_layernorm(x0, x0, v->ln_pre_w, v->ln_pre_b, e->np, d, 1e-5f);
    }
    vlm_free(tp);
    return VLM_OK;
}

int vlm_mllama_vision_encode(const struct vlm_mllama_vision *v, struct vlm_pool *pool, const float *pixels,
                             int n_tiles, int ar, float *out, struct vlm_error *err) {
    const struct vlm_mllama_vision_hparams *hp = &v->hp;
    if (ar < 1 || ar > hp->n_ratios || hp->ratios[ar - 1][0] * hp->ratios[ar - 1][1] != n_tiles)
        return vlm_error_set(err, VLM_E_INVALID, "image of %d tiles with aspect ratio id %d does not fit the model's %d supported aspect ratios",
                             n_tiles, ar, hp->n_ratios);
    struct venc e = {.v = v, .pool = pool, .T = hp->max_tiles, .n_valid = n_tiles, .L = hp->n_pad, .np = hp->n_patch};
    int d = hp->d_model, n = e.T * e.L, ni = hp->n_inter, S = hp->image_size, p = hp->patch_size;
    size_t N = (size_t)n * d, cols = (size_t)(S / p) * (S / p) * hp->n_channels * p * p;
    size_t hsz = (size_t)n * hp->d_ff > cols ? (size_t)n * hp->d_ff : cols;
    float *buf = vlm_malloc(sizeof(float) * (6 * N + hsz + (size_t)ni * N));
    uint8_t *real = vlm_malloc((size_t)n);
    if (!buf || !real) {
        vlm_free(buf); vlm_free(real);
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory encoding an image (%d tokens)", n);
    }
    e.x = buf; e.xb = e.x + N; e.q = e.xb + N; e.k = e.q + N; e.v_ = e.k + N; e.att = e.v_ + N; e.h = e.att + N;
    float *inter = e.h + hsz;   /* (ni, n, d) */
    e.real = real;
    for (int i = 0; i < n; i++) real[i] = (i / e.L) < n_tiles && (i % e.L) < e.np;
    int rc = embed(&e, pixels, ar, err);
    for (int l = 0; l < hp->n_layer && rc == VLM_OK; l++) {
        encoder_layer(&e, &v->layers[l]);
        for (int k = 0; k < ni; k++)
            if (hp->inter[k] == l) memcpy(inter + (size_t)k * N, e.x, sizeof(float) * N);
    }
    if (rc == VLM_OK) {
        vlm_layernorm(e.x, e.x, v->ln_post_w, v->ln_post_b, n, d, 1e-5f);
        add_tile_emb(&e, v->post_tile, ar, v->post_gate, 0, e.L);
        for (int l = 0; l < hp->n_global; l++) encoder_layer(&e, &v->layers[hp->n_layer + l]);
        /* rows (tile, real token): [final (d), then intermediate states interleaved per element
         * (torch.stack(..., dim=-1) flattened)] -> projector */
        int od = hp->out_dim;
        float *cat = vlm_malloc(sizeof(float) * (size_t)e.np * od);
        if (!cat) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory encoding an image");
        for (int t = 0; t < e.T && rc == VLM_OK; t++) {
            for (int r = 0; r < e.np; r++) {
                size_t src = ((size_t)t * e.L + r) * d;
                float *c = cat + (size_t)r * od;
                memcpy(c, e.x + src, sizeof(float) * d);
                for (int j = 0; j < d; j++)
                    for (int k = 0; k < ni; k++) c[d + j * ni + k] = inter[(size_t)k * N + src + j];
            }
            vlm_matmul(pool, cat, e.np, v->proj_w, v->proj_b, out + (size_t)t * e.np * v->d_text);
        }
        vlm_free(cat);
    }
    vlm_free(buf);
    vlm_free(real);
    return rc;
}
