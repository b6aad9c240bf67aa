/* gemma3_gguf.h — Gemma 3's GGUF mappings: llama.cpp's "gemma3" text file alone, loaded as
 * Gemma3ForCausalLM, or with its "gemma3" mmproj as Gemma3ForConditionalGeneration; and the
 * text_config builder from gemma3.* metadata. */
#ifndef VLM_MODELS_GEMMA3_GGUF_H
#define VLM_MODELS_GEMMA3_GGUF_H

#include "models/gguf_family.h"

extern const struct vlm_gguf_family vlm_gguf_gemma3_text;
extern const struct vlm_gguf_family vlm_gguf_gemma3;

/* Fills tc with a Gemma 3 text config from g's gemma3.* keys and tensors (hidden size, layers,
 * heads, head_dim, feed-forward, context, eps, final soft-capping, layer types and sliding
 * window, RoPE per layer type, vocabulary, tying) as llama.cpp reads them; every value checked,
 * errors name the file and key. */
int vlm_gguf_gemma3_text_config(const struct vlm_gguf *g, json_t *tc, struct vlm_error *err);

#endif
