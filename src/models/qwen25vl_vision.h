/* qwen25vl_vision.h — the vision tower of Qwen2.5-VL (and Qwen2-VL) as transformers computes
 * it: a Conv3d patch embedding over temporal_patch_size frames (a matrix product over the
 * processor's flattened patches), 2-D rotary positions, pre-norm blocks with window attention
 * (Qwen2.5-VL: RMSNorm + SwiGLU, windows of window_size pixels except fullatt_block_indexes;
 * Qwen2-VL: LayerNorm + fc1/act/fc2, full attention), and the patch merger (ln_q, then a
 * 2-layer GELU MLP over spatial_merge_size^2 neighbouring patches). */
#ifndef VLM_MODELS_QWEN25VL_VISION_H
#define VLM_MODELS_QWEN25VL_VISION_H

#include <jansson.h>
#include <stdint.h>

#include "tensor/tensor.h"

struct vlm_error;
struct vlm_pool;
struct vlm_config;
struct vlm_weights;

#define VLM_QWEN_VISION_MAX_LAYERS 256

enum vlm_qwen_vision_act { VLM_QV_SILU, VLM_QV_QUICK_GELU, VLM_QV_GELU, VLM_QV_GELU_TANH };

struct vlm_qwen_vision_hparams {
    int   v2;                  /* 1: Qwen2-VL blocks (LayerNorm, fc1/fc2, no windows); 0: Qwen2.5-VL */
    int   d_model, d_ff, n_layer, n_head, n_channels, patch_size, merge, temporal, d_out;
    int   window_size;         /* pixels; Qwen2.5-VL only */
    int   window_units;        /* window_size / merge / patch_size: window side in merged units */
    float theta;               /* rotary base (vision rope_parameters.rope_theta, 10000) */
    enum vlm_qwen_vision_act act;
    uint8_t full_attn[VLM_QWEN_VISION_MAX_LAYERS];   /* 1 = the block attends over the whole image */
};

struct vlm_qwen_vision_layer {
    const float *n1_w, *n1_b, *n2_w, *n2_b;            /* (d) f32; biases only for LayerNorm (Qwen2-VL) */
    struct vlm_tensor wq, wk, wv;                      /* rows of attn.qkv (3d, d): (d, d) views each */
    const float *bq, *bk, *bv;                         /* (d) from attn.qkv.bias */
    const struct vlm_tensor *wo;                       /* attn.proj (d, d) */
    const float *bo;
    const struct vlm_tensor *w_gate, *w_up, *w_down;   /* Qwen2.5-VL SwiGLU: (ff, d), (ff, d), (d, ff);
                                                          Qwen2-VL: w_up = fc1 (ff, d), w_down = fc2 */
    const float *b_gate, *b_up, *b_down;
};

struct vlm_qwen_vision {
    struct vlm_qwen_vision_hparams hp;
    struct vlm_tensor patch_w;                         /* (d, C*T*P*P) view of the Conv3d weight */
    struct vlm_qwen_vision_layer *layers;
    const float *lnq_w, *lnq_b;                        /* merger.ln_q (d); bias for Qwen2-VL only */
    const struct vlm_tensor *m0, *m2;                  /* merger.mlp.0 (d*M^2, d*M^2), mlp.2 (d_out, d*M^2) */
    const float *m0_b, *m2_b;
    float *inv_freq;                                   /* (head_dim/2): the h half then the w half */
    float *owned;
};

/* Reads vision_config (Qwen2.5-VL names, or Qwen2-VL's embed_dim/mlp_ratio when v2). */
int vlm_qwen_vision_hparams_read(const struct vlm_config *c, json_t *vcfg, int v2,
                                 struct vlm_qwen_vision_hparams *hp, struct vlm_error *err);
/* Binds "<prefix>patch_embed.proj.weight", "<prefix>blocks.N...", "<prefix>merger..." and checks
 * every shape; errors name the tensor and file. */
int  vlm_qwen_vision_load(struct vlm_qwen_vision *v, const struct vlm_qwen_vision_hparams *hp,
                          const struct vlm_weights *w, const char *prefix, struct vlm_error *err);
void vlm_qwen_vision_free(struct vlm_qwen_vision *v);

/* Window attention order of one image, as transformers' get_vision_window_index: win_index
 * (gh/M * gw/M) lists merged units window by window (windows row-major, units row-major inside,
 * partial windows at the right and bottom edges), win_len (n_win) their unit counts; returns
 * n_win (<= the unit count). units = window side in merged units. */
int vlm_qwen_window_index(int grid_h, int grid_w, int merge, int units, int32_t *win_index, int32_t *win_len);

/* One image: pixels (gh*gw, C*T*P*P) in the processor's merge-window patch order, grid (t, h, w)
 * in patches; out (t*gh*gw / M^2, d_out) merged tokens in the same order as the prompt's image
 * tokens. */
int vlm_qwen_vision_forward(const struct vlm_qwen_vision *v, struct vlm_pool *pool, const float *pixels,
                            const int grid_thw[3], float *out, struct vlm_error *err);

/* Multiply-adds x 2 of one image of grid (t, h, w) patches, windows counted as they fall (for
 * `vlm bench`). */
double vlm_qwen_vision_flops(const struct vlm_qwen_vision_hparams *hp, const int grid[3]);

#endif
