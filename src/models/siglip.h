/* siglip.h — the SigLIP vision transformer as Idefics3 uses it: Conv2d patch embedding,
 * learned position embeddings indexed through the patch-position bucketing Idefics3 applies to
 * padded tiles (patch_attention_mask), pre-LN encoder layers with bidirectional attention that
 * hides padded patches as keys, and the post-LayerNorm. */
#ifndef VLM_MODELS_SIGLIP_H
#define VLM_MODELS_SIGLIP_H

#include <jansson.h>
#include <stdint.h>

#include "tensor/tensor.h"

struct vlm_error;
struct vlm_pool;
struct vlm_config;
struct vlm_weights;

struct vlm_siglip_hparams {
    int   d_model, d_ff, n_layer, n_head, n_channels, image_size, patch_size;
    float ln_eps;
    int   gelu_tanh;          /* gelu_pytorch_tanh (1) or exact gelu (0) */
    int   plain_positions;    /* 1: position ids 0..n-1 (SiglipVisionModel at its image size, as
                                 Gemma 3 runs it), 0: Idefics3's bucketed ids; read sets 0 */
};

struct vlm_siglip_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;       /* (d) f32 */
    const struct vlm_tensor *wq, *wk, *wv, *wo;       /* (d, d) */
    const float *bq, *bk, *bv, *bo;                   /* (d) */
    const struct vlm_tensor *fc1, *fc2;               /* (ff, d), (d, ff) */
    const float *b1, *b2;                             /* (ff), (d) */
};

struct vlm_siglip {
    struct vlm_siglip_hparams hp;
    const struct vlm_tensor *patch_w;     /* (d, C, p, p) */
    const float *patch_b;                 /* (d) */
    const struct vlm_tensor *pos_emb;     /* (n_pos = (image_size/p)^2, d) */
    const float *post_ln_w, *post_ln_b;   /* (d) */
    struct vlm_siglip_layer *layers;
    float *owned;
};

int vlm_siglip_hparams_read(const struct vlm_config *c, json_t *vcfg, struct vlm_siglip_hparams *hp,
                            struct vlm_error *err);
/* Binds "<prefix>embeddings.patch_embedding.weight", "<prefix>encoder.layers.N...",
 * "<prefix>post_layernorm.weight", ... and checks shapes. */
int  vlm_siglip_load(struct vlm_siglip *s, const struct vlm_siglip_hparams *hp, const struct vlm_weights *w,
                     const char *prefix, struct vlm_error *err);
void vlm_siglip_free(struct vlm_siglip *s);

/* Patch position ids as Idefics3VisionEmbeddings computes them: patch_mask (gh, gw), 1 = real
 * patch; ids (gh*gw) get the bucketed position of each real patch, 0 for padding. */
void vlm_siglip_position_ids(int n_per_side, const uint8_t *patch_mask, int gh, int gw, int32_t *ids);

/* One tile: img (C, H, W) f32, pixel_mask (H, W) (1 = real pixel) or NULL; H, W multiples of
 * the patch size. out (gh*gw, d) = the post-LayerNorm hidden states. */
int vlm_siglip_forward(const struct vlm_siglip *s, struct vlm_pool *pool, const float *img,
                       const uint8_t *pixel_mask, int H, int W, float *out, struct vlm_error *err);

#endif
