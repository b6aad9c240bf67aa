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
    /* GGUF/ggml block types, laid out byte for byte as ggml stores them (a row of n elements is
     * n / block_elems blocks of block_bytes): */
    VLM_DT_Q8_0,     /* 32 elems, 34 bytes: f16 d, int8 q[32] */
    VLM_DT_Q4_0,     /* 32 elems, 18 bytes: f16 d, 4-bit q[16] */
    VLM_DT_Q4_1,     /* 32 elems, 20 bytes: f16 d, f16 m, 4-bit q[16] */
    VLM_DT_Q5_0,     /* 32 elems, 22 bytes: f16 d, 32 high bits, 4-bit q[16] */
    VLM_DT_Q5_1,     /* 32 elems, 24 bytes: f16 d, f16 m, 32 high bits, 4-bit q[16] */
    VLM_DT_Q4_K,     /* 256 elems, 144 bytes */
    VLM_DT_Q5_K,     /* 256 elems, 176 bytes */
    VLM_DT_Q6_K,     /* 256 elems, 210 bytes */
    VLM_DT_COUNT
};

/* How vlm_matmul multiplies f32 activations by a weight (what vLLM's --dtype decides):
 * F32: exact f32 products (bf16/f16 weights widened); BF16: activations rounded to bf16 (RNE),
 * bf16 x bf16 products (exact in f32) summed in f32, as transformers, vLLM and llama.cpp
 * compute a bf16 checkpoint. Block-type weights always use int8 activations (kernels.h). */
enum vlm_compute {
    VLM_COMPUTE_F32 = 0,
    VLM_COMPUTE_BF16
};
#define VLM_MAX_DIMS 5   /* a Conv3d weight (out, in, t, h, w) is the largest a model holds */

/* A view of n-dimensional data, row-major, shape as written in the file:
 * ne[0] is the outermost dimension, ne[n_dims-1] the innermost (contiguous) one.
 * A torch Linear weight (out_features, in_features) has ne = {out, in}. */
struct vlm_tensor {
    enum vlm_dtype type;
    int            n_dims;
    int64_t        ne[VLM_MAX_DIMS];
    const void    *data;
    size_t         nbytes;
    enum vlm_compute compute;   /* vlm_matmul's arithmetic; 0 (F32) unless the loader sets it */
};

const char *vlm_dtype_name(enum vlm_dtype t);
/* Number of elements; 0 for an empty tensor. */
int64_t vlm_tensor_nelements(const struct vlm_tensor *t);

struct vlm_pool;  /* thread pool (util/threadpool.h) */

/* y (m, n) = x (m, k) @ W^T + bias, W a (n, k) tensor of any dtype (block types included),
 * computed as W->compute says, bias (n,) f32 or NULL. Parallel over the pool (NULL = the
 * calling thread only); the result does not depend on the number of threads. The one
 * GEMM/GEMV entry the models use: m == 1 is the bandwidth-bound decode case, large m the
 * compute-bound one. On a failed scratch allocation (block types) y is filled with NaN. */
void vlm_matmul(struct vlm_pool *pool, const float *x, int m, const struct vlm_tensor *w,
                const float *bias, float *y);

/* Several products of the same x (m, k) in one pool run (q, k, v; gate, up): y[i] = x @ W[i]^T
 * + bias[i] for i < np (np <= 3), each exactly as vlm_matmul would compute it. For the
 * few-row decode case each pool run ends in a barrier, so fewer runs per layer is faster. */
void vlm_matmul_multi(struct vlm_pool *pool, const float *x, int m, int np,
                      const struct vlm_tensor *const *w, const float *const *bias, float *const *y);

/* Row-wise ops on x (rows, n), in place unless stated. */
void vlm_rmsnorm(float *y, const float *x, const float *w, int rows, int n, float eps);      /* y = x/rms(x)*w */
void vlm_layernorm(float *y, const float *x, const float *w, const float *b, int rows, int n, float eps);
void vlm_softmax(float *x, int rows, int n);
void vlm_gelu_tanh(float *x, size_t n);
void vlm_gelu_erf(float *x, size_t n);
void vlm_silu(float *x, size_t n);
void vlm_gelu_quick(float *x, size_t n);                   /* x * sigmoid(1.702 x) */
void vlm_silu_mul(float *gate, const float *up, size_t n);   /* gate = silu(gate) * up */
void vlm_add(float *y, const float *x, size_t n);            /* y += x */

/* Converts a tensor row of any dtype to f32: dst (n,) = row r of W (rows, n), block types
 * dequantized exactly as gguf-py does (tensor/quant.h). The embedding lookup. */
void vlm_tensor_row_f32(const struct vlm_tensor *w, int64_t r, float *dst);

/* Bytes of one element for f32/f16/bf16, 0 for block types (use vlm_dtype_row_bytes). */
size_t vlm_dtype_size(enum vlm_dtype t);
/* Elements per block (1 for f32/f16/bf16) and bytes per block; 0 for an unknown type. */
int    vlm_dtype_block_elems(enum vlm_dtype t);
size_t vlm_dtype_block_bytes(enum vlm_dtype t);
/* Bytes of a row of n elements of t (0 if n does not fit t's block size or t is unknown). */
size_t vlm_dtype_row_bytes(enum vlm_dtype t, int64_t n);
/* Whether vlm_matmul accepts weights of dtype t (every vlm_dtype). */
int vlm_matmul_supported(enum vlm_dtype t);

/* Same as vlm_matmul (f32 arithmetic) with explicit row strides (in elements): x row i at
 * x + i*ldx, W row j at row j*ldw elements in (for block types a multiple of the block size),
 * y row i at y + i*ldy. Lets a head of a packed QKV projection or a KV-cache slice be used as a
 * matrix. */
void vlm_matmul_strided(struct vlm_pool *pool, const float *x, int ldx, int m, int k,
                        enum vlm_dtype wt, const void *w, size_t ldw, int n,
                        const float *bias, float *y, int ldy);

/* ---- dtype conversion (round-to-nearest-even, NaN kept quiet) ---- */
float    vlm_bf16_to_f32(uint16_t h);
uint16_t vlm_f32_to_bf16(float f);
float    vlm_f16_to_f32(uint16_t h);
uint16_t vlm_f32_to_f16(float f);
void vlm_bf16_to_f32_row(float *dst, const uint16_t *src, size_t n);
void vlm_f16_to_f32_row(float *dst, const uint16_t *src, size_t n);
void vlm_f32_to_bf16_row(uint16_t *dst, const float *src, size_t n);
void vlm_f32_to_f16_row(uint16_t *dst, const float *src, size_t n);

/* ---- rotary position embedding ---- */

enum vlm_rope_type {
    VLM_ROPE_DEFAULT = 0,  /* inv_freq[i] = theta^(-2i/rot_dim) */
    VLM_ROPE_LINEAR,       /* inv_freq / factor */
    VLM_ROPE_DYNAMIC,      /* dynamic NTK: theta grows once seq_len > max_position_embeddings */
    VLM_ROPE_LLAMA3        /* Llama 3.1 wavelength-banded scaling */
};

/* The `rope_theta` / `rope_scaling` (or `rope_parameters`) of a config, as transformers reads
 * them (modeling_rope_utils.py). Zero-initialize, then set what the config has. */
struct vlm_rope_params {
    enum vlm_rope_type type;
    float theta;                 /* rope_theta (base) */
    int   rot_dim;               /* rotated dims: head_dim * partial_rotary_factor (even) */
    float factor;                /* linear / dynamic / llama3 */
    float low_freq_factor;       /* llama3 */
    float high_freq_factor;      /* llama3 */
    int   original_max_pos;      /* llama3: original_max_position_embeddings */
    int   max_pos;               /* dynamic: max_position_embeddings */
    float attention_factor;      /* multiplies cos and sin; 0 means 1 */
};

/* Fills inv_freq (rot_dim/2,) for p; seq_len matters only for VLM_ROPE_DYNAMIC (the longest
 * sequence seen, as transformers' dynamic update uses). Computed in f32 like torch. */
void vlm_rope_inv_freq(const struct vlm_rope_params *p, int seq_len, float *inv_freq);

/* Applies RoPE in place to x (n_tok, n_head, head_dim), HF Llama "rotate_half" layout:
 * for i < rot_dim/2, (x[i], x[i+rot_dim/2]) is rotated by angle pos[t]*inv_freq[i]; dims past
 * rot_dim are left as they are. attn_scale multiplies cos/sin (1 for most models). */
void vlm_rope_apply(float *x, int n_tok, int n_head, int head_dim, const int32_t *pos,
                    const float *inv_freq, int rot_dim, float attn_scale);

/* RoPE whose rotation pairs take their positions from several axes (Qwen2-VL's M-RoPE over
 * t/h/w, its vision tower's 2-D h/w rotary): pairs [0, sections[0]) use pos[t*n_sec + 0], the
 * next sections[1] pairs pos[t*n_sec + 1], and so on; the sections cover head_dim/2 pairs.
 * Pair i rotates (x[i], x[i + head_dim/2]) by pos * inv_freq[i], inv_freq (head_dim/2), the
 * product in f32 as torch's freqs. x (n_tok, n_head, head_dim) in place; head_dim <= 512. */
void vlm_rope_apply_sections(float *x, int n_tok, int n_head, int head_dim, const int32_t *pos, int n_sec,
                             const int *sections, const float *inv_freq);

/* Plain RoPE with base theta (rot_dim <= 0 means head_dim); rot_dim <= 512. */
void vlm_rope(float *x, int n_tok, int n_head, int head_dim, const int32_t *pos, float theta,
              int rot_dim);

/* ---- attention ---- */

/* Scaled dot-product attention, softmax in f32 (max-subtracted, online).
 * q (n_q, n_head, head_dim) contiguous; k and v rows of n_kv_head*head_dim floats with
 * kv_row_stride floats between consecutive rows (key j of kv head g at k + j*stride + g*hd);
 * out (n_q, n_head*head_dim). GQA: query head h uses kv head h / (n_head/n_kv_head), as
 * transformers' repeat_kv. causal: query i sits at absolute position q_pos0 + i and sees keys
 * 0 .. q_pos0+i (keys past n_kv are never read). kv_mask (n_kv,) 0 = key hidden, NULL = all
 * visible. A query that sees no key gets zeros. head_dim <= 512. Parallel over the pool. */
void vlm_attention(struct vlm_pool *pool, float *out, const float *q, int n_q, const float *k,
                   const float *v, int n_kv, int n_head, int n_kv_head, int head_dim,
                   size_t kv_row_stride, float scale, int causal, int q_pos0,
                   const uint8_t *kv_mask);
/* The same over K and V stored as kv_type (F32, F16 or BF16: a KV cache), stride in elements;
 * products and softmax stay in f32. */
void vlm_attention_kv(struct vlm_pool *pool, float *out, const float *q, int n_q, const void *k,
                      const void *v, enum vlm_dtype kv_type, int n_kv, int n_head, int n_kv_head,
                      int head_dim, size_t kv_row_stride, float scale, int causal, int q_pos0,
                      const uint8_t *kv_mask);

/* Attention where each query has its own range of visible keys and scores may be soft-capped
 * (Gemma 2/3: sliding windows, image tokens that see their whole image). Query i sees keys
 * [lo[i], hi[i]) (clipped to [0, n_kv)); an empty range gives zeros. softcap > 0 turns each
 * scaled score s into softcap * tanh(s / softcap) before the softmax; 0 leaves it. */
struct vlm_attn_spans {
    const int32_t *lo, *hi;   /* (n_q) each */
    float softcap;
};
void vlm_attention_spans(struct vlm_pool *pool, float *out, const float *q, int n_q, const void *k,
                         const void *v, enum vlm_dtype kv_type, int n_kv, int n_head, int n_kv_head,
                         int head_dim, size_t kv_row_stride, float scale, const struct vlm_attn_spans *sp);

/* ---- vision helpers ---- */

/* Patch embedding input: img (C, H, W) f32 planar -> cols (n_patches, C*p*p), patches in
 * row-major order over the (H/p, W/p) grid, each patch flattened in (c, dy, dx) order, the
 * layout of a Conv2d weight (d, C, p, p). Then vlm_matmul(cols, n_patches, W as (d, C*p*p),
 * bias) is Conv2d(kernel = stride = p, no padding). H and W must be multiples of p. */
void vlm_im2col_patches(float *cols, const float *img, int C, int H, int W, int p);

/* Conv2d patch embedding in one call: out (n_patches, d) = im2col(img) @ W^T + bias, W a
 * (d, C*p*p) or (d, C, p, p) tensor. Needs scratch of n_patches*C*p*p floats (caller-owned). */
void vlm_conv2d_patch(struct vlm_pool *pool, float *out, const float *img, int C, int H, int W,
                      int p, const struct vlm_tensor *w, const float *bias, float *scratch);

/* Idefics3Connector.pixel_shuffle: x (seq, d), seq = side*side, side % s == 0 ->
 * y (seq/s^2, d*s^2). Output row (i, j) of the (side/s)^2 grid is the concatenation, for
 * a in [0,s) then b in [0,s), of input token (i*s + a, j*s + b). */
void vlm_pixel_shuffle(float *y, const float *x, int seq, int d, int s);

#endif
