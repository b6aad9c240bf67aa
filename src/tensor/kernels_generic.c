/* kernels_generic.c — the scalar reference of every kernel: plain loops, f32 accumulation in
 * index order (double where it buys accuracy cheaply: norms). SIMD variants are tested
 * against these, and VLM_FORCE_GENERIC=1 runs them. */
#include "tensor/kernels.h"

#include <math.h>

static float load_w(enum vlm_dtype wt, const void *w, size_t idx) {
    switch (wt) {
    case VLM_DT_F32: return ((const float *)w)[idx];
    case VLM_DT_F16: return vlm_f16_to_f32(((const uint16_t *)w)[idx]);
    case VLM_DT_BF16: return vlm_bf16_to_f32(((const uint16_t *)w)[idx]);
    default: return NAN;
    }
}

static void matmul_generic(const float *x, int ldx, int m, int k, enum vlm_dtype wt,
                           const void *w, size_t ldw, int n0, int n1, const float *bias,
                           float *y, int ldy, int m_total, int bf16) {
    (void)m_total;
    (void)bf16;
    for (int i = 0; i < m; i++) {
        const float *xi = x + (size_t)i * ldx;
        for (int j = n0; j < n1; j++) {
            size_t base = (size_t)j * ldw;
            float s = 0.0f;
            for (int t = 0; t < k; t++) s += xi[t] * load_w(wt, w, base + t);
            y[(size_t)i * ldy + j] = bias ? s + bias[j] : s;
        }
    }
}

void vlm_gemm_f32_generic(int m, int n, int k, const float *a, size_t a_rs, size_t a_ks,
                          const float *b, size_t ldb, float *c, size_t ldc, int acc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0.0f;
            for (int t = 0; t < k; t++) s += a[i * a_rs + t * a_ks] * b[t * ldb + j];
            c[i * ldc + j] = acc ? c[i * ldc + j] + s : s;
        }
}

static void col_max_generic(const float *x, int rows, int n, size_t ld, float *mx) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < n; j++)
            if (x[i * ld + j] > mx[j]) mx[j] = x[i * ld + j];
}

static void exp_cols_generic(float *x, int rows, int n, size_t ld, const float *sub, float *colsum) {
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < n; j++) {
            float e = expf(x[i * ld + j] - sub[j]);
            x[i * ld + j] = e;
            colsum[j] += e;
        }
}

static float dot_generic(const float *a, const float *b, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* Row t of a KV array of dtype kt as f32 (d <= 512 elements). */
static const float *kv_row(float *buf, const void *base, enum vlm_dtype kt, size_t ld, int t, int d) {
    if (kt == VLM_DT_F32) return (const float *)base + (size_t)t * ld;
    const uint16_t *h = (const uint16_t *)base + (size_t)t * ld;
    for (int i = 0; i < d; i++) buf[i] = kt == VLM_DT_BF16 ? vlm_bf16_to_f32(h[i]) : vlm_f16_to_f32(h[i]);
    return buf;
}

static void dots_generic(float *s, const float *q, const void *k, enum vlm_dtype kt, size_t ld, int n, int d) {
    float buf[512];
    for (int t = 0; t < n; t++) s[t] = dot_generic(q, kv_row(buf, k, kt, ld, t, d), d);
}

static void axpy_generic(float *y, float a, const float *x, int n);

static void axpys_generic(float *acc, const float *p, const void *v, enum vlm_dtype kt, size_t ld, int n, int d) {
    float buf[512];
    for (int t = 0; t < n; t++) axpy_generic(acc, p[t], kv_row(buf, v, kt, ld, t, d), d);
}

static void axpy_generic(float *y, float a, const float *x, int n) {
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

static void scale_generic(float *x, float a, int n) {
    for (int i = 0; i < n; i++) x[i] *= a;
}

/* HF LlamaRMSNorm: x * rsqrt(mean(x^2) + eps) * w, in f32. */
static void rmsnorm_generic(float *y, const float *x, const float *w, int n, float eps) {
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) y[i] = x[i] * r * (w ? w[i] : 1.0f);
}

/* torch LayerNorm: biased variance over the row. */
static void layernorm_generic(float *y, const float *x, const float *w, const float *b, int n,
                              float eps) {
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < n; i++) mean += x[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= n;
    float r = (float)(1.0 / sqrt(var + eps)), mu = (float)mean;
    for (int i = 0; i < n; i++) {
        float v = (x[i] - mu) * r;
        y[i] = v * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
    }
}

static void softmax_generic(float *x, int n) {
    if (n <= 0) return;
    float mx = x[0];
    for (int i = 1; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = (float)(1.0 / sum);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static float exp_sum_generic(float *x, float sub, int n) {
    float s = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - sub);
        s += x[i];
    }
    return s;
}

float vlm_gelu_erf_1(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

float vlm_gelu_tanh_1(float x) {
    const float c = 0.79788456080286536f; /* sqrt(2/pi) */
    return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
}

static void gelu_tanh_generic(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = vlm_gelu_tanh_1(x[i]);
}

static void gelu_erf_generic(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = vlm_gelu_erf_1(x[i]);
}

static void silu_generic(float *x, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] = x[i] / (1.0f + expf(-x[i]));
}

static void silu_mul_generic(float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void add_generic(float *y, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static void bf16_to_f32_generic(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = vlm_bf16_to_f32(src[i]);
}

static void f16_to_f32_generic(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = vlm_f16_to_f32(src[i]);
}

static double fma_loop_generic(float *acc, long iters) {
    float a[8];
    for (int i = 0; i < 8; i++) a[i] = acc[i];
    const float m = 0.999f, c = 0.001f;
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 8; i++) a[i] = a[i] * m + c;
    for (int i = 0; i < 8; i++) acc[i] = a[i];
    return 16.0 * (double)iters;
}

void vlm_kernels_init_generic(struct vlm_kernels *k) {
    k->name = "generic";
    k->matmul = matmul_generic;
    k->gemm_f32 = vlm_gemm_f32_generic;
    k->col_max = col_max_generic;
    k->exp_cols = exp_cols_generic;
    k->dot = dot_generic;
    k->axpy = axpy_generic;
    k->dots = dots_generic;
    k->axpys = axpys_generic;
    k->scale = scale_generic;
    k->rmsnorm = rmsnorm_generic;
    k->layernorm = layernorm_generic;
    k->softmax = softmax_generic;
    k->exp_sum = exp_sum_generic;
    k->gelu_tanh = gelu_tanh_generic;
    k->gelu_erf = gelu_erf_generic;
    k->silu = silu_generic;
    k->silu_mul = silu_mul_generic;
    k->add = add_generic;
    k->bf16_to_f32 = bf16_to_f32_generic;
    k->f16_to_f32 = f16_to_f32_generic;
    k->fma_loop = fma_loop_generic;
    vlm_kernels_init_q_generic(k);
}
