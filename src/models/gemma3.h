/* gemma3.h — the Gemma 3 family: Gemma3ForConditionalGeneration (SigLIP at the config's image
 * size -> average pool to mm_tokens_per_image -> soft-embedding RMSNorm -> projection, rows
 * spliced at image_token_index positions) and the text-only Gemma3ForCausalLM. */
#ifndef VLM_MODELS_GEMMA3_H
#define VLM_MODELS_GEMMA3_H

#include "models/gemma3_text.h"
#include "models/siglip.h"

struct vlm_family;

struct vlm_gemma3 {
    int has_vision;
    struct vlm_siglip vision;
    struct vlm_gemma3_text text;
    struct vlm_tensor proj;      /* (d_text, d_vision): mm_input_projection_weight transposed (owned) */
    const float *soft_norm;      /* (d_vision) f32, 1 + w */
    float soft_eps;              /* the vision config's layer_norm_eps */
    int mm_tokens;               /* image tokens per tile */
    int pool_k;                  /* average-pool kernel = stride, in patches */
    float *owned;
};

extern const struct vlm_family vlm_family_gemma3;

#endif
