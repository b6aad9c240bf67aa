/* gemma3.c — the Gemma 3 family table: reading the config with transformers' defaults, binding
 * and checking every tensor (both the published names, "language_model.model.*", and
 * transformers 5's "model.language_model.*"), image encoding (SigLIP per tile -> average pool ->
 * RMSNorm (1 + w) -> projection) and the decoder step. */
#include "models/gemma3.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/llama.h"
#include "models/model.h"
#include "models/processor.h"
#include "util/alloc.h"
#include "util/error.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) goto fail; } while (0)

static const char *first_with(const struct vlm_weights *w, const char *const *prefixes, int n, const char *suffix) {
    char name[256];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "%s%s", prefixes[i], suffix);
        if (vlm_weights_get(w, name)) return prefixes[i];
    }
    return prefixes[0];   /* absent everywhere: the first spelling names the missing tensor */
}

static const char *file_for_msg(const struct vlm_weights *w) {
    return w->n_files == 1 ? w->files[0] : "the model's safetensors files";
}

/* mm_input_projection_weight (d_vision, d_text) is used as x @ W: kept transposed, (d_text,
 * d_vision), so that vlm_matmul reads it as a Linear weight. */
static int bind_projection(struct vlm_gemma3 *f, const struct vlm_weights *w, const char *name, int dv, int dt,
                           struct vlm_error *err) {
    const struct vlm_tensor *t;
    int64_t ne[2] = {dv, dt};
    int rc = vlm_weights_require(w, name, 2, ne, &t, err);
    if (rc != VLM_OK) return rc;
    size_t es = vlm_dtype_size(t->type);
    if (!es) return vlm_error_set(err, VLM_E_UNSUPPORTED, "%s: tensor '%s' has type %s (float types only)",
                                  file_for_msg(w), name, vlm_dtype_name(t->type));
    char *dst = vlm_malloc(es * (size_t)dv * dt);
    if (!dst) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    const char *src = t->data;
    for (int i = 0; i < dv; i++)
        for (int j = 0; j < dt; j++) memcpy(dst + ((size_t)j * dv + i) * es, src + ((size_t)i * dt + j) * es, es);
    f->proj = (struct vlm_tensor){.type = t->type, .n_dims = 2, .ne = {dt, dv, 0, 0}, .data = dst,
                                  .nbytes = es * (size_t)dv * dt, .compute = t->compute};
    return VLM_OK;
}

static int load_vision(struct vlm_model *m, struct vlm_gemma3 *f, struct vlm_error *err) {
    const struct vlm_config *c = &m->cfg;
    const struct vlm_weights *w = &m->weights;
    json_t *vc;
    long long mm;
    double eps;
    int rc;
    struct vlm_siglip_hparams vh;
    if ((rc = vlm_config_sub(c, "vision_config", &vc, err)) != VLM_OK) return rc;
    if ((rc = vlm_siglip_hparams_read(c, vc, &vh, err)) != VLM_OK) return rc;
    if ((rc = vlm_config_num(c, vc, "layer_norm_eps", 1e-6, 0, 1, &eps, err)) != VLM_OK) return rc;
    if ((rc = vlm_config_int(c, c->root, "mm_tokens_per_image", 256, 1, 1 << 20, &mm, err)) != VLM_OK) return rc;
    vh.plain_positions = 1;
    int nps = vh.image_size / vh.patch_size, side = (int)sqrt((double)mm);
    while ((long long)(side + 1) * (side + 1) <= mm) side++;   /* int(mm ** 0.5) */
    if ((long long)side * side != mm || nps % side)
        return vlm_error_set(err, VLM_E_FORMAT, "%s: mm_tokens_per_image %lld is not a square whose side divides the %d patches per side",
                             c->path, mm, nps);
    static const char *const vpre[] = {"vision_tower.vision_model.", "vision_tower.",
                                       "model.vision_tower.vision_model.", "model.vision_tower."};
    static const char *const ppre[] = {"multi_modal_projector.", "model.multi_modal_projector."};
    const char *vp = first_with(w, vpre, 4, "embeddings.patch_embedding.weight");
    const char *pp = first_with(w, ppre, 2, "mm_input_projection_weight");
    if ((rc = vlm_siglip_load(&f->vision, &vh, w, vp, err)) != VLM_OK) return rc;
    char name[256];
    snprintf(name, sizeof name, "%smm_input_projection_weight", pp);
    if ((rc = bind_projection(f, w, name, vh.d_model, f->text.hp.d_model, err)) != VLM_OK) return rc;
    snprintf(name, sizeof name, "%smm_soft_emb_norm.weight", pp);
    const struct vlm_tensor *t;
    int64_t ne[1] = {vh.d_model};
    if ((rc = vlm_weights_require(w, name, 1, ne, &t, err)) != VLM_OK) return rc;
    f->owned = vlm_malloc(sizeof(float) * (size_t)vh.d_model);
    if (!f->owned) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    vlm_tensor_to_f32(t, f->owned, vh.d_model);
    int gguf;   /* llama.cpp's converter stores mm_soft_emb_norm as 1 + w already */
    if ((rc = vlm_config_bool(c, c->root, "vlm_gguf", 0, &gguf, err)) != VLM_OK) return rc;
    for (int i = 0; i < vh.d_model && !gguf; i++) f->owned[i] += 1.0f;
    f->soft_norm = f->owned;
    f->soft_eps = (float)eps;
    f->mm_tokens = (int)mm;
    f->pool_k = nps / side;
    f->has_vision = 1;
    return VLM_OK;
}

static void gemma3_free(struct vlm_model *m) {
    struct vlm_gemma3 *f = m->impl;
    if (!f) return;
    vlm_siglip_free(&f->vision);
    vlm_gemma3_text_free(&f->text);
    vlm_free((void *)f->proj.data);
    vlm_free(f->owned);
    vlm_free(f);
    m->impl = NULL;
}

static int gemma3_load(struct vlm_model *m, struct vlm_error *err) {
    struct vlm_gemma3 *f = vlm_calloc(1, sizeof *f);
    if (!f) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    m->impl = f;
    const struct vlm_config *c = &m->cfg;
    const struct vlm_weights *w = &m->weights;
    int vlm = !strcmp(c->arch, "Gemma3ForConditionalGeneration"), rc;
    json_t *tc = c->root;
    long long itok = -1;
    struct vlm_gemma3_hparams th;
    if (vlm) CHK(vlm_config_sub(c, "text_config", &tc, err));
    CHK(vlm_gemma3_hparams_read(c, tc, &th, err));
    CHK(vlm_config_bool(c, c->root, "tie_word_embeddings", 1, &th.tied, err));   /* only the top level counts */
    if (vlm) th.final_softcap = 0.0f;   /* transformers caps the logits in Gemma3ForCausalLM only */
    if (vlm) {
        if (json_object_get(c->root, "image_token_id"))
            CHK(vlm_config_int(c, c->root, "image_token_id", 262144, 0, th.n_vocab - 1, &itok, err));
        else
            CHK(vlm_config_int(c, c->root, "image_token_index", 262144, 0, th.n_vocab - 1, &itok, err));
    }
    static const char *const tpre[] = {"language_model.model.", "model.language_model.", "model.", ""};
    const char *tp = vlm ? first_with(w, tpre, 2, "embed_tokens.weight") : first_with(w, tpre + 2, 2, "embed_tokens.weight");
    const char *head = vlm && vlm_weights_get(w, "language_model.lm_head.weight") ? "language_model.lm_head.weight" : "lm_head.weight";
    CHK(vlm_gemma3_text_load(&f->text, &th, w, tp, head, err));
    if (vlm) CHK(load_vision(m, f, err));
    f->text.hp.image_run = f->mm_tokens;
    m->info.n_vocab = th.n_vocab;
    m->info.d_model = th.d_model;
    m->info.n_layer = th.n_layer;
    m->info.kv_dim = th.n_head_kv * th.d_head;
    m->info.n_ctx_train = th.max_pos;
    m->info.image_token_id = (int32_t)itok;
    m->info.image_rows_whole = f->has_vision ? f->mm_tokens : 0;
    return VLM_OK;
fail:
    gemma3_free(m);
    return rc;
}

/* Gemma3MultiModalProjector.avg_pool: hs (nps*nps, d) -> out (side*side, d), mean of k x k. */
static void avg_pool(float *out, const float *hs, int nps, int k, int d) {
    int side = nps / k;
    float inv = 1.0f / (float)(k * k);
    for (int i = 0; i < side; i++)
        for (int j = 0; j < side; j++) {
            float *o = out + ((size_t)i * side + j) * d;
            memset(o, 0, sizeof(float) * (size_t)d);
            for (int a = 0; a < k; a++)
                for (int b = 0; b < k; b++) {
                    const float *h = hs + ((size_t)(i * k + a) * nps + (size_t)(j * k + b)) * d;
                    for (int t = 0; t < d; t++) o[t] += h[t];
                }
            for (int t = 0; t < d; t++) o[t] *= inv;
        }
}

static int gemma3_encode(const struct vlm_model *m, struct vlm_pool *pool, const struct vlm_image_input *in,
                         float *embd, struct vlm_error *err) {
    const struct vlm_gemma3 *f = m->impl;
    if (!f->has_vision) return vlm_error_set(err, VLM_E_UNSUPPORTED, "this model has no vision tower");
    const struct vlm_siglip_hparams *vh = &f->vision.hp;
    int S = vh->image_size;
    if (!in || in->n_tiles <= 0 || !in->pixels || in->channels != vh->n_channels || in->height != S || in->width != S)
        return vlm_error_set(err, VLM_E_INVALID, "image input does not fit the vision tower (%d tiles of %dx%dx%d; need %dx%dx%d)",
                             in ? in->n_tiles : 0, in ? in->channels : 0, in ? in->height : 0, in ? in->width : 0,
                             vh->n_channels, S, S);
    if ((long)f->mm_tokens * in->n_tiles != in->n_image_tokens)
        return vlm_error_set(err, VLM_E_INVALID, "image has %d image tokens, the model makes %d per image x %d",
                             in->n_image_tokens, f->mm_tokens, in->n_tiles);
    int nps = S / vh->patch_size, n_patch = nps * nps, dv = vh->d_model;
    float *hs = vlm_malloc(sizeof(float) * ((size_t)n_patch + 2 * (size_t)f->mm_tokens) * dv);
    if (!hs) return vlm_error_set(err, VLM_E_NOMEM, "out of memory encoding an image");
    float *pooled = hs + (size_t)n_patch * dv, *normed = pooled + (size_t)f->mm_tokens * dv;
    size_t tile = (size_t)in->channels * S * S;
    int rc = VLM_OK;
    for (int t = 0; t < in->n_tiles && rc == VLM_OK; t++) {
        rc = vlm_siglip_forward(&f->vision, pool, in->pixels + (size_t)t * tile, NULL, S, S, hs, err);
        if (rc != VLM_OK) break;
        avg_pool(pooled, hs, nps, f->pool_k, dv);
        vlm_rmsnorm(normed, pooled, f->soft_norm, f->mm_tokens, dv, f->soft_eps);
        vlm_matmul(pool, normed, f->mm_tokens, &f->proj, NULL, embd + (size_t)t * f->mm_tokens * m->info.d_model);
    }
    vlm_free(hs);
    return rc;
}

static void *gemma3_scratch_new(const struct vlm_model *m, int n) {
    return vlm_gemma3_scratch_new(&((const struct vlm_gemma3 *)m->impl)->text, n);
}

static int gemma3_forward(const struct vlm_model *m, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                          const struct vlm_batch *b, const int8_t *want, float *logits, struct vlm_error *err) {
    return vlm_gemma3_forward(&((const struct vlm_gemma3 *)m->impl)->text, kv, pool, scratch, b, want, logits, err);
}

/* One image (a full tile): patch embedding, the layers, the projection of the pooled rows. The
 * decoder's attention is counted over the whole context: exact while it is shorter than the
 * sliding window, an overestimate for the local layers past it. */
static void gemma3_costs(const struct vlm_model *m, struct vlm_family_costs *c) {
    const struct vlm_gemma3 *f = m->impl;
    const struct vlm_gemma3_hparams *t = &f->text.hp;
    c->decode_bytes = vlm_gemma3_weight_bytes(&f->text);
    c->token_flops = vlm_gemma3_flops_per_token(&f->text, 0);
    c->token_flops_ctx = 2.0 * 2 * t->n_layer * (double)t->n_head * t->d_head;
    if (!f->has_vision) return;
    const struct vlm_siglip_hparams *v = &f->vision.hp;
    double nps = v->image_size / v->patch_size, n = nps * nps;
    double d = v->d_model, ff = v->d_ff, p2c = (double)v->patch_size * v->patch_size * v->n_channels;
    double per_layer = 2.0 * n * (4 * d * d + 2 * d * ff) + 2.0 * 2 * n * n * d;
    c->image_size = v->image_size;
    c->image_tokens = f->mm_tokens;
    c->image_flops = 2.0 * n * p2c * d + v->n_layer * per_layer + 2.0 * f->mm_tokens * d * t->d_model;
}

static void gemma3_describe(const struct vlm_model *m, FILE *out) {
    const struct vlm_gemma3 *f = m->impl;
    const struct vlm_gemma3_hparams *t = &f->text.hp;
    int n_local = 0;
    for (int i = 0; i < t->n_layer; i++) n_local += t->sliding[i];
    if (f->has_vision) {
        const struct vlm_siglip_hparams *v = &f->vision.hp;
        fprintf(out, "vision         SigLIP: %d layers, d_model %d, %d heads, ffn %d, %dx%d px images, patch %d\n",
                v->n_layer, v->d_model, v->n_head, v->d_ff, v->image_size, v->image_size, v->patch_size);
        fprintf(out, "connector      %dx%d average pool -> %d image tokens, RMSNorm, projection to %d\n",
                f->pool_k, f->pool_k, f->mm_tokens, t->d_model);
    }
    fprintf(out, "text           Gemma 3: %d layers (%d local, window %d; %d global), d_model %d, %d heads (%d kv,\n"
                 "               head_dim %d), ffn %d, vocab %d, rope_theta %g global / %g local, max positions %d,\n"
                 "               %s embeddings\n",
            t->n_layer, n_local, t->sliding_window, t->n_layer - n_local, t->d_model, t->n_head, t->n_head_kv,
            t->d_head, t->d_ff, t->n_vocab, t->rope_global.theta, t->rope_local.theta, t->max_pos,
            t->tied ? "tied" : "untied");
}

const struct vlm_family vlm_family_gemma3 = {
    .name = "gemma3",
    .image_mode = VLM_IMAGES_SPLICED,
    .load = gemma3_load,
    .free = gemma3_free,
    .encode_image = gemma3_encode,
    .scratch_new = gemma3_scratch_new,
    .scratch_free = vlm_gemma3_scratch_free,
    .forward = gemma3_forward,
    .describe = gemma3_describe,
    .costs = gemma3_costs,
};
