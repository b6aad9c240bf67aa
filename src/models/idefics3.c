/* idefics3.c — the Idefics3 family table (Idefics3ForConditionalGeneration and
 * SmolVLMForConditionalGeneration): loading and checking every tensor, image encoding (vision
 * tower per tile -> pixel shuffle -> projection), and the decoder step. */
#include "models/idefics3.h"

#include <stdio.h>
#include <string.h>

#include "models/model.h"
#include "models/processor.h"
#include "util/alloc.h"
#include "util/error.h"

#define CHK(x) do { if ((rc = (x)) != VLM_OK) goto fail; } while (0)

static void idefics3_free(struct vlm_model *m) {
    struct vlm_idefics3 *f = m->impl;
    if (!f) return;
    vlm_siglip_free(&f->vision);
    vlm_llama_free(&f->text);
    vlm_free(f);
    m->impl = NULL;
}

static int idefics3_load(struct vlm_model *m, struct vlm_error *err) {
    struct vlm_idefics3 *f = vlm_calloc(1, sizeof *f);
    if (!f) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    m->impl = f;
    const struct vlm_config *c = &m->cfg;
    json_t *vc, *tc;
    struct vlm_siglip_hparams vh;
    struct vlm_llama_hparams th;
    long long sf, itok;
    int tie_top, rc;
    CHK(vlm_config_sub(c, "vision_config", &vc, err));
    CHK(vlm_config_sub(c, "text_config", &tc, err));
    CHK(vlm_siglip_hparams_read(c, vc, &vh, err));
    CHK(vlm_llama_hparams_read(c, tc, 1e-5f, &th, err));
    CHK(vlm_config_int(c, c->root, "scale_factor", 2, 1, 16, &sf, err));
    CHK(vlm_config_int(c, c->root, "image_token_id", 128257, 0, th.n_vocab - 1, &itok, err));
    CHK(vlm_config_bool(c, c->root, "tie_word_embeddings", 0, &tie_top, err));
    th.tied = th.tied || tie_top;
    int nps = vh.image_size / vh.patch_size;
    if (nps % sf) {
        rc = vlm_error_set(err, VLM_E_FORMAT, "%s: %d patches per side is not a multiple of scale_factor %lld", c->path, nps, sf);
        goto fail;
    }
    /* transformers >= 4.46 names "model.vision_model..."; older exports drop "model." */
    const char *pre = vlm_weights_get(&m->weights, "model.text_model.embed_tokens.weight") ? "model." : "";
    char vp[64], tp[64], pp[96];
    snprintf(vp, sizeof vp, "%svision_model.", pre);
    snprintf(tp, sizeof tp, "%stext_model.", pre);
    snprintf(pp, sizeof pp, "%sconnector.modality_projection.proj.weight", pre);
    CHK(vlm_siglip_load(&f->vision, &vh, &m->weights, vp, err));
    CHK(vlm_llama_load(&f->text, &th, &m->weights, tp, "lm_head.weight", err));
    {
        int64_t ne[2] = {th.d_model, (int64_t)vh.d_model * sf * sf};
        CHK(vlm_weights_require(&m->weights, pp, 2, ne, &f->proj, err));
    }
    f->scale_factor = (int)sf;
    f->tokens_per_tile = nps * nps / (int)(sf * sf);
    m->info.n_vocab = th.n_vocab;
    m->info.d_model = th.d_model;
    m->info.n_layer = th.n_layer;
    m->info.kv_dim = th.n_head_kv * th.d_head;
    m->info.n_ctx_train = th.max_pos;
    m->info.image_token_id = (int32_t)itok;
    return VLM_OK;
fail:
    idefics3_free(m);
    return rc;
}

static int idefics3_encode(const struct vlm_model *m, struct vlm_pool *pool, const struct vlm_image_input *in,
                           float *embd, struct vlm_error *err) {
    const struct vlm_idefics3 *f = m->impl;
    const struct vlm_siglip_hparams *vh = &f->vision.hp;
    int s = f->scale_factor, p = vh->patch_size;
    if (!in || in->n_tiles <= 0 || !in->pixels || in->channels != vh->n_channels || in->height <= 0 ||
        in->width <= 0 || in->height % p || in->width % p || in->height != in->width)
        return vlm_error_set(err, VLM_E_INVALID, "image input does not fit the vision tower (%d tiles of %dx%dx%d; need square tiles, %d channels, multiples of %d)",
                             in ? in->n_tiles : 0, in ? in->channels : 0, in ? in->height : 0, in ? in->width : 0,
                             vh->n_channels, p);
    int side = in->height / p, n_patch = side * side;
    if (side % s || n_patch > 65536)
        return vlm_error_set(err, VLM_E_INVALID, "a %d-patch side is not a multiple of the scale factor %d (or too large)", side, s);
    int per_tile = n_patch / (s * s);
    if ((long)per_tile * in->n_tiles != in->n_image_tokens)
        return vlm_error_set(err, VLM_E_INVALID, "image has %d image tokens, the vision tower makes %d per tile x %d tiles",
                             in->n_image_tokens, per_tile, in->n_tiles);
    size_t dv = (size_t)vh->d_model;
    float *hs = vlm_malloc(sizeof(float) * (size_t)n_patch * dv * 2);
    if (!hs) return vlm_error_set(err, VLM_E_NOMEM, "out of memory encoding an image");
    float *shuf = hs + (size_t)n_patch * dv;
    size_t tile_px = (size_t)in->height * in->width;
    int rc = VLM_OK;
    for (int t = 0; t < in->n_tiles && rc == VLM_OK; t++) {
        rc = vlm_siglip_forward(&f->vision, pool, in->pixels + (size_t)t * in->channels * tile_px,
                                in->pixel_mask ? in->pixel_mask + (size_t)t * tile_px : NULL,
                                in->height, in->width, hs, err);
        if (rc != VLM_OK) break;
        vlm_pixel_shuffle(shuf, hs, n_patch, (int)dv, s);
        vlm_matmul(pool, shuf, per_tile, f->proj, NULL, embd + (size_t)t * per_tile * m->info.d_model);
    }
    vlm_free(hs);
    return rc;
}

static void *idefics3_scratch_new(const struct vlm_model *m, int n) {
    return vlm_llama_scratch_new(&((const struct vlm_idefics3 *)m->impl)->text, n);
}

static int idefics3_forward(const struct vlm_model *m, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                            const struct vlm_batch *b, const int8_t *want, float *logits, struct vlm_error *err) {
    return vlm_llama_forward(&((const struct vlm_idefics3 *)m->impl)->text, kv, pool, scratch, b, want, logits, err);
}

static void idefics3_describe(const struct vlm_model *m, FILE *out) {
    const struct vlm_idefics3 *f = m->impl;
    const struct vlm_siglip_hparams *v = &f->vision.hp;
    fprintf(out, "vision         SigLIP: %d layers, d_model %d, %d heads, ffn %d, %dx%d px tiles, patch %d, %s\n",
            v->n_layer, v->d_model, v->n_head, v->d_ff, v->image_size, v->image_size, v->patch_size,
            v->gelu_tanh ? "gelu_tanh" : "gelu");
    fprintf(out, "connector      pixel shuffle x%d + linear -> %d image tokens per tile\n", f->scale_factor, f->tokens_per_tile);
    vlm_llama_describe(&f->text, out);
}

/* One full tile: patch embedding, the layers, the projection of the shuffled rows. */
static void idefics3_costs(const struct vlm_model *m, struct vlm_family_costs *c) {
    const struct vlm_idefics3 *f = m->impl;
    const struct vlm_siglip_hparams *v = &f->vision.hp;
    double nps = v->image_size / v->patch_size, n = nps * nps;
    double d = v->d_model, ff = v->d_ff, p2c = (double)v->patch_size * v->patch_size * v->n_channels;
    double per_layer = 2.0 * n * (4 * d * d + 2 * d * ff) + 2.0 * 2 * n * n * d;
    double s2 = (double)f->scale_factor * f->scale_factor;
    c->image_size = v->image_size;
    c->image_tokens = f->tokens_per_tile;
    c->image_flops = 2.0 * n * p2c * d + v->n_layer * per_layer + 2.0 * (n / s2) * (d * s2) * f->text.hp.d_model;
    vlm_llama_costs(&f->text, &c->decode_bytes, &c->token_flops, &c->token_flops_ctx);
}

const struct vlm_family vlm_family_idefics3 = {
    .name = "idefics3",
    .image_mode = VLM_IMAGES_SPLICED,
    .load = idefics3_load,
    .free = idefics3_free,
    .encode_image = idefics3_encode,
    .scratch_new = idefics3_scratch_new,
    .scratch_free = vlm_llama_scratch_free,
    .forward = idefics3_forward,
    .describe = idefics3_describe,
    .costs = idefics3_costs,
};
