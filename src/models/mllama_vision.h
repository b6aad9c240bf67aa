/* mllama_vision.h — Llama 3.2 Vision's image encoder (MllamaVisionModel) and its projector:
 * patch conv, class token, gated position and tile embeddings per aspect ratio, a local and a
 * gated global transformer over all max_num_tiles tiles of one image, intermediate layer
 * outputs concatenated, then multi_modal_projector -> the states the decoder cross-attends to. */
#ifndef VLM_MODELS_MLLAMA_VISION_H
#define VLM_MODELS_MLLAMA_VISION_H

#include <jansson.h>
#include <stdint.h>

#include "tensor/tensor.h"

struct vlm_error;
struct vlm_pool;
struct vlm_config;
struct vlm_weights;

#define VLM_MLLAMA_MAX_INTER 32
#define VLM_MLLAMA_MAX_RATIOS 64

struct vlm_mllama_vision_hparams {
    int   d_model, d_ff, n_layer, n_global, n_head, n_channels, image_size, patch_size, max_tiles;
    int   out_dim;                     /* vision_output_dim = d_model * (1 + n_inter) */
    int   n_inter, inter[VLM_MLLAMA_MAX_INTER];   /* intermediate_layers_indices */
    int   n_ratios, ratios[VLM_MLLAMA_MAX_RATIOS][2];   /* supported_aspect_ratios (w, h tiles) */
    float norm_eps;                    /* encoder layers; layernorm_pre/post use 1e-5 (nn.LayerNorm) */
    int   n_patch;                     /* (image_size / patch_size)^2 + 1 (class token) */
    int   n_pad;                       /* n_patch rounded up to a multiple of 8 */
};

struct vlm_mllama_vision_layer {
    const float *ln1_w, *ln1_b, *ln2_w, *ln2_b;     /* (d) */
    const struct vlm_tensor *wq, *wk, *wv, *wo;     /* (d, d), no bias */
    const struct vlm_tensor *fc1, *fc2;             /* (ff, d), (d, ff) */
    const float *b1, *b2;                           /* (ff), (d) */
    float gate_attn, gate_ffn;                      /* tanh of the gates (global layers), else 1 */
};

struct vlm_mllama_vision {
    struct vlm_mllama_vision_hparams hp;
    const struct vlm_tensor *patch_w;         /* (d, C, p, p) */
    const float *class_emb;                   /* (d) */
    const float *pos_emb;                     /* (n_patch, d) */
    float pos_gate;                           /* tanh(gated_positional_embedding.gate) */
    const struct vlm_tensor *tile_pos;        /* (n_ratios + 1, max_tiles * n_patch * d) */
    const struct vlm_tensor *pre_tile, *post_tile;   /* (n_ratios + 1, max_tiles * d) */
    float pre_gate, post_gate;                /* tanh of their gates */
    const float *ln_pre_w, *ln_pre_b, *ln_post_w, *ln_post_b;
    struct vlm_mllama_vision_layer *layers;   /* (n_layer + n_global): local, then global */
    const struct vlm_tensor *proj_w;          /* (d_text, out_dim) */
    const float *proj_b;                      /* (d_text) */
    int d_text;
    float *owned;
};

int vlm_mllama_vision_hparams_read(const struct vlm_config *c, json_t *vcfg,
                                   struct vlm_mllama_vision_hparams *hp, struct vlm_error *err);
/* Binds "<prefix>patch_embedding.weight", "<prefix>transformer.layers.N...", ... and the
 * projector "<proj_prefix>weight"/"bias" (d_text rows), checking every shape. */
int  vlm_mllama_vision_load(struct vlm_mllama_vision *v, const struct vlm_mllama_vision_hparams *hp,
                            const struct vlm_weights *w, const char *prefix, const char *proj_prefix,
                            int d_text, struct vlm_error *err);
void vlm_mllama_vision_free(struct vlm_mllama_vision *v);

/* Rows one image's states have: max_tiles * n_patch (padded tiles included, as transformers
 * keeps them: rows outside every image span attend to all of them). */
int vlm_mllama_vision_rows(const struct vlm_mllama_vision *v);

/* One image: pixels (n_tiles, C, S, S) of its valid tiles (S = image_size), aspect_ratio_id in
 * 1..n_ratios with n_tiles = that ratio's w*h; the missing tiles up to max_tiles are zero pixels
 * as MllamaImageProcessor pads them. out (max_tiles * n_patch, d_text) = the projected states. */
int vlm_mllama_vision_encode(const struct vlm_mllama_vision *v, struct vlm_pool *pool, const float *pixels,
                             int n_tiles, int aspect_ratio_id, float *out, struct vlm_error *err);

#endif
