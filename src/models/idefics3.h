/* idefics3.h — the Idefics3 family (SmolVLM): SigLIP vision tower, pixel-shuffle connector
 * with a linear projection, Llama decoder; image embeddings spliced at image_token_id rows. */
#ifndef VLM_MODELS_IDEFICS3_H
#define VLM_MODELS_IDEFICS3_H

#include "models/llama.h"
#include "models/siglip.h"

struct vlm_family;

struct vlm_idefics3 {
    struct vlm_siglip vision;
    struct vlm_llama  text;
    const struct vlm_tensor *proj;   /* (d_text, d_vision * scale^2) */
    int scale_factor;
    int tokens_per_tile;             /* (image_size/patch)^2 / scale^2 */
};

extern const struct vlm_family vlm_family_idefics3;

#endif
