/* llava.c — the LLaVA family table (LlavaForConditionalGeneration): reading LLaVA's config keys,
 * binding every tensor under each naming checkpoints use (see struct naming), image encoding
 * (CLIP hidden states -> linear -> activation -> linear), and the Llama decoder step. */
#include "models/llava.h"

#include <stdio.h>
#include <string.h>

#include "models/model.h"
#include "models/processor.h"
#include "util/alloc.h"
#include "util/error.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) goto fail; } while (0)

/* vision_feature_layer: an int or a list of ints, Python indices into the n_layer + 1 hidden
 * states (negative ones count from the end). */
static int read_feature_layers(const struct vlm_config *c, int n_layer, struct vlm_llava *f, struct vlm_error *err) {
    json_t *v = json_object_get(c->root, "vision_feature_layer");
    json_t *one = json_array();
    if (!one) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    if (!v || json_is_null(v)) json_array_append_new(one, json_integer(-2));
    else if (json_is_integer(v)) json_array_append(one, v);
    else if (json_is_array(v)) json_array_extend(one, v);
    size_t n = json_array_size(one);
    int rc = VLM_OK;
    if (n == 0 || n > VLM_LLAVA_MAX_FEATURE_LAYERS)
        rc = vlm_error_set(err, VLM_E_FORMAT, "%s: vision_feature_layer must be an integer or a list of 1 to %d integers",
                           c->path, VLM_LLAVA_MAX_FEATURE_LAYERS);
    for (size_t i = 0; i < n && rc == VLM_OK; i++) {
        json_t *e = json_array_get(one, i);
        long long k = json_is_integer(e) ? json_integer_value(e) : (long long)1 << 40;
        long long idx = k < 0 ? k + n_layer + 1 : k;
        if (idx < 0 || idx > n_layer)
            rc = vlm_error_set(err, VLM_E_FORMAT, "%s: vision_feature_layer entry %zu is not a hidden state of a %d-layer vision tower",
                               c->path, i, n_layer);
        else f->states[f->n_states++] = (int)idx;
    }
    json_decref(one);
    return rc;
}

static int read_options(const struct vlm_config *c, struct vlm_llava *f, struct vlm_error *err) {
    const char *strategy, *act;
    int rc;
    if ((rc = vlm_config_str(c, c->root, "vision_feature_select_strategy", "default", &strategy, err)) != VLM_OK) return rc;
    if (strcmp(strategy, "default") && strcmp(strategy, "full"))
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: vision_feature_select_strategy \"%s\" (default or full)", c->path, strategy);
    f->drop_cls = !strcmp(strategy, "default");
    if ((rc = vlm_config_str(c, c->root, "projector_hidden_act", "gelu", &act, err)) != VLM_OK) return rc;
    if (vlm_clip_act_parse(act, &f->proj_act) != 0)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: projector_hidden_act \"%s\" is not supported", c->path, act);
    return VLM_OK;
}

/* The text config must describe a Llama decoder (LLaVA 1.5's Vicuna; the default when absent). */
static int check_text_type(const struct vlm_config *c, json_t *tc, struct vlm_error *err) {
    const char *mt;
    int rc = vlm_config_str(c, tc, "model_type", "llama", &mt, err);
    if (rc == VLM_OK && strcmp(mt, "llama"))
        rc = vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: text_config.model_type \"%s\" (this family runs a llama decoder)", c->path, mt);
    return rc;
}

/* Projector weights "<pre>linear_{1,2}.{weight,bias}". */
static int load_projector(const struct vlm_weights *w, const char *pre, int d_in, int d, int bias,
                          struct vlm_llava *f, struct vlm_error *err) {
    char name[160];
    int64_t ne1[2] = {d, d_in}, ne2[2] = {d, d}, nb[1] = {d};
    const struct vlm_tensor *t;
    int rc;
    snprintf(name, sizeof name, "%slinear_1.weight", pre);
    if ((rc = vlm_weights_require(w, name, 2, ne1, &f->w1, err)) != VLM_OK) return rc;
    snprintf(name, sizeof name, "%slinear_2.weight", pre);
    if ((rc = vlm_weights_require(w, name, 2, ne2, &f->w2, err)) != VLM_OK) return rc;
    if (!bias) return VLM_OK;
    snprintf(name, sizeof name, "%slinear_1.bias", pre);
    if ((rc = vlm_weights_require(w, name, 1, nb, &t, err)) != VLM_OK) return rc;
    vlm_tensor_to_f32(t, f->owned, d);
    snprintf(name, sizeof name, "%slinear_2.bias", pre);
    if ((rc = vlm_weights_require(w, name, 1, nb, &t, err)) != VLM_OK) return rc;
    vlm_tensor_to_f32(t, f->owned + d, d);
    f->b1 = f->owned;
    f->b2 = f->owned + d;
    return VLM_OK;
}

/* Tensor name prefixes. Published llava-hf checkpoints: "language_model.model.",
 * "language_model.lm_head.weight", "vision_tower.vision_model.", "multi_modal_projector.".
 * transformers 5 names its modules "model.language_model.", "lm_head.weight",
 * "model.vision_tower.", "model.multi_modal_projector." (a state_dict saved as is), and its
 * save_pretrained writes the published names but drops "vision_model." from the vision tower.
 * Each part is found by its first tensor; when none is there the published name is used, so
 * the error names the tensor a published checkpoint would hold. */
struct naming { const char *vision, *text, *head, *proj; };

static const char *first_present(const struct vlm_weights *w, const char *const *pre, int n, const char *suffix) {
    char name[160];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%s", pre[i], suffix);
        if (vlm_weights_get(w, name)) return pre[i];
    }
    return pre[0];
}

static struct naming find_naming(const struct vlm_weights *w) {
    static const char *const vis[] = {"vision_tower.vision_model.", "vision_tower.", "model.vision_tower.",
                                      "model.vision_tower.vision_model."};
    static const char *const txt[] = {"language_model.model.", "model.language_model."};
    static const char *const proj[] = {"multi_modal_projector.", "model.multi_modal_projector."};
    struct naming n;
    n.vision = first_present(w, vis, 4, "embeddings.class_embedding");
    n.text = first_present(w, txt, 2, "embed_tokens.weight");
    n.head = n.text == txt[1] || vlm_weights_get(w, "lm_head.weight") ? "lm_head.weight" : "language_model.lm_head.weight";
    n.proj = first_present(w, proj, 2, "linear_1.weight");
    return n;
}

/* LLaVA-NeXT's config: image_grid_pinpoints (LlavaNextConfig's default when absent), and only
 * the "default" strategy (transformers cannot lay out class tokens in the tile grid). */
static int read_next(const struct vlm_config *c, int image_size, struct vlm_llava *f, struct vlm_error *err) {
    static const int dflt[5][2] = {{336, 672}, {672, 336}, {672, 672}, {1008, 336}, {336, 1008}};
    json_t *g = json_object_get(c->root, "image_grid_pinpoints"), *e;
    size_t i;
    if (!f->drop_cls)
        return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: LLaVA-NeXT needs vision_feature_select_strategy \"default\"", c->path);
    if (!g || json_is_null(g)) {
        memcpy(f->pins, dflt, sizeof dflt);
        f->n_pins = 5;
    } else if (!json_is_array(g) || json_array_size(g) == 0 || json_array_size(g) > VLM_ANYRES_MAX_PINPOINTS) {
        return vlm_error_set(err, VLM_E_FORMAT, "%s: image_grid_pinpoints must list 1 to %d [height, width] pairs", c->path,
                             VLM_ANYRES_MAX_PINPOINTS);
    } else {
        json_array_foreach(g, i, e) {
            json_t *h = json_array_get(e, 0), *w = json_array_get(e, 1);
            long long hv = json_is_integer(h) ? json_integer_value(h) : -1, wv = json_is_integer(w) ? json_integer_value(w) : -1;
            if (json_array_size(e) != 2 || hv < image_size || wv < image_size || hv > 8192 || wv > 8192 ||
                hv % image_size || wv % image_size || (hv / image_size) * (wv / image_size) > VLM_ANYRES_MAX_TILES)
                return vlm_error_set(err, VLM_E_FORMAT, "%s: image_grid_pinpoints[%zu] is not a multiple of the %d-pixel vision image",
                                     c->path, i, image_size);
            f->pins[i][0] = (int)hv;
            f->pins[i][1] = (int)wv;
        }
        f->n_pins = (int)json_array_size(g);
    }
    return VLM_OK;
}

static int load_newline(const struct vlm_weights *w, int d, struct vlm_llava *f, float *dst, struct vlm_error *err) {
    const char *name = vlm_weights_get(w, "model.image_newline") ? "model.image_newline" : "image_newline";
    const struct vlm_tensor *t;
    int64_t ne[1] = {d};
    int rc = vlm_weights_require(w, name, 1, ne, &t, err);
    if (rc != VLM_OK) return rc;
    vlm_tensor_to_f32(t, dst, d);
    f->newline = dst;
    return VLM_OK;
}

static void llava_free(struct vlm_model *m) {
    struct vlm_llava *f = m->impl;
    if (!f) return;
    vlm_clip_vision_free(&f->vision);
    vlm_llama_free(&f->text);
    vlm_free(f->owned);
    vlm_free(f);
    m->impl = NULL;
}

static int llava_load(struct vlm_model *m, struct vlm_error *err) {
    struct vlm_llava *f = vlm_calloc(1, sizeof *f);
    if (!f) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    m->impl = f;
    const struct vlm_config *c = &m->cfg;
    json_t *vc, *tc;
    struct vlm_clip_vision_hparams vh;
    struct vlm_llama_hparams th;
    long long itok;
    int tie_top, bias, rc;
    CHK(vlm_config_sub(c, "vision_config", &vc, err));
    CHK(vlm_config_sub(c, "text_config", &tc, err));
    if (!vc) { rc = vlm_error_set(err, VLM_E_FORMAT, "%s: no vision_config", c->path); goto fail; }
    CHK(check_text_type(c, tc, err));
    CHK(vlm_clip_vision_hparams_read(c, vc, &vh, err));
    CHK(vlm_llama_hparams_read(c, tc, 1e-6f, &th, err));   /* LlamaConfig's rms_norm_eps default */
    CHK(vlm_config_int(c, c->root, "image_token_index", -1, -1, th.n_vocab - 1, &itok, err));
    if (itok < 0) CHK(vlm_config_int(c, c->root, "image_token_id", -1, -1, th.n_vocab - 1, &itok, err));
    if (itok < 0) itok = 32000;   /* LlavaConfig's default */
    if (itok >= th.n_vocab) {
        rc = vlm_error_set(err, VLM_E_FORMAT, "%s: no image_token_index, and the default 32000 is past the vocabulary", c->path);
        goto fail;
    }
    CHK(vlm_config_bool(c, c->root, "tie_word_embeddings", 0, &tie_top, err));
    CHK(vlm_config_bool(c, c->root, "multimodal_projector_bias", 1, &bias, err));
    th.tied = th.tied || tie_top;   /* LlavaConfig takes either */
    CHK(read_feature_layers(c, vh.n_layer, f, err));
    CHK(read_options(c, f, err));
    f->next = !strcmp(c->arch, "LlavaNextForConditionalGeneration");
    if (f->next) CHK(read_next(c, vh.image_size, f, err));
    if (!(f->owned = vlm_malloc(sizeof(float) * 3 * (size_t)th.d_model))) {   /* projector biases, newline */
        rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        goto fail;
    }
    int n_used = 0;
    for (int i = 0; i < f->n_states; i++) if (f->states[i] > n_used) n_used = f->states[i];
    struct naming nm = find_naming(&m->weights);
    CHK(vlm_clip_vision_load(&f->vision, &vh, &m->weights, nm.vision, n_used, err));
    CHK(vlm_llama_load(&f->text, &th, &m->weights, nm.text, nm.head, err));
    CHK(load_projector(&m->weights, nm.proj, f->n_states * vh.d_model, th.d_model, bias, f, err));
    if (f->next) CHK(load_newline(&m->weights, th.d_model, f, f->owned + 2 * th.d_model, err));
    int nps = vh.image_size / vh.patch_size;
    f->tokens_per_image = nps * nps + (f->drop_cls ? 0 : 1);
    m->info.n_vocab = th.n_vocab;
    m->info.d_model = th.d_model;
    m->info.n_layer = th.n_layer;
    m->info.kv_dim = th.n_head_kv * th.d_head;
    m->info.n_ctx_train = th.max_pos;
    m->info.image_token_id = (int32_t)itok;
    return VLM_OK;
fail:
    llava_free(m);
    return rc;
}

/* One tile through the tower and the projector: embd (tokens_per_image, d). */
static int encode_tile(const struct vlm_llava *f, struct vlm_pool *pool, const float *pixels, int side, int d,
                       float *embd, struct vlm_error *err) {
    int n = f->tokens_per_image;
    size_t dv = (size_t)f->n_states * f->vision.hp.d_model;
    float *feat = vlm_malloc(sizeof(float) * (size_t)n * (dv + (size_t)d));
    if (!feat) return vlm_error_set(err, VLM_E_NOMEM, "out of memory encoding an image");
    float *hid = feat + (size_t)n * dv;
    int rc = vlm_clip_vision_forward(&f->vision, pool, pixels, side, side, f->states, f->n_states, f->drop_cls, feat, err);
    if (rc == VLM_OK) {
        vlm_matmul(pool, feat, n, f->w1, f->b1, hid);
        vlm_clip_act_apply(f->proj_act, hid, (size_t)n * d);
        vlm_matmul(pool, hid, n, f->w2, f->b2, embd);
    }
    vlm_free(feat);
    return rc;
}

/* LLaVA-NeXT's layout of one image: the tile grid (rows x cols of the best pinpoint) and the
 * rows/columns of its patch grid that survive unpadding. */
struct next_layout { int rows, cols, y0, h, x0, w; };

static int next_layout(const struct vlm_llava *f, const struct vlm_image_input *in, struct next_layout *L) {
    int is = f->vision.hp.image_size, side = is / f->vision.hp.patch_size, bh, bw;
    if (in->orig_height <= 0 || in->orig_width <= 0) return -1;
    vlm_anyres_best(in->orig_height, in->orig_width, f->pins, f->n_pins, &bh, &bw);
    L->rows = bh / is;
    L->cols = bw / is;
    vlm_anyres_unpad(in->orig_height, in->orig_width, L->rows * side, L->cols * side, &L->y0, &L->h, &L->x0, &L->w);
    return 0;
}

/* pack_image_features: the whole-image tile's rows, then for each kept row of the tile grid its
 * kept columns followed by image_newline. tiles holds (n_tiles, side*side, d) projected rows. */
static void next_pack(const struct vlm_llava *f, const struct next_layout *L, const float *tiles, int d, float *embd) {
    int side = f->vision.hp.image_size / f->vision.hp.patch_size, per = side * side;
    size_t D = (size_t)d;
    memcpy(embd, tiles, sizeof(float) * (size_t)per * D);
    float *o = embd + (size_t)per * D;
    for (int y = L->y0; y < L->y0 + L->h; y++) {
        for (int x = L->x0; x < L->x0 + L->w; x++) {
            int tile = 1 + (y / side) * L->cols + x / side, row = (y % side) * side + x % side;
            memcpy(o, tiles + ((size_t)tile * per + (size_t)row) * D, sizeof(float) * D);
            o += D;
        }
        memcpy(o, f->newline, sizeof(float) * D);
        o += D;
    }
}

static int next_encode(const struct vlm_model *m, struct vlm_pool *pool, const struct vlm_image_input *in,
                       float *embd, struct vlm_error *err) {
    const struct vlm_llava *f = m->impl;
    struct next_layout L = {0, 0, 0, 0, 0, 0};
    int d = m->info.d_model, is = f->vision.hp.image_size, per = f->tokens_per_image;
    if (next_layout(f, in, &L) != 0 || in->n_tiles != 1 + L.rows * L.cols)
        return vlm_error_set(err, VLM_E_INVALID, "image input has %d tiles; the image_grid_pinpoints give %d for a %dx%d image",
                             in->n_tiles, 1 + L.rows * L.cols, in->orig_width, in->orig_height);
    long want = (long)per + (long)L.h * (L.w + 1);
    if (in->n_image_tokens != want)
        return vlm_error_set(err, VLM_E_INVALID, "image has %d image tokens, the vision tower makes %ld", in->n_image_tokens, want);
    float *tiles = vlm_malloc(sizeof(float) * (size_t)in->n_tiles * (size_t)per * (size_t)d);
    if (!tiles) return vlm_error_set(err, VLM_E_NOMEM, "out of memory encoding an image");
    size_t tile_px = (size_t)in->channels * is * is;
    int rc = VLM_OK;
    for (int t = 0; t < in->n_tiles && rc == VLM_OK; t++)
        rc = encode_tile(f, pool, in->pixels + (size_t)t * tile_px, is, d, tiles + (size_t)t * per * d, err);
    if (rc == VLM_OK) next_pack(f, &L, tiles, d, embd);
    vlm_free(tiles);
    return rc;
}

static int llava_encode(const struct vlm_model *m, struct vlm_pool *pool, const struct vlm_image_input *in,
                        float *embd, struct vlm_error *err) {
    const struct vlm_llava *f = m->impl;
    const struct vlm_clip_vision_hparams *vh = &f->vision.hp;
    if (!in || in->n_tiles < 1 || in->n_tiles > 1 + VLM_ANYRES_MAX_TILES || (!f->next && in->n_tiles != 1) || !in->pixels ||
        in->channels != vh->n_channels || in->height != vh->image_size || in->width != vh->image_size)
        return vlm_error_set(err, VLM_E_INVALID, "image input does not fit the vision tower (%d tiles of %dx%dx%d; need %s%dx%dx%d)",
                             in ? in->n_tiles : 0, in ? in->channels : 0, in ? in->height : 0, in ? in->width : 0,
                             f->next ? "tiles of " : "one ", vh->n_channels, vh->image_size, vh->image_size);
    if (f->next) return next_encode(m, pool, in, embd, err);
    if (in->n_image_tokens != f->tokens_per_image)
        return vlm_error_set(err, VLM_E_INVALID, "image has %d image tokens, the vision tower makes %d",
                             in->n_image_tokens, f->tokens_per_image);
    return encode_tile(f, pool, in->pixels, vh->image_size, m->info.d_model, embd, err);
}

static void *llava_scratch_new(const struct vlm_model *m, int n) {
    return vlm_llama_scratch_new(&((const struct vlm_llava *)m->impl)->text, n);
}

static int llava_forward(const struct vlm_model *m, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                         const struct vlm_batch *b, const int8_t *want, float *logits, struct vlm_error *err) {
    return vlm_llama_forward(&((const struct vlm_llava *)m->impl)->text, kv, pool, scratch, b, want, logits, err);
}

static const char *act_name(enum vlm_clip_act a) {
    return a == VLM_CLIP_ACT_QUICK_GELU ? "quick_gelu" : a == VLM_CLIP_ACT_GELU ? "gelu"
         : a == VLM_CLIP_ACT_GELU_TANH ? "gelu_tanh" : "silu";
}

static void llava_describe(const struct vlm_model *m, FILE *out) {
    const struct vlm_llava *f = m->impl;
    const struct vlm_clip_vision_hparams *v = &f->vision.hp;
    fprintf(out, "vision         CLIP: %d layers (%d run), d_model %d, %d heads, ffn %d, %dx%d px, patch %d, %s\n",
            v->n_layer, f->vision.n_layer_loaded, v->d_model, v->n_head, v->d_ff, v->image_size, v->image_size,
            v->patch_size, act_name(v->act));
    fprintf(out, "connector      hidden state(s)");
    for (int i = 0; i < f->n_states; i++) fprintf(out, " %d", f->states[i]);
    fprintf(out, " (%s), linear + %s + linear -> %d image tokens%s\n", f->drop_cls ? "class token dropped" : "class token kept",
            act_name(f->proj_act), f->tokens_per_image, f->next ? " per tile" : "");
    if (f->next) {
        fprintf(out, "anyres         whole image + tiles of the best of");
        for (int i = 0; i < f->n_pins; i++) fprintf(out, " %dx%d", f->pins[i][1], f->pins[i][0]);
        fprintf(out, " (w x h), unpadded grid rows each ended by image_newline\n");
    }
    vlm_llama_describe(&f->text, out);
}

static void llava_costs(const struct vlm_model *m, struct vlm_family_costs *c) {
    const struct vlm_llava *f = m->impl;
    const struct vlm_clip_vision_hparams *v = &f->vision.hp;
    double n = f->tokens_per_image, d = m->info.d_model, dv = (double)f->n_states * v->d_model;
    c->image_size = f->next ? 0 : v->image_size;   /* a NeXT image's tiles depend on its size */
    c->image_tokens = f->tokens_per_image;
    c->image_flops = vlm_clip_vision_flops(v, f->vision.n_layer_loaded) + 2.0 * n * (dv * d + d * d);
    vlm_llama_costs(&f->text, &c->decode_bytes, &c->token_flops, &c->token_flops_ctx);
}

const struct vlm_family vlm_family_llava = {
    .name = "llava",
    .image_mode = VLM_IMAGES_SPLICED,
    .load = llava_load,
    .free = llava_free,
    .encode_image = llava_encode,
    .scratch_new = llava_scratch_new,
    .scratch_free = vlm_llama_scratch_free,
    .forward = llava_forward,
    .describe = llava_describe,
    .costs = llava_costs,
};
