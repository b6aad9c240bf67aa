/* kernels_avx2.c — AVX2 + FMA + F16C variants (compiled with those flags only; used when
 * CPUID reports them). Overrides entries of the generic table. */
#include "tensor/kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float dot_avx2(const float *a, const float *b, int n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    float s = hsum256(_mm256_add_ps(s0, s1));
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

static void axpy_avx2(float *y, float a, const float *x, int n) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] += a * x[i];
}

static void scale_avx2(float *x, float a, int n) {
    __m256 va = _mm256_set1_ps(a);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(va, _mm256_loadu_ps(x + i)));
    for (; i < n; i++) x[i] *= a;
}

static void add_avx2(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i)));
    for (; i < n; i++) y[i] += x[i];
}

static void bf16_to_f32_avx2(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(src + i)));
        _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
    }
    for (; i < n; i++) dst[i] = vlm_bf16_to_f32(src[i]);
}

static void f16_to_f32_avx2(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = vlm_f16_to_f32(src[i]);
}

/* ---- matmul ---- */

static inline __m256i tail_mask8(int r) {   /* lanes < r set */
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* 8 weights of a row at element t as f32 (all 8 valid). */
static inline __m256 load_w8(enum vlm_dtype wt, const void *w, size_t t) {
    if (wt == VLM_DT_BF16) {
        __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + t)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    }
    if (wt == VLM_DT_F16) return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)w + t)));
    return _mm256_loadu_ps((const float *)w + t);
}

/* The last r < 8 weights of a row at t, zero-padded (copied so nothing past the row is read). */
static inline __m256 load_w8_tail(enum vlm_dtype wt, const void *w, size_t t, int r) {
    float f[8] = {0};
    for (int i = 0; i < r; i++) {
        if (wt == VLM_DT_BF16) f[i] = vlm_bf16_to_f32(((const uint16_t *)w)[t + i]);
        else if (wt == VLM_DT_F16) f[i] = vlm_f16_to_f32(((const uint16_t *)w)[t + i]);
        else f[i] = ((const float *)w)[t + i];
    }
    return _mm256_loadu_ps(f);
}

static inline const void *w_row(enum vlm_dtype wt, const void *w, size_t ldw, int j) {
    return (const char *)w + (size_t)j * ldw * (wt == VLM_DT_F32 ? 4 : 2);
}

/* Few x rows: 4 weight rows at a time, each read once, times each x row. */
static inline __attribute__((always_inline)) void
gemv_body(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w, size_t ldw,
          int n0, int n1, const float *bias, float *y, int ldy) {
    int kfull = k & ~7, rem = k & 7;
    __m256i tm = tail_mask8(rem);
    int j = n0;
    for (; j + 4 <= n1; j += 4) {
        const void *w0p = w_row(wt, w, ldw, j), *w1p = w_row(wt, w, ldw, j + 1);
        const void *w2p = w_row(wt, w, ldw, j + 2), *w3p = w_row(wt, w, ldw, j + 3);
        int i = 0;
        for (; i + 2 <= m; i += 2) {   /* 2 x rows x 4 W rows: 8 chains, 6 loads per 8 FMAs */
            const float *x0 = x + (size_t)i * ldx, *x1 = x0 + ldx;
            __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
            __m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00;
            for (int t = 0; t < k; t += 8) {
                __m256 w0, w1, w2, w3, v0, v1;
                if (t < kfull) {
                    w0 = load_w8(wt, w0p, t); w1 = load_w8(wt, w1p, t);
                    w2 = load_w8(wt, w2p, t); w3 = load_w8(wt, w3p, t);
                    v0 = _mm256_loadu_ps(x0 + t); v1 = _mm256_loadu_ps(x1 + t);
                } else {
                    w0 = load_w8_tail(wt, w0p, t, rem); w1 = load_w8_tail(wt, w1p, t, rem);
                    w2 = load_w8_tail(wt, w2p, t, rem); w3 = load_w8_tail(wt, w3p, t, rem);
                    v0 = _mm256_maskload_ps(x0 + t, tm); v1 = _mm256_maskload_ps(x1 + t, tm);
                }
                c00 = _mm256_fmadd_ps(v0, w0, c00); c01 = _mm256_fmadd_ps(v0, w1, c01);
                c02 = _mm256_fmadd_ps(v0, w2, c02); c03 = _mm256_fmadd_ps(v0, w3, c03);
                c10 = _mm256_fmadd_ps(v1, w0, c10); c11 = _mm256_fmadd_ps(v1, w1, c11);
                c12 = _mm256_fmadd_ps(v1, w2, c12); c13 = _mm256_fmadd_ps(v1, w3, c13);
            }
            float b0 = bias ? bias[j] : 0, b1 = bias ? bias[j + 1] : 0;
            float b2 = bias ? bias[j + 2] : 0, b3 = bias ? bias[j + 3] : 0;
            float *y0 = y + (size_t)i * ldy + j, *y1 = y0 + ldy;
            y0[0] = hsum256(c00) + b0; y0[1] = hsum256(c01) + b1;
            y0[2] = hsum256(c02) + b2; y0[3] = hsum256(c03) + b3;
            y1[0] = hsum256(c10) + b0; y1[1] = hsum256(c11) + b1;
            y1[2] = hsum256(c12) + b2; y1[3] = hsum256(c13) + b3;
        }
        for (; i < m; i++) {
            const float *xi = x + (size_t)i * ldx;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            for (int t = 0; t < kfull; t += 8) {
                __m256 v = _mm256_loadu_ps(xi + t);
                a0 = _mm256_fmadd_ps(v, load_w8(wt, w0p, t), a0);
                a1 = _mm256_fmadd_ps(v, load_w8(wt, w1p, t), a1);
                a2 = _mm256_fmadd_ps(v, load_w8(wt, w2p, t), a2);
                a3 = _mm256_fmadd_ps(v, load_w8(wt, w3p, t), a3);
            }
            if (rem) {
                __m256 v = _mm256_maskload_ps(xi + kfull, tm);
                a0 = _mm256_fmadd_ps(v, load_w8_tail(wt, w0p, kfull, rem), a0);
                a1 = _mm256_fmadd_ps(v, load_w8_tail(wt, w1p, kfull, rem), a1);
                a2 = _mm256_fmadd_ps(v, load_w8_tail(wt, w2p, kfull, rem), a2);
                a3 = _mm256_fmadd_ps(v, load_w8_tail(wt, w3p, kfull, rem), a3);
            }
            float *yi = y + (size_t)i * ldy + j;
            yi[0] = hsum256(a0) + (bias ? bias[j] : 0);
            yi[1] = hsum256(a1) + (bias ? bias[j + 1] : 0);
            yi[2] = hsum256(a2) + (bias ? bias[j + 2] : 0);
            yi[3] = hsum256(a3) + (bias ? bias[j + 3] : 0);
        }
    }
    for (; j < n1; j++) {
        const void *wr = w_row(wt, w, ldw, j);
        for (int i = 0; i < m; i++) {
            const float *xi = x + (size_t)i * ldx;
            __m256 a0 = _mm256_setzero_ps();
            for (int t = 0; t < kfull; t += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xi + t), load_w8(wt, wr, t), a0);
            if (rem) a0 = _mm256_fmadd_ps(_mm256_maskload_ps(xi + kfull, tm), load_w8_tail(wt, wr, kfull, rem), a0);
            y[(size_t)i * ldy + j] = hsum256(a0) + (bias ? bias[j] : 0);
        }
    }
}

/* Decode shapes (up to 4 x rows): W rows in order, one sequential stream, each 8-weight piece
 * used for every x row (sequential reads measured twice as fast from memory on AVX-512). */
static inline __attribute__((always_inline)) void
gemv_seq_body(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w, size_t ldw,
              int n0, int n1, const float *bias, float *y, int ldy) {
    int k16 = k & ~15, kfull = k & ~7, rem = k & 7;
    __m256i tm = tail_mask8(rem);
    const float *x0 = x, *x1 = m > 1 ? x + ldx : x, *x2 = m > 2 ? x + 2 * (size_t)ldx : x1,
                *x3 = m > 3 ? x + 3 * (size_t)ldx : x2;
    for (int j = n0; j < n1; j++) {
        const void *wr = w_row(wt, w, ldw, j);
        __m256 z = _mm256_setzero_ps();
        __m256 a0 = z, b0 = z, a1 = z, b1 = z, a2 = z, b2 = z, a3 = z, b3 = z;
        int t = 0;
        for (; t < k16; t += 16) {
            __m256 wa = load_w8(wt, wr, t), wb = load_w8(wt, wr, t + 8);
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + t), wa, a0); b0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + t + 8), wb, b0);
            if (m > 1) { a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + t), wa, a1); b1 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + t + 8), wb, b1); }
            if (m > 2) { a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x2 + t), wa, a2); b2 = _mm256_fmadd_ps(_mm256_loadu_ps(x2 + t + 8), wb, b2); }
            if (m > 3) { a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x3 + t), wa, a3); b3 = _mm256_fmadd_ps(_mm256_loadu_ps(x3 + t + 8), wb, b3); }
        }
        for (; t < k; t += 8) {
            int full = t < kfull;
            __m256 wa = full ? load_w8(wt, wr, t) : load_w8_tail(wt, wr, t, rem);
#define XV(xp) (full ? _mm256_loadu_ps(xp + t) : _mm256_maskload_ps(xp + t, tm))
            a0 = _mm256_fmadd_ps(XV(x0), wa, a0);
            if (m > 1) a1 = _mm256_fmadd_ps(XV(x1), wa, a1);
            if (m > 2) a2 = _mm256_fmadd_ps(XV(x2), wa, a2);
            if (m > 3) a3 = _mm256_fmadd_ps(XV(x3), wa, a3);
#undef XV
        }
        float bj = bias ? bias[j] : 0;
        y[j] = hsum256(_mm256_add_ps(a0, b0)) + bj;
        if (m > 1) y[(size_t)ldy + j] = hsum256(_mm256_add_ps(a1, b1)) + bj;
        if (m > 2) y[2 * (size_t)ldy + j] = hsum256(_mm256_add_ps(a2, b2)) + bj;
        if (m > 3) y[3 * (size_t)ldy + j] = hsum256(_mm256_add_ps(a3, b3)) + bj;
    }
}

/* Up to 8 x rows in the whole call: the sequential stream per 4 x rows; more: the register
 * tiles. The two sum in different orders, so the choice follows the call's row count m_total,
 * never the rows of one task (a thread's share of a 37-row call can be 5 rows). */
static inline __attribute__((always_inline)) void
gemv_dispatch(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w, size_t ldw,
              int n0, int n1, const float *bias, float *y, int ldy, int m_total) {
    if (m_total > 8) {
        gemv_body(x, ldx, m, k, wt, w, ldw, n0, n1, bias, y, ldy);
        return;
    }
    for (int i = 0; i < m; i += 4)
        gemv_seq_body(x + (size_t)i * ldx, ldx, m - i < 4 ? m - i : 4, k, wt, w, ldw, n0, n1, bias,
                      y + (size_t)i * ldy, ldy);
}

static void gemv_bf16(const float *x, int ldx, int m, int k, const void *w, size_t ldw, int n0,
                      int n1, const float *bias, float *y, int ldy, int m_total) {
    gemv_dispatch(x, ldx, m, k, VLM_DT_BF16, w, ldw, n0, n1, bias, y, ldy, m_total);
}
static void gemv_f16(const float *x, int ldx, int m, int k, const void *w, size_t ldw, int n0,
                     int n1, const float *bias, float *y, int ldy, int m_total) {
    gemv_dispatch(x, ldx, m, k, VLM_DT_F16, w, ldw, n0, n1, bias, y, ldy, m_total);
}
static void gemv_f32(const float *x, int ldx, int m, int k, const void *w, size_t ldw, int n0,
                     int n1, const float *bias, float *y, int ldy, int m_total) {
    gemv_dispatch(x, ldx, m, k, VLM_DT_F32, w, ldw, n0, n1, bias, y, ldy, m_total);
}

/* Many x rows: W packed to f32 panels of NR=16 columns, a 6 x 16 register tile (12 ymm
 * accumulators) with broadcast x values. */
#define G2_MR 6
#define G2_NR 16
#define G2_KC 256
#define G2_NC 64

/* r[i] (8 floats each) transposed in place: r[i][j] <- r[j][i]. */
static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xee);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xee);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xee);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xee);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20); r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20); r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31); r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31); r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

/* panel[t*16 + c] = W row j0+c, element k0+t, as f32 (0 for c >= nc): each row converted
 * into rows[c], then 8 x 8 blocks transposed into the panel. */
static void pack_panel(float *panel, enum vlm_dtype wt, const void *w, size_t ldw, int j0, int nc,
                       int k0, int kc) {
    float rows[G2_NR][G2_KC] __attribute__((aligned(32)));
    for (int c = 0; c < G2_NR; c++) {
        if (c >= nc) {
            memset(rows[c], 0, sizeof rows[c]);
            continue;
        }
        const void *wr = w_row(wt, w, ldw, j0 + c);
        int t = 0;
        for (; t + 8 <= kc; t += 8) _mm256_storeu_ps(rows[c] + t, load_w8(wt, wr, (size_t)k0 + t));
        if (t < kc) _mm256_storeu_ps(rows[c] + t, load_w8_tail(wt, wr, (size_t)k0 + t, kc - t));
    }
    int t = 0;
    for (; t + 8 <= kc; t += 8)
        for (int c0 = 0; c0 < G2_NR; c0 += 8) {
            __m256 r[8];
            for (int i = 0; i < 8; i++) r[i] = _mm256_load_ps(rows[c0 + i] + t);
            transpose8(r);
            for (int i = 0; i < 8; i++) _mm256_storeu_ps(panel + (size_t)(t + i) * G2_NR + c0, r[i]);
        }
    for (; t < kc; t++)
        for (int c = 0; c < G2_NR; c++) panel[t * G2_NR + c] = rows[c][t];
}

/* C (rows x 16) (+)= A (rows x kc) @ B (kc x 16); A(r, t) at a[r*rs + t*ks]; B rows at b + t*ldb
 * (lanes past nc masked unless full); first: C = bias (or 0) + product. */
static inline __attribute__((always_inline)) void
store_row(float *yr, __m256 c0, __m256 c1, int first, const float *bias, int full, __m256i mk0,
          __m256i mk1) {
    if (full) {
        __m256 o0 = first ? (bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps()) : _mm256_loadu_ps(yr);
        __m256 o1 = first ? (bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps()) : _mm256_loadu_ps(yr + 8);
        _mm256_storeu_ps(yr, _mm256_add_ps(o0, c0));
        _mm256_storeu_ps(yr + 8, _mm256_add_ps(o1, c1));
    } else {
        __m256 o0 = first ? (bias ? _mm256_maskload_ps(bias, mk0) : _mm256_setzero_ps()) : _mm256_maskload_ps(yr, mk0);
        __m256 o1 = first ? (bias ? _mm256_maskload_ps(bias + 8, mk1) : _mm256_setzero_ps()) : _mm256_maskload_ps(yr + 8, mk1);
        _mm256_maskstore_ps(yr, mk0, _mm256_add_ps(o0, c0));
        _mm256_maskstore_ps(yr + 8, mk1, _mm256_add_ps(o1, c1));
    }
}

/* A tile of RM <= 6 rows x 16 columns: 2*RM accumulators held in registers (the loops unrolled).
 * Each element is one FMA chain over t whatever RM, so a row gives the same bits in any tile. */
static inline __attribute__((always_inline)) void
micro_body(const float *a, size_t rs, size_t ks, const int RM, int kc, const float *b, size_t ldb,
           float *y, size_t ldy, int first, const float *bias, int nc, const int full) {
    __m256i mk0 = tail_mask8(nc), mk1 = tail_mask8(nc - 8);
    __m256 c0[G2_MR], c1[G2_MR];
#pragma GCC unroll 6
    for (int r = 0; r < RM; r++) c0[r] = c1[r] = _mm256_setzero_ps();
    for (int t = 0; t < kc; t++) {
        const float *bt = b + (size_t)t * ldb, *at = a + (size_t)t * ks;
        __m256 b0 = full ? _mm256_loadu_ps(bt) : _mm256_maskload_ps(bt, mk0);
        __m256 b1 = full ? _mm256_loadu_ps(bt + 8) : _mm256_maskload_ps(bt + 8, mk1);
#pragma GCC unroll 6
        for (int r = 0; r < RM; r++) {
            __m256 av = _mm256_broadcast_ss(at + r * rs);
            c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
            c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < RM; r++) store_row(y + r * ldy, c0[r], c1[r], first, bias, full, mk0, mk1);
}

#define MICRO_FN(RM)                                                                                  \
    static void micro_##RM(const float *a, size_t rs, size_t ks, int kc, const float *b, size_t ldb,  \
                           float *y, size_t ldy, int first, const float *bias, int nc) {              \
        if (nc == G2_NR) micro_body(a, rs, ks, RM, kc, b, ldb, y, ldy, first, bias, nc, 1);           \
        else micro_body(a, rs, ks, RM, kc, b, ldb, y, ldy, first, bias, nc, 0);                       \
    }
MICRO_FN(1) MICRO_FN(2) MICRO_FN(3) MICRO_FN(4) MICRO_FN(5) MICRO_FN(6)

typedef void (*micro_fn)(const float *, size_t, size_t, int, const float *, size_t, float *, size_t, int,
                         const float *, int);
static const micro_fn micro_rows[G2_MR + 1] = {NULL, micro_1, micro_2, micro_3, micro_4, micro_5, micro_6};

/* rows x 16 (rows <= 6; A with k stride 1, as the matmul's x) */
static void micro_6_rows(const float *a, size_t rs, int rows, int kc, const float *b, size_t ldb, float *y,
                         size_t ldy, int first, const float *bias, int nc) {
    micro_rows[rows](a, rs, 1, kc, b, ldb, y, ldy, first, bias, nc);
}

static void gemm_avx2(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w,
                      size_t ldw, int n0, int n1, const float *bias, float *y, int ldy) {
    float panels[G2_NC / G2_NR][G2_KC * G2_NR] __attribute__((aligned(32)));
    for (int jb = n0; jb < n1; jb += G2_NC) {
        int nb = n1 - jb < G2_NC ? n1 - jb : G2_NC, np = (nb + G2_NR - 1) / G2_NR;
        for (int k0 = 0; k0 < k; k0 += G2_KC) {
            int kc = k - k0 < G2_KC ? k - k0 : G2_KC;
            for (int p = 0; p < np; p++) {
                int nc = nb - p * G2_NR < G2_NR ? nb - p * G2_NR : G2_NR;
                pack_panel(panels[p], wt, w, ldw, jb + p * G2_NR, nc, k0, kc);
            }
            for (int i = 0; i < m; i += G2_MR) {
                int rows = m - i < G2_MR ? m - i : G2_MR;
                for (int p = 0; p < np; p++) {
                    int j = jb + p * G2_NR, nc = nb - p * G2_NR < G2_NR ? nb - p * G2_NR : G2_NR;
                    const float *xs = x + (size_t)i * ldx + k0;
                    float *ys = y + (size_t)i * ldy + j;
                    const float *bs = bias ? bias + j : NULL;
                    micro_6_rows(xs, (size_t)ldx, rows, kc, panels[p], G2_NR, ys, (size_t)ldy, k0 == 0, bs, nc);
                }
            }
        }
    }
}

static void matmul_avx2(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w,
                        size_t ldw, int n0, int n1, const float *bias, float *y, int ldy,
                        int m_total, int bf16) {
    (void)bf16;
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            for (int j = n0; j < n1; j++) y[(size_t)i * ldy + j] = bias ? bias[j] : 0.0f;
        return;
    }
    if (m_total < 64) {   /* below this many x rows the unpacked path measured faster */
        if (wt == VLM_DT_BF16) gemv_bf16(x, ldx, m, k, w, ldw, n0, n1, bias, y, ldy, m_total);
        else if (wt == VLM_DT_F16) gemv_f16(x, ldx, m, k, w, ldw, n0, n1, bias, y, ldy, m_total);
        else gemv_f32(x, ldx, m, k, w, ldw, n0, n1, bias, y, ldy, m_total);
    } else {
        gemm_avx2(x, ldx, m, k, wt, w, ldw, n0, n1, bias, y, ldy);
    }
}

static void gemm_f32_avx2(int m, int n, int k, const float *a, size_t a_rs, size_t a_ks,
                          const float *b, size_t ldb, float *c, size_t ldc, int acc) {
    if (k <= 0) {
        if (!acc)
            for (int i = 0; i < m; i++) memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof *c);
        return;
    }
    for (int k0 = 0; k0 < k; k0 += G2_KC) {
        int kc = k - k0 < G2_KC ? k - k0 : G2_KC, first = !acc && k0 == 0;
        for (int j = 0; j < n; j += G2_NR) {
            int nc = n - j < G2_NR ? n - j : G2_NR;
            const float *bj = b + (size_t)k0 * ldb + j;
            int i = 0;
            for (; i + G2_MR <= m; i += G2_MR)
                micro_6(a + (size_t)i * a_rs + (size_t)k0 * a_ks, a_rs, a_ks, kc, bj, ldb,
                        c + (size_t)i * ldc + j, ldc, first, NULL, nc);
            if (i < m)
                micro_rows[m - i](a + (size_t)i * a_rs + (size_t)k0 * a_ks, a_rs, a_ks, kc, bj, ldb,
                                  c + (size_t)i * ldc + j, ldc, first, NULL, nc);
        }
    }
}

/* ---- elementwise math ---- */

/* e^x to ~1 ulp (Cephes polynomial); 2^n built in the exponent bits; below -87.3 gives 0. */
static inline __m256 exp256(__m256 x) {
    __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.33f), _CMP_LT_OQ);
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.72f)), _mm256_set1_ps(-87.33f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* n in [-126, 128]: split 2^n = 2^(n/2) * 2^(n - n/2) so 128 does not overflow the bits */
    __m256i ni = _mm256_cvtps_epi32(n), h = _mm256_srai_epi32(ni, 1);
    __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
    __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_add_epi32(_mm256_sub_epi32(ni, h), _mm256_set1_epi32(127)), 23));
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(_mm256_mul_ps(p, s1), s2));
}

static inline __m256 silu256(__m256 x) {
    __m256 e = exp256(_mm256_sub_ps(_mm256_setzero_ps(), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline __m256 gelu_quick256(__m256 x) {   /* x * sigmoid(1.702 x) */
    __m256 e = exp256(_mm256_mul_ps(_mm256_set1_ps(-1.702f), x));
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline __m256 gelu_tanh256(__m256 x) {
    __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
    __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.79788456080286536f),
                             _mm256_fmadd_ps(x3, _mm256_set1_ps(0.044715f), x));
    __m256 e = exp256(_mm256_add_ps(u, u));
    __m256 th = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                              _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), th));
}

static inline __m256 gelu_erf256(__m256 x) {   /* erf: Abramowitz & Stegun 7.1.26 */
    __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
    __m256 a = _mm256_andnot_ps(sign, z);
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(a, _mm256_set1_ps(0.3275911f), _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(1.061405429f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
    p = _mm256_mul_ps(p, t);
    __m256 e = exp256(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), a), a));
    __m256 erf = _mm256_or_ps(_mm256_fnmadd_ps(p, e, _mm256_set1_ps(1.0f)), _mm256_and_ps(sign, z));
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), erf));
}

#define ELEMENTWISE256(name, op)                                                         \
    static void name(float *x, size_t n) {                                               \
        size_t i = 0;                                                                    \
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, op(_mm256_loadu_ps(x + i)));  \
        if (i < n) {                                                                     \
            __m256i m = tail_mask8((int)(n - i));                                        \
            _mm256_maskstore_ps(x + i, m, op(_mm256_maskload_ps(x + i, m)));             \
        }                                                                                \
    }
ELEMENTWISE256(silu_avx2, silu256)
ELEMENTWISE256(gelu_quick_avx2, gelu_quick256)
ELEMENTWISE256(gelu_tanh_avx2, gelu_tanh256)
ELEMENTWISE256(gelu_erf_avx2, gelu_erf256)

static void silu_mul_avx2(float *g, const float *u, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(g + i, _mm256_mul_ps(silu256(_mm256_loadu_ps(g + i)), _mm256_loadu_ps(u + i)));
    for (; i < n; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static float exp_sum_avx2(float *x, float sub, int n) {
    __m256 vs = _mm256_set1_ps(sub), acc = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), vs));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    float s = hsum256(acc);
    for (; i < n; i++) {
        x[i] = expf(x[i] - sub);
        s += x[i];
    }
    return s;
}

static void softmax_avx2(float *x, int n) {
    if (n <= 0) return;
    float m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    if (m == -INFINITY) m = 0.0f;
    float s = exp_sum_avx2(x, m, n);
    scale_avx2(x, 1.0f / s, n);
}

static void col_max_avx2(const float *x, int rows, int n, size_t ld, float *mx) {
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_loadu_ps(mx + j);
        for (int i = 0; i < rows; i++) v = _mm256_max_ps(v, _mm256_loadu_ps(x + i * ld + j));
        _mm256_storeu_ps(mx + j, v);
    }
    for (; j < n; j++)
        for (int i = 0; i < rows; i++) mx[j] = x[i * ld + j] > mx[j] ? x[i * ld + j] : mx[j];
}

static void exp_cols_avx2(float *x, int rows, int n, size_t ld, const float *sub, float *colsum) {
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 vs = _mm256_loadu_ps(sub + j), acc = _mm256_loadu_ps(colsum + j);
        for (int i = 0; i < rows; i++) {
            __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i * ld + j), vs));
            _mm256_storeu_ps(x + i * ld + j, e);
            acc = _mm256_add_ps(acc, e);
        }
        _mm256_storeu_ps(colsum + j, acc);
    }
    for (; j < n; j++)
        for (int i = 0; i < rows; i++) {
            x[i * ld + j] = expf(x[i * ld + j] - sub[j]);
            colsum[j] += x[i * ld + j];
        }
}

static void rmsnorm_avx2(float *y, const float *x, const float *w, int n, float eps) {
    __m256 a = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) a = _mm256_fmadd_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(x + i), a);
    float ss = hsum256(a);
    for (; i < n; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    __m256 vr = _mm256_set1_ps(r);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vr);
        _mm256_storeu_ps(y + i, w ? _mm256_mul_ps(v, _mm256_loadu_ps(w + i)) : v);
    }
    for (; i < n; i++) y[i] = x[i] * r * (w ? w[i] : 1.0f);
}

static void layernorm_avx2(float *y, const float *x, const float *w, const float *b, int n, float eps) {
    __m256 a = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) a = _mm256_add_ps(a, _mm256_loadu_ps(x + i));
    float s = hsum256(a);
    for (; i < n; i++) s += x[i];
    float mean = s / (float)n;
    __m256 vm = _mm256_set1_ps(mean);
    a = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), vm);
        a = _mm256_fmadd_ps(d, d, a);
    }
    float var = hsum256(a);
    for (; i < n; i++) var += (x[i] - mean) * (x[i] - mean);
    float r = 1.0f / sqrtf(var / (float)n + eps);
    __m256 vr = _mm256_set1_ps(r);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vr);
        if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
        if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * r * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
}

/* 10 independent ymm accumulators (named, so they live in registers) cover FMA latency x
 * throughput (4 x 2) with room. */
static double fma_loop_avx2(float *acc, long iters) {
    __m256 m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(0.001f);
    __m256 a0 = _mm256_set1_ps(acc[0]), a1 = _mm256_set1_ps(acc[1]), a2 = _mm256_set1_ps(acc[2]);
    __m256 a3 = _mm256_set1_ps(acc[3]), a4 = _mm256_set1_ps(acc[4]), a5 = _mm256_set1_ps(acc[5]);
    __m256 a6 = _mm256_set1_ps(acc[6]), a7 = _mm256_set1_ps(acc[7]), a8 = _mm256_set1_ps(acc[8]);
    __m256 a9 = _mm256_set1_ps(acc[9]);
    for (long it = 0; it < iters; it++) {
        a0 = _mm256_fmadd_ps(a0, m, c); a1 = _mm256_fmadd_ps(a1, m, c); a2 = _mm256_fmadd_ps(a2, m, c);
        a3 = _mm256_fmadd_ps(a3, m, c); a4 = _mm256_fmadd_ps(a4, m, c); a5 = _mm256_fmadd_ps(a5, m, c);
        a6 = _mm256_fmadd_ps(a6, m, c); a7 = _mm256_fmadd_ps(a7, m, c); a8 = _mm256_fmadd_ps(a8, m, c);
        a9 = _mm256_fmadd_ps(a9, m, c);
    }
    a0 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                       _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
    acc[0] = hsum256(_mm256_add_ps(a0, _mm256_add_ps(a8, a9)));
    return 10.0 * 8 * 2 * (double)iters;
}

/* Attention rows: the one-key kernels in a loop (the call is per block, not per key); 16-bit
 * rows are converted first (d <= 512). */
static const float *kv_row_avx2(float *buf, const void *base, enum vlm_dtype kt, size_t ld, int t, int d) {
    if (kt == VLM_DT_F32) return (const float *)base + (size_t)t * ld;
    const uint16_t *h = (const uint16_t *)base + (size_t)t * ld;
    if (kt == VLM_DT_BF16) bf16_to_f32_avx2(buf, h, (size_t)d);
    else f16_to_f32_avx2(buf, h, (size_t)d);
    return buf;
}

/* s[t] = dot_avx2(q, row t) for f32 rows, four rows per pass so that they share the loads of
 * q; each row goes through dot_avx2's operations in its order (the same bits). */
static void dots_f32(float *s, const float *q, const float *k, size_t ld, int n, int d) {
    int t = 0;
    for (; t + 4 <= n; t += 4) {
        const float *kr[4] = {k + (size_t)t * ld, k + (size_t)(t + 1) * ld, k + (size_t)(t + 2) * ld,
                              k + (size_t)(t + 3) * ld};
        __m256 a[4], b[4];
        for (int r = 0; r < 4; r++) a[r] = b[r] = _mm256_setzero_ps();
        int i = 0;
        for (; i + 16 <= d; i += 16) {
            __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
            for (int r = 0; r < 4; r++) {
                a[r] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(kr[r] + i), a[r]);
                b[r] = _mm256_fmadd_ps(q1, _mm256_loadu_ps(kr[r] + i + 8), b[r]);
            }
        }
        for (; i + 8 <= d; i += 8) {
            __m256 q0 = _mm256_loadu_ps(q + i);
            for (int r = 0; r < 4; r++) a[r] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(kr[r] + i), a[r]);
        }
        for (int r = 0; r < 4; r++) {
            float v = hsum256(_mm256_add_ps(a[r], b[r]));
            for (int e = i; e < d; e++) v += q[e] * kr[r][e];
            s[t + r] = v;
        }
    }
    for (; t < n; t++) s[t] = dot_avx2(q, k + (size_t)t * ld, d);
}

/* acc += sum over t of p[t] * row t for f32 rows, 64 elements of acc held in registers across
 * the rows: per element the fused multiply-adds of axpy_avx2, row by row (the same bits). */
static void axpys_f32(float *acc, const float *p, const float *v, size_t ld, int n, int d) {
    int i = 0;
    for (; i + 64 <= d; i += 64) {
        __m256 y[8];
        for (int c = 0; c < 8; c++) y[c] = _mm256_loadu_ps(acc + i + 8 * c);
        for (int t = 0; t < n; t++) {
            __m256 va = _mm256_set1_ps(p[t]);
            const float *x = v + (size_t)t * ld + i;
            for (int c = 0; c < 8; c++) y[c] = _mm256_fmadd_ps(va, _mm256_loadu_ps(x + 8 * c), y[c]);
        }
        for (int c = 0; c < 8; c++) _mm256_storeu_ps(acc + i + 8 * c, y[c]);
    }
    for (; i + 8 <= d; i += 8) {
        __m256 y = _mm256_loadu_ps(acc + i);
        for (int t = 0; t < n; t++) y = _mm256_fmadd_ps(_mm256_set1_ps(p[t]), _mm256_loadu_ps(v + (size_t)t * ld + i), y);
        _mm256_storeu_ps(acc + i, y);
    }
    for (; i < d; i++)
        for (int t = 0; t < n; t++) acc[i] += p[t] * v[(size_t)t * ld + i];
}

static void dots_avx2(float *s, const float *q, const void *k, enum vlm_dtype kt, size_t ld, int n, int d) {
    float buf[512];
    if (kt == VLM_DT_F32) {
        dots_f32(s, q, k, ld, n, d);
        return;
    }
    for (int t = 0; t < n; t++) s[t] = dot_avx2(q, kv_row_avx2(buf, k, kt, ld, t, d), d);
}

static void axpys_avx2(float *acc, const float *p, const void *v, enum vlm_dtype kt, size_t ld, int n, int d) {
    float buf[512];
    if (kt == VLM_DT_F32) {
        axpys_f32(acc, p, v, ld, n, d);
        return;
    }
    for (int t = 0; t < n; t++) axpy_avx2(acc, p[t], kv_row_avx2(buf, v, kt, ld, t, d), d);
}

void vlm_kernels_init_avx2(struct vlm_kernels *k) {
    k->name = "avx2";
    k->dot = dot_avx2;
    k->axpy = axpy_avx2;
    k->dots = dots_avx2;
    k->axpys = axpys_avx2;
    k->scale = scale_avx2;
    k->add = add_avx2;
    k->bf16_to_f32 = bf16_to_f32_avx2;
    k->f16_to_f32 = f16_to_f32_avx2;
    k->fma_loop = fma_loop_avx2;
    k->matmul = matmul_avx2;
    k->gemm_f32 = gemm_f32_avx2;
    k->col_max = col_max_avx2;
    k->exp_cols = exp_cols_avx2;
    k->exp_sum = exp_sum_avx2;
    k->softmax = softmax_avx2;
    k->silu = silu_avx2;
    k->gelu_quick = gelu_quick_avx2;
    k->silu_mul = silu_mul_avx2;
    k->gelu_tanh = gelu_tanh_avx2;
    k->gelu_erf = gelu_erf_avx2;
    k->rmsnorm = rmsnorm_avx2;
    k->layernorm = layernorm_avx2;
}
