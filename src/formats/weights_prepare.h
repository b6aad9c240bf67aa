/* weights_prepare.h — vLLM's --dtype and --quantization applied to a loaded weight map, before
 * a family binds it: the arithmetic each matrix is multiplied with (tensor.h's vlm_compute),
 * conversions to bf16/f16, and quantization on load into owned memory. */
#ifndef VLM_FORMATS_WEIGHTS_PREPARE_H
#define VLM_FORMATS_WEIGHTS_PREPARE_H

#include "formats/weights.h"

struct vlm_error;
struct vlm_pool;

enum vlm_dtype_param {
    VLM_DTYPE_AUTO = 0,   /* bf16 checkpoints: bf16 products, f32 sums; others: f32 */
    VLM_DTYPE_FLOAT32,    /* exact f32 arithmetic whatever the checkpoint (the parity tests) */
    VLM_DTYPE_BFLOAT16,   /* f32/f16 matrices converted to bf16, then as auto */
    VLM_DTYPE_FLOAT16     /* f32/bf16 matrices converted to f16, computed in f32 */
};

/* Parses a --dtype value (NULL or "" = auto; "auto", "float32", "float", "bfloat16",
 * "float16", "half", as vLLM spells them). VLM_E_INVALID naming the value otherwise. */
int vlm_dtype_param_parse(const char *s, enum vlm_dtype_param *out, struct vlm_error *err);

/* Parses a --quantization value: NULL or "" = none (*out = VLM_DT_COUNT); "q8_0", "q4_0",
 * "q4_1", "q5_0", "q5_1", "q4_k", "q5_k", "q6_k" (any case). VLM_E_INVALID otherwise. */
int vlm_quant_param_parse(const char *s, enum vlm_dtype *out, struct vlm_error *err);

/* The type a (rows, k) matrix named name gets under --quantization q: q itself, Q6_K for the
 * output head and the token embedding when q is Q4_K or Q5_K (as llama.cpp's Q4_K_M/Q5_K_M),
 * and llama.cpp's fallbacks when k is not a multiple of the block (Q4_K -> Q5_0,
 * Q5_K -> Q5_1, Q6_K -> Q8_0); VLM_DT_COUNT when nothing fits (the tensor stays as it is). */
enum vlm_dtype vlm_quant_type_for(enum vlm_dtype q, const char *name, int64_t k);

/* Applies dtype, then (q != VLM_DT_COUNT) quantizes every 2-D matrix but position embeddings
 * and matrices used transposed (Gemma 3's mm_input_projection_weight, kept as dtype says),
 * over the pool. Converted tensors live in memory owned by the map. VLM_E_NOMEM on failure. */
int vlm_weights_prepare(struct vlm_weights *w, enum vlm_dtype_param dtype, enum vlm_dtype q,
                        struct vlm_pool *pool, struct vlm_error *err);

#endif
