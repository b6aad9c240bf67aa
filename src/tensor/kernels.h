/* kernels.h — the kernel table: one struct of function pointers per instruction set
 * (generic scalar reference, AVX2+FMA, AVX-512), chosen once from CPUID. The tensor.h entry
 * points dispatch through vlm_kernels(); tests walk every variant against the generic one. */
#ifndef VLM_TENSOR_KERNELS_H
#define VLM_TENSOR_KERNELS_H

#include "tensor/tensor.h"

#include <stddef.h>
#include <stdint.h>

/* Activations quantized for the integer dot products with block-type weights (llama.cpp
 * quantizes them to q8_0 / q8_K blocks; here the scale stays f32 and is per 32 elements for
 * every weight type). Row i of k elements (k a multiple of 32): int8 q at q + i*k; per 32
 * elements d at d + i*k/32, x ~= d*q with d = amax/127 and q = x*(1/d) rounded half to even;
 * per 16 elements the sum of q at s + i*k/16 (the weight types with an offset or a min need
 * it). Made by vlm_q8_act_quantize, the same bytes whatever the kernel table. */
struct vlm_q8_act {
    int8_t  *q;
    float   *d;
    int16_t *s;
    int      k;
};

struct vlm_kernels {
    const char *name;   /* "generic", "avx2", "avx512" */
    /* y[i*ldy + j] = sum_t x[i*ldx + t] * W[j*ldw + t] (+ bias[j]) for i < m, n0 <= j < n1.
     * wt is F32, F16 or BF16; ldw in elements. Handles both the few-row (decode) case and the
     * many-row (prefill, vision) case; the caller splits the work over threads and passes the
     * whole call's row count m_total (>= m), from which alone the path is chosen, so a split
     * never changes a result. bf16: x already holds bf16 values (VLM_COMPUTE_BF16) and W is
     * BF16, so a table may use bf16 dot-product instructions (exact products, f32 sums). */
    void (*matmul)(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w,
                   size_t ldw, int n0, int n1, const float *bias, float *y, int ldy,
                   int m_total, int bf16);
    /* Block-type weights: y[i*ldy + j] = sum over t of xa row (i0+i)[t] * W[j][t] (+ bias[j])
     * for i < m, n0 <= j < n1, W rows of type wt (Q8_0 .. Q6_K) ldw bytes apart, k = xa->k.
     * Each y element is computed by the same operations whatever m, n0, n1 (so whatever the
     * thread split): block by block, integer dot products of the levels with q scaled per 16
     * or 32 elements in f32. */
    void (*matmul_q)(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt,
                     const void *w, size_t ldw, int n0, int n1, const float *bias, float *y,
                     int ldy);
    /* The same product, bit for bit, for calls of many rows (the driver picks it from the
     * whole call's row count): the weights unpacked once per call and reused over every row
     * instead of once per 4 rows. */
    void (*gemm_q)(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt,
                   const void *w, size_t ldw, int n0, int n1, const float *bias, float *y,
                   int ldy);
    /* vlm_q8_act_quantize (below), byte for byte, in the table's instructions. */
    void (*q8_act_quantize)(const struct vlm_q8_act *xa, const float *x, int ldx, int r0, int r1);
    /* dst[i] = src[i] rounded to bf16 precision exactly as vlm_f32_to_bf16 (RNE, NaN made
     * quiet), as f32; the activations of VLM_COMPUTE_BF16 products. */
    void (*round_bf16)(float *dst, const float *src, size_t n);
    /* C (m, n) = A (m, k) @ B (k, n) (acc = 0) or C += A @ B (acc = 1), all f32.
     * A(i, t) at a[i*a_rs + t*a_ks] (fast when a_ks == 1 or a_rs == 1), B(t, j) at
     * b[t*ldb + j], C(i, j) at c[i*ldc + j]. Single-threaded (attention's blocks). */
    void (*gemm_f32)(int m, int n, int k, const float *a, size_t a_rs, size_t a_ks,
                     const float *b, size_t ldb, float *c, size_t ldc, int acc);
    /* Column-wise softmax steps over x (rows, n), row stride ld:
     * col_max: mx[j] = max(mx[j], x[i][j]) over i;
     * exp_cols: x[i][j] = exp(x[i][j] - sub[j]) (0 for -inf), colsum[j] += the new x[i][j]. */
    void (*col_max)(const float *x, int rows, int n, size_t ld, float *mx);
    void (*exp_cols)(float *x, int rows, int n, size_t ld, const float *sub, float *colsum);
    float (*dot)(const float *a, const float *b, int n);
    void (*axpy)(float *y, float a, const float *x, int n);     /* y += a*x */
    void (*scale)(float *x, float a, int n);                     /* x *= a */
    /* Attention rows over a KV cache of dtype kt (F32, F16 or BF16), rows ld elements apart:
     * s[t] = dot(q, row t of k) over d, for t < n (dots);
     * acc[0..d) += sum over t < n of p[t] * row t of v (axpys). */
    void (*dots)(float *s, const float *q, const void *k, enum vlm_dtype kt, size_t ld, int n, int d);
    void (*axpys)(float *acc, const float *p, const void *v, enum vlm_dtype kt, size_t ld, int n, int d);
    /* One row each: */
    void (*rmsnorm)(float *y, const float *x, const float *w, int n, float eps);
    void (*layernorm)(float *y, const float *x, const float *w, const float *b, int n, float eps);
    void (*softmax)(float *x, int n);
    /* x[i] = exp(x[i] - sub) (0 for x[i] = -inf); returns the sum of the new x. */
    float (*exp_sum)(float *x, float sub, int n);
    /* Elementwise over n: */
    void (*gelu_tanh)(float *x, size_t n);
    void (*gelu_erf)(float *x, size_t n);
    void (*silu)(float *x, size_t n);
    void (*gelu_quick)(float *x, size_t n);   /* x * sigmoid(1.702 x): CLIP's quick_gelu */
    void (*silu_mul)(float *gate, const float *up, size_t n);
    void (*add)(float *y, const float *x, size_t n);
    void (*bf16_to_f32)(float *dst, const uint16_t *src, size_t n);
    void (*f16_to_f32)(float *dst, const uint16_t *src, size_t n);
    /* Peak-FLOP probe: iters rounds of independent FMAs on registers; returns the FLOPs done
     * (2 per lane per FMA). acc (16 floats) seeds and receives the accumulators. */
    double (*fma_loop)(float *acc, long iters);
};

/* The table in use: the best the CPU supports, or the generic one when VLM_FORCE_GENERIC=1.
 * Chosen on first call (thread-safe), never changes afterwards. */
const struct vlm_kernels *vlm_kernels(void);

/* Variant i (0 generic, 1 avx2, 2 avx512, 3 avx512bf16) if this CPU runs it, else NULL; i past
 * the last returns NULL. For tests and benchmarks. avx512bf16 differs from avx512 only where
 * the driver asks for bf16 arithmetic (vdpbf16ps for bf16-weight GEMMs of >= 128 rows); it is
 * chosen only on request (VLM_KERNELS=avx512bf16). */
const struct vlm_kernels *vlm_kernels_variant(int i);
#define VLM_KERNELS_N_VARIANTS 4

/* The variant tables (kernels_<isa>.c). Each starts as a copy of the generic one and overrides
 * what it has: vlm_kernels_init_<isa>(&table). */
void vlm_kernels_init_generic(struct vlm_kernels *k);
void vlm_kernels_init_q_generic(struct vlm_kernels *k);    /* matmul_q (kernels_q_generic.c) */
void vlm_kernels_init_avx2(struct vlm_kernels *k);
void vlm_kernels_init_avx512(struct vlm_kernels *k);
void vlm_kernels_init_avx512bf16(struct vlm_kernels *k);
/* matmul_q of the AVX2 table (kernels_q_avx2.c). */
void vlm_kernels_init_q_avx2(struct vlm_kernels *k);
/* gemm_q and q8_act_quantize of the AVX2 table (kernels_gemm_q_avx2.c). */
void vlm_kernels_init_gemm_q_avx2(struct vlm_kernels *k);
/* matmul_q of the AVX-512 table, with vpdpbusd when vnni (kernels_q_avx512.c). */
void vlm_kernels_init_q_avx512(struct vlm_kernels *k, int vnni);
/* gemm_q of the AVX-512 table (kernels_gemm_q_avx512.c), with vpdpbusd when vnni; called by
 * vlm_kernels_init_q_avx512. */
void vlm_kernels_init_gemm_q_avx512(struct vlm_kernels *k, int vnni);
/* That table's matmul_q with and without vpdpbusd (the gemm_q's fallback for types it does not
 * tile). */
void vlm_matmul_q_avx512_vnni(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt,
                              const void *w, size_t ldw, int n0, int n1, const float *bias,
                              float *y, int ldy);
void vlm_matmul_q_avx512_novnni(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt,
                                const void *w, size_t ldw, int n0, int n1, const float *bias,
                                float *y, int ldy);

/* xa rows [r0, r1) = x rows [r0, r1) (row i at x + i*ldx) quantized as struct vlm_q8_act
 * says (scalar, identical for every table). */
void vlm_q8_act_quantize(const struct vlm_q8_act *xa, const float *x, int ldx, int r0, int r1);

/* vlm_attention with a given table (tests run every variant). */
struct vlm_pool;
void vlm_attention_with(const struct vlm_kernels *kt, struct vlm_pool *pool, float *out,
                        const float *q, int n_q, const void *k, const void *v, enum vlm_dtype kv_type,
                        int n_kv, int n_head, int n_kv_head, int head_dim, size_t kv_row_stride,
                        float scale, int causal, int q_pos0, const uint8_t *kv_mask);
struct vlm_attn_spans;
void vlm_attention_spans_with(const struct vlm_kernels *kt, struct vlm_pool *pool, float *out,
                              const float *q, int n_q, const void *k, const void *v, enum vlm_dtype kv_type,
                              int n_kv, int n_head, int n_kv_head, int head_dim, size_t kv_row_stride,
                              float scale, const struct vlm_attn_spans *sp);

/* Scalar helpers shared by the variants (kernels_generic.c). */
float vlm_gelu_erf_1(float x);
float vlm_gelu_tanh_1(float x);
void  vlm_gemm_f32_generic(int m, int n, int k, const float *a, size_t a_rs, size_t a_ks,
                           const float *b, size_t ldb, float *c, size_t ldc, int acc);

#endif
