/* quant.h — ggml block types as data: dequantization of every vlm_dtype to f32 (bit-identical
 * to gguf-py's gguf.quants.dequantize) and reference quantizers from f32 (Q8_0 .. Q5_1 equal to
 * gguf-py's; Q4_K/Q5_K/Q6_K following llama.cpp's *_ref quantizers). The GGUF writer, the
 * on-load --quantization and the embedding lookup use these; the matmul kernels never do. */
#ifndef VLM_TENSOR_QUANT_H
#define VLM_TENSOR_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

struct vlm_pool;

/* dst (n,) f32 = the n elements at src stored as t (F32, F16, BF16 or any block type).
 * n must be a multiple of vlm_dtype_block_elems(t) (the caller checks; a tail is left
 * untouched). Not a hot path: scalar, exactly gguf-py's arithmetic (f32, no fused ops). */
void vlm_dequantize_row(enum vlm_dtype t, const void *src, float *dst, int64_t n);

/* Whether vlm_quantize_row can produce t: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K,
 * Q5_K, Q6_K (every type today). */
int vlm_quantize_supported(enum vlm_dtype t);

/* dst (vlm_dtype_row_bytes(t, n) bytes) = src (n,) f32 quantized as t. Returns VLM_OK, or
 * VLM_E_INVALID when t is unknown or n is not a multiple of t's block size (nothing written).
 * Deterministic and thread-safe (no state). Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, F16 and BF16 equal
 * gguf.quants.quantize byte for byte; Q4_K, Q5_K, Q6_K follow llama.cpp's
 * quantize_row_q{4,5,6}_K_ref (no importance matrix). */
int vlm_quantize_row(enum vlm_dtype t, const float *src, int64_t n, void *dst);

/* dst = src (rows, n) converted to t, row by row over the pool (NULL = calling thread).
 * src_type is F32, F16 or BF16 (rows are dequantized to f32 first); src rows are
 * vlm_dtype_row_bytes(src_type, n) apart, dst rows vlm_dtype_row_bytes(t, n) apart.
 * Returns VLM_OK or VLM_E_INVALID (as vlm_quantize_row), VLM_E_NOMEM. */
int vlm_quantize_rows(struct vlm_pool *pool, enum vlm_dtype t, void *dst, enum vlm_dtype src_type,
                      const void *src, int64_t rows, int64_t n);

/* For the integer-dot kernels (kernels_q_*.c): block b of type t (a block type) as levels and
 * affine factors per 16 elements: element e is a[e/16] * v[e] + c[e/16] (in exact arithmetic;
 * dequantize_row rounds as gguf-py does instead). v holds vlm_dtype_block_elems(t) levels
 * (signed for Q8_0, 0..63 otherwise), a and c one entry per 16 elements. */
void vlm_q_unpack(enum vlm_dtype t, const uint8_t *b, int16_t *v, float *a, float *c);

#endif
