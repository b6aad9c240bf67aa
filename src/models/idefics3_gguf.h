/* idefics3_gguf.h — Idefics3/SmolVLM's GGUF mapping (llama text file + idefics3 mmproj), and
 * the Llama text_config builder other Llama-decoder families can reuse. */
#ifndef VLM_MODELS_IDEFICS3_GGUF_H
#define VLM_MODELS_IDEFICS3_GGUF_H

#include "models/gguf_family.h"

extern const struct vlm_gguf_family vlm_gguf_idefics3;

/* Fills tc with a Llama text_config from <arch>.* keys of g (hidden size, heads, head_dim,
 * rotary dims, feed-forward, layers, context, eps, rope theta and linear scaling, vocabulary,
 * tie_word_embeddings = no output.weight). */
int vlm_gguf_llama_text_config(const struct vlm_gguf *g, json_t *tc, struct vlm_error *err);

/* Fills vc with a SigLIP vision_config from an mmproj's clip.vision.* keys (width, feed-forward,
 * layers, heads, image and patch size, LayerNorm eps; GELU-tanh required). */
int vlm_gguf_siglip_vision_config(const struct vlm_gguf *g, json_t *vc, struct vlm_error *err);

#endif
