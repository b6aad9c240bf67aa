/* tensor.h — the tensor view (dtype, shape, bytes; data is usually mmap'd weights) and the
 * compute entry points models call. Each entry dispatches through the kernel table chosen once
 * from CPU features (kernels.c); every SIMD path has a scalar reference it is tested against. */
#ifndef VLM_TENSOR_TENSOR_H
#define VLM_TENSOR_TENSOR_H

#include <stddef.h>
#include <stdint.h>

enum vlm_dtype {
    VLM_DT_F32 = 0,
    VLM_DT_F16,
    VLM_DT_BF16,
    VLM_DT_Q8_0,     /* GGUF block types: room reserved, kernels come with GGUF */
    VLM_DT_Q4_0,
    VLM_DT_Q4_K,
    VLM_DT_Q6_K,
    VLM_DT_COUNT
};

/* A view of n-dimensional data, row-major, shape as written in the file:
 * ne[0] is the outermost dimension, ne[n_dims-1] the innermost (contiguous) one.
 * A torch Linear weight (out_features, in_features) has ne = {out, in}. */
struct vlm_tensor {
    enum vlm_dtype type;
    int            n_dims;
    int64_t        ne[4];
    const void    *data;
    size_t         nbytes;
};

const char *vlm_dtype_name(enum vlm_dtype t);
/* Number of elements; 0 for an empty tensor. */
int64_t vlm_tensor_nelements(const struct vlm_tensor *t);

struct vlm_pool;  /* thread pool (util/threadpool.h) */

/* y (m, n) = x (m, k) @ W^T + bias, W a (n, k) tensor of any supported dtype, bias (n,) f32 or
 * NULL. Parallel over the pool (NULL = the calling thread only). The one GEMM/GEMV entry the
 * models use: m == 1 is the bandwidth-bound decode case, large m the compute-bound one. */
void vlm_matmul(struct vlm_pool *pool, const float *x, int m, const struct vlm_tensor *w,
                const float *bias, float *y);

/* Row-wise ops on x (rows, n), in place unless stated. */
void vlm_rmsnorm(float *y, const float *x, const float *w, int rows, int n, float eps);      /* y = x/rms(x)*w */
void vlm_layernorm(float *y, const float *x, const float *w, const float *b, int rows, int n, float eps);
void vlm_softmax(float *x, int rows, int n);
void vlm_gelu_tanh(float *x, size_t n);
void vlm_gelu_erf(float *x, size_t n);
void vlm_silu(float *x, size_t n);
void vlm_silu_mul(float *gate, const float *up, size_t n);   /* gate = silu(gate) * up */
void vlm_add(float *y, const float *x, size_t n);            /* y += x */

/* Converts a tensor row (any dtype) to f32: dst (n,) = row r of W (rows, n). */
void vlm_tensor_row_f32(const struct vlm_tensor *w, int64_t r, float *dst);

#endif
