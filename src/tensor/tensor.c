/* tensor.c — the tensor.h entry points: dtype facts and conversions, the matmul driver that
 * splits work over the thread pool and calls the chosen kernel table, row-wise ops, RoPE,
 * and the vision helpers (im2col patches, pixel shuffle). */
#include "tensor/tensor.h"

#include "tensor/kernels.h"
#include "tensor/quant.h"
#include "util/alloc.h"
#include "util/threadpool.h"

#include <math.h>
#include <string.h>

const char *vlm_dtype_name(enum vlm_dtype t) {
    static const char *names[VLM_DT_COUNT] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1",
                                                "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"};
    return (unsigned)t < VLM_DT_COUNT ? names[t] : "?";
}

int64_t vlm_tensor_nelements(const struct vlm_tensor *t) {
    if (!t || t->n_dims <= 0) return 0;
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->ne[i];
    return n;
}

size_t vlm_dtype_size(enum vlm_dtype t) {
    switch (t) {
    case VLM_DT_F32: return 4;
    case VLM_DT_F16:
    case VLM_DT_BF16: return 2;
    default: return 0;
    }
}

static const struct { int elems; int bytes; } dtype_blocks[VLM_DT_COUNT] = {
    [VLM_DT_F32] = {1, 4},    [VLM_DT_F16] = {1, 2},    [VLM_DT_BF16] = {1, 2},
    [VLM_DT_Q8_0] = {32, 34}, [VLM_DT_Q4_0] = {32, 18}, [VLM_DT_Q4_1] = {32, 20},
    [VLM_DT_Q5_0] = {32, 22}, [VLM_DT_Q5_1] = {32, 24}, [VLM_DT_Q4_K] = {256, 144},
    [VLM_DT_Q5_K] = {256, 176}, [VLM_DT_Q6_K] = {256, 210},
};

int vlm_dtype_block_elems(enum vlm_dtype t) {
    return (unsigned)t < VLM_DT_COUNT ? dtype_blocks[t].elems : 0;
}

size_t vlm_dtype_block_bytes(enum vlm_dtype t) {
    return (unsigned)t < VLM_DT_COUNT ? (size_t)dtype_blocks[t].bytes : 0;
}

size_t vlm_dtype_row_bytes(enum vlm_dtype t, int64_t n) {
    int be = vlm_dtype_block_elems(t);
    size_t r;
    if (be <= 0 || n < 0 || n % be || !vlm_mul_ok((size_t)(n / be), vlm_dtype_block_bytes(t), &r)) return 0;
    return r;
}

/* ---- conversions ---- */

float vlm_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t vlm_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float vlm_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu, u;
    if (e == 0) {
        float f = (float)m * 0x1p-24f;   /* zero or subnormal, exact */
        return sign ? -f : f;
    }
    if (e == 31) u = sign | 0x7f800000u | (m << 13);
    else u = sign | ((e + 112) << 23) | (m << 13);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

uint16_t vlm_f32_to_f16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);          /* >= 65520: inf */
    if (a < 0x38800000u) {                                              /* f16 subnormal */
        float t = fabsf(f) * 0x1p24f;
        return (uint16_t)(sign | (uint16_t)nearbyintf(t));
    }
    uint32_t h = ((a >> 23) - 112) << 10 | ((a >> 13) & 0x3ffu), rem = a & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) h++;
    return (uint16_t)(sign | h);
}

void vlm_bf16_to_f32_row(float *dst, const uint16_t *src, size_t n) {
    vlm_kernels()->bf16_to_f32(dst, src, n);
}

void vlm_f16_to_f32_row(float *dst, const uint16_t *src, size_t n) {
    vlm_kernels()->f16_to_f32(dst, src, n);
}

void vlm_f32_to_bf16_row(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = vlm_f32_to_bf16(src[i]);
}

void vlm_f32_to_f16_row(uint16_t *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = vlm_f32_to_f16(src[i]);
}

void vlm_tensor_row_f32(const struct vlm_tensor *w, int64_t r, float *dst) {
    int64_t n = w->n_dims > 0 ? w->ne[w->n_dims - 1] : 0;
    const char *base = w->data;
    switch (w->type) {
    case VLM_DT_F32: memcpy(dst, base + (size_t)r * n * 4, (size_t)n * 4); break;
    case VLM_DT_F16: vlm_f16_to_f32_row(dst, (const uint16_t *)(base + (size_t)r * n * 2), (size_t)n); break;
    case VLM_DT_BF16: vlm_bf16_to_f32_row(dst, (const uint16_t *)(base + (size_t)r * n * 2), (size_t)n); break;
    default: vlm_dequantize_row(w->type, base + (size_t)r * vlm_dtype_row_bytes(w->type, n), dst, n); break;
    }
}

/* ---- row-wise and elementwise ops ---- */

void vlm_rmsnorm(float *y, const float *x, const float *w, int rows, int n, float eps) {
    const struct vlm_kernels *kt = vlm_kernels();
    for (int r = 0; r < rows; r++) kt->rmsnorm(y + (size_t)r * n, x + (size_t)r * n, w, n, eps);
}

void vlm_layernorm(float *y, const float *x, const float *w, const float *b, int rows, int n,
                   float eps) {
    const struct vlm_kernels *kt = vlm_kernels();
    for (int r = 0; r < rows; r++)
        kt->layernorm(y + (size_t)r * n, x + (size_t)r * n, w, b, n, eps);
}

void vlm_softmax(float *x, int rows, int n) {
    const struct vlm_kernels *kt = vlm_kernels();
    for (int r = 0; r < rows; r++) kt->softmax(x + (size_t)r * n, n);
}

void vlm_gelu_tanh(float *x, size_t n) { vlm_kernels()->gelu_tanh(x, n); }
void vlm_gelu_erf(float *x, size_t n) { vlm_kernels()->gelu_erf(x, n); }
void vlm_silu(float *x, size_t n) { vlm_kernels()->silu(x, n); }
void vlm_silu_mul(float *gate, const float *up, size_t n) { vlm_kernels()->silu_mul(gate, up, n); }
void vlm_add(float *y, const float *x, size_t n) { vlm_kernels()->add(y, x, n); }

/* ---- RoPE ---- */

void vlm_rope_inv_freq(const struct vlm_rope_params *p, int seq_len, float *inv_freq) {
    int dim = p->rot_dim, half = dim / 2;
    double base = p->theta;
    if (p->type == VLM_ROPE_DYNAMIC && p->max_pos > 0 && seq_len > p->max_pos && dim > 2) {
        double f = p->factor;
        base = base * pow(f * seq_len / p->max_pos - (f - 1.0), (double)dim / (dim - 2));
    }
    for (int i = 0; i < half; i++) {
        /* torch: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), all in f32 */
        float e = (float)(2 * i) / (float)dim;
        float f = 1.0f / powf((float)base, e);
        inv_freq[i] = f;
    }
    if (p->type == VLM_ROPE_LINEAR && p->factor > 0) {
        for (int i = 0; i < half; i++) inv_freq[i] /= p->factor;
    } else if (p->type == VLM_ROPE_LLAMA3 && p->factor > 0) {
        double old = p->original_max_pos, lf = p->low_freq_factor, hf = p->high_freq_factor;
        double low_wl = old / lf, high_wl = old / hf;
        for (int i = 0; i < half; i++) {
            double f = inv_freq[i], wl = 2.0 * M_PI / f;
            double g = wl > low_wl ? f / p->factor : f;
            if (!(wl < high_wl) && !(wl > low_wl)) {
                double s = (old / wl - lf) / (hf - lf);
                g = (1.0 - s) * g / p->factor + s * g;
            }
            inv_freq[i] = (float)g;
        }
    }
}

void vlm_rope_apply(float *x, int n_tok, int n_head, int head_dim, const int32_t *pos,
                    const float *inv_freq, int rot_dim, float attn_scale) {
    int half = rot_dim / 2;
    float cs[256], sn[256];
    if (half > 256) half = 256;
    for (int t = 0; t < n_tok; t++) {
        for (int i = 0; i < half; i++) {
            float a = (float)pos[t] * inv_freq[i];   /* f32 product, as torch's freqs */
            cs[i] = cosf(a) * attn_scale;
            sn[i] = sinf(a) * attn_scale;
        }
        for (int h = 0; h < n_head; h++) {
            float *v = x + ((size_t)t * n_head + h) * head_dim;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * cs[i] - b * sn[i];
                v[i + half] = b * cs[i] + a * sn[i];
            }
        }
    }
}

void vlm_rope(float *x, int n_tok, int n_head, int head_dim, const int32_t *pos, float theta,
              int rot_dim) {
    struct vlm_rope_params p = {.type = VLM_ROPE_DEFAULT, .theta = theta,
                                .rot_dim = rot_dim > 0 ? rot_dim : head_dim};
    if (p.rot_dim > 512) p.rot_dim = 512;
    float inv[256];
    vlm_rope_inv_freq(&p, 0, inv);
    vlm_rope_apply(x, n_tok, n_head, head_dim, pos, inv, p.rot_dim, 1.0f);
}

/* ---- vision helpers ---- */

void vlm_im2col_patches(float *cols, const float *img, int C, int H, int W, int p) {
    int gh = H / p, gw = W / p;
    size_t row = (size_t)C * p * p;
    for (int py = 0; py < gh; py++)
        for (int px = 0; px < gw; px++) {
            float *dst = cols + ((size_t)py * gw + px) * row;
            for (int c = 0; c < C; c++)
                for (int dy = 0; dy < p; dy++) {
                    const float *src = img + ((size_t)c * H + (size_t)py * p + dy) * W + (size_t)px * p;
                    memcpy(dst, src, (size_t)p * sizeof *dst);
                    dst += p;
                }
        }
}

void vlm_conv2d_patch(struct vlm_pool *pool, float *out, const float *img, int C, int H, int W,
                      int p, const struct vlm_tensor *w, const float *bias, float *scratch) {
    int n_patches = (H / p) * (W / p), k = C * p * p;
    vlm_im2col_patches(scratch, img, C, H, W, p);
    struct vlm_tensor w2 = *w;   /* (d, C, p, p) as (d, C*p*p), compute mode kept */
    w2.n_dims = 2;
    w2.ne[1] = k;
    vlm_matmul(pool, scratch, n_patches, &w2, bias, out);
}

void vlm_pixel_shuffle(float *y, const float *x, int seq, int d, int s) {
    int side = (int)lround(sqrt((double)seq)), os = side / s;
    for (int i = 0; i < os; i++)
        for (int j = 0; j < os; j++) {
            float *dst = y + ((size_t)i * os + j) * (size_t)d * s * s;
            for (int a = 0; a < s; a++)
                for (int b = 0; b < s; b++) {
                    const float *src = x + ((size_t)(i * s + a) * side + (size_t)(j * s + b)) * d;
                    memcpy(dst, src, (size_t)d * sizeof *dst);
                    dst += d;
                }
        }
}
