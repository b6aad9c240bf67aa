/* clip_vision.h — the CLIP vision transformer as LLaVA uses it (transformers' CLIPVisionModel):
 * bias-free Conv2d patch embedding, a class token, learned position embeddings, the pre-
 * LayerNorm ("pre_layrnorm"), pre-LN encoder layers with bidirectional attention; the output is
 * the hidden states of chosen layers (LLaVA's vision_feature_layer), not the post-LayerNorm. */
#ifndef VLM_MODELS_CLIP_VISION_H
#define VLM_MODELS_CLIP_VISION_H

#include <jansson.h>
#include <stddef.h>

#include "tensor/tensor.h"

struct vlm_error;
struct vlm_pool;
struct vlm_config;
struct vlm_weights;

/* transformers' ACT2FN names the CLIP tower and LLaVA's projector use. */
enum vlm_clip_act { VLM_CLIP_ACT_QUICK_GELU, VLM_CLIP_ACT_GELU, VLM_CLIP_ACT_GELU_TANH, VLM_CLIP_ACT_SILU };
/* "quick_gelu", "gelu", "gelu_pytorch_tanh"/"gelu_new", "silu"/"swish"; -1 if unknown. */
int  vlm_clip_act_parse(const char *name, enum vlm_clip_act *out);
void vlm_clip_act_apply(enum vlm_clip_act a, float *x, size_t n);

struct vlm_clip_vision_hparams {
    int   d_model, d_ff, n_layer, n_head, n_channels, image_size, patch_size;
    float ln_eps;
    enum vlm_clip_act act;
};

struct vlm_clip_vision_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;       /* (d) f32 */
    const struct vlm_tensor *wq, *wk, *wv, *wo;       /* (d, d) */
    const float *bq, *bk, *bv, *bo;                   /* (d) */
    const struct vlm_tensor *fc1, *fc2;               /* (ff, d), (d, ff) */
    const float *b1, *b2;                             /* (ff), (d) */
};

struct vlm_clip_vision {
    struct vlm_clip_vision_hparams hp;
    int n_layer_loaded;                   /* layers bound: those the selected states need */
    const struct vlm_tensor *patch_w;     /* (d, C, p, p), no bias */
    const struct vlm_tensor *pos_emb;     /* ((image_size/p)^2 + 1, d): row 0 is the class token's */
    const float *cls;                     /* (d) class_embedding */
    const float *pre_ln_w, *pre_ln_b;     /* (d) */
    struct vlm_clip_vision_layer *layers; /* (n_layer_loaded) */
    float *owned;
};

/* Reads vcfg (a config's vision_config) with CLIPVisionConfig's defaults where a key is absent. */
int vlm_clip_vision_hparams_read(const struct vlm_config *c, json_t *vcfg, struct vlm_clip_vision_hparams *hp,
                                 struct vlm_error *err);

/* Binds "<prefix>embeddings.{class_embedding,patch_embedding.weight,position_embedding.weight}",
 * "<prefix>pre_layrnorm.*" and encoder layers 0 .. n_layer_used-1 ("<prefix>encoder.layers.N.*"),
 * checking every shape; later layers and post_layernorm are not read (hidden states before the
 * last layer need neither). */
int  vlm_clip_vision_load(struct vlm_clip_vision *s, const struct vlm_clip_vision_hparams *hp,
                          const struct vlm_weights *w, const char *prefix, int n_layer_used,
                          struct vlm_error *err);
void vlm_clip_vision_free(struct vlm_clip_vision *s);

/* One image: img (C, H, W) f32 with H == W == image_size. states[0 .. n_states) are indices into
 * transformers' hidden_states tuple, in [0, n_layer_loaded]: 0 is the pre-LayerNorm output,
 * k the output of encoder layer k-1. out ((n_patches + 1 - drop_cls), n_states * d): row t is
 * token t (the class token first unless drop_cls), the selected states concatenated in order. */
int vlm_clip_vision_forward(const struct vlm_clip_vision *s, struct vlm_pool *pool, const float *img, int H,
                            int W, const int *states, int n_states, int drop_cls, float *out,
                            struct vlm_error *err);

/* FLOPs of one image through layers 0 .. n_layer-1 (multiply-add = 2), for `vlm bench`. */
double vlm_clip_vision_flops(const struct vlm_clip_vision_hparams *hp, int n_layer);

#endif
