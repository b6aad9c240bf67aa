/* kernels_avx512.c — AVX-512 (F/BW/VL/DQ) variants, compiled with those flags only and used
 * when CPUID reports them. Starts from the AVX2 table and overrides what it has. */
#include "tensor/kernels.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

static float dot_avx512(const float *a, const float *b, int n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
    }
    if (i + 16 <= n) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
        i += 16;
    }
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

static void axpy_avx512(float *y, float a, const float *x, int n) {
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(y + i, m, _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + i),
                                                        _mm512_maskz_loadu_ps(m, y + i)));
    }
}

/* ---- matmul ---- */

/* Loads 16 weights of row w (dtype wt) at element t as f32; mask selects the valid ones. */
static inline __m512 load_w16(enum vlm_dtype wt, const void *w, size_t t, __mmask16 m) {
    if (wt == VLM_DT_BF16) {
        __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)w + t);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    if (wt == VLM_DT_F16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)w + t));
    return _mm512_maskz_loadu_ps(m, (const float *)w + t);
}

static inline const void *w_row(enum vlm_dtype wt, const void *w, size_t ldw, int j) {
    return (const char *)w + (size_t)j * ldw * (wt == VLM_DT_F32 ? 4 : 2);
}

/* W rows n0..n1 one at a time against every x row (the last 1-3 rows of the tiled path). */
static inline __attribute__((always_inline)) void
gemv_rows_body(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w, size_t ldw,
               int n0, int n1, const float *bias, float *y, int ldy) {
    int kfull = k & ~15;
    __mmask16 tail = (__mmask16)((1u << (k & 15)) - 1);
    int j = n0;
    for (; j < n1; j++) {
        const void *wr = w_row(wt, w, ldw, j);
        for (int i = 0; i < m; i++) {
            const float *xi = x + (size_t)i * ldx;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0;
            int t = 0;
            for (; t + 32 <= kfull; t += 32) {
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xi + t), load_w16(wt, wr, t, 0xffff), a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(xi + t + 16), load_w16(wt, wr, t + 16, 0xffff), a1);
            }
            for (; t < kfull; t += 16)
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xi + t), load_w16(wt, wr, t, 0xffff), a0);
            if (tail) a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, xi + kfull), load_w16(wt, wr, kfull, tail), a1);
            y[(size_t)i * ldy + j] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)) + (bias ? bias[j] : 0);
        }
    }
}

/* Sums of a, b, c and d in one vector: {sum a, sum b, sum c, sum d}. */
static inline __m128 reduce4(__m512 a, __m512 b, __m512 c, __m512 d) {
#define HALF(v) _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1))
    __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(HALF(a), HALF(b)), _mm256_hadd_ps(HALF(c), HALF(d)));
#undef HALF
    return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* {x.r0, x.r1, x.r2, x.r3} over n floats (f32 rows). */
static inline __m128 dot1x4(const float *x, const float *r0, const float *r1, const float *r2, const float *r3,
                            int n) {
    int nfull = n & ~15;
    __mmask16 tail = (__mmask16)((1u << (n & 15)) - 1);
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int t = 0; t < n; t += 16) {
        __mmask16 m = t < nfull ? 0xffff : tail;
        __m512 v = _mm512_maskz_loadu_ps(m, x + t);
        a0 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r0 + t), a0);
        a1 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r1 + t), a1);
        a2 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r2 + t), a2);
        a3 = _mm512_fmadd_ps(v, _mm512_maskz_loadu_ps(m, r3 + t), a3);
    }
    return reduce4(a0, a1, a2, a3);
}

/* y[0..3] = v (first k block) or += v (later blocks); bias added with the first block. */
static inline void store4(float *y, __m128 v, const float *bias, int j, int first) {
    if (first) {
        if (bias) v = _mm_add_ps(v, _mm_loadu_ps(bias + j));
        _mm_storeu_ps(y, v);
    } else {
        _mm_storeu_ps(y, _mm_add_ps(_mm_loadu_ps(y), v));
    }
}

/* Attention rows (decode): scores of 4 keys at a time, reduced together; K of dtype kt. */
static inline __attribute__((always_inline)) void
dots_body(float *s, const float *q, const void *k, enum vlm_dtype kt, size_t ld, int n, int d) {
    int dfull = d & ~15;
    __mmask16 tail = (__mmask16)((1u << (d & 15)) - 1);
    int t = 0;
    for (; t + 4 <= n; t += 4) {
        const void *k0 = w_row(kt, k, ld, t), *k1 = w_row(kt, k, ld, t + 1);
        const void *k2 = w_row(kt, k, ld, t + 2), *k3 = w_row(kt, k, ld, t + 3);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < d; i += 16) {
            __mmask16 m = i < dfull ? 0xffff : tail;
            __m512 qv = _mm512_maskz_loadu_ps(m, q + i);
            a0 = _mm512_fmadd_ps(qv, load_w16(kt, k0, (size_t)i, m), a0);
            a1 = _mm512_fmadd_ps(qv, load_w16(kt, k1, (size_t)i, m), a1);
            a2 = _mm512_fmadd_ps(qv, load_w16(kt, k2, (size_t)i, m), a2);
            a3 = _mm512_fmadd_ps(qv, load_w16(kt, k3, (size_t)i, m), a3);
        }
        _mm_storeu_ps(s + t, reduce4(a0, a1, a2, a3));
    }
    for (; t < n; t++) {
        const void *kr = w_row(kt, k, ld, t);
        __m512 a = _mm512_setzero_ps();
        for (int i = 0; i < d; i += 16) {
            __mmask16 m = i < dfull ? 0xffff : tail;
            a = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + i), load_w16(kt, kr, (size_t)i, m), a);
        }
        s[t] = _mm512_reduce_add_ps(a);
    }
}

/* acc += sum p[t] v_t: 64 columns of acc stay in registers while the keys stream by. */
static inline __attribute__((always_inline)) void
axpys_body(float *acc, const float *p, const void *v, enum vlm_dtype kt, size_t ld, int n, int d) {
    for (int c0 = 0; c0 < d; c0 += 64) {
        int w = d - c0 < 64 ? d - c0 : 64;
        __mmask16 m[4];
        for (int r = 0; r < 4; r++) {
            int left = w - 16 * r;
            m[r] = left >= 16 ? 0xffff : left > 0 ? (__mmask16)((1u << left) - 1) : 0;
        }
        float *a = acc + c0;
        __m512 a0 = _mm512_maskz_loadu_ps(m[0], a), a1 = _mm512_maskz_loadu_ps(m[1], a + 16);
        __m512 a2 = _mm512_maskz_loadu_ps(m[2], a + 32), a3 = _mm512_maskz_loadu_ps(m[3], a + 48);
        for (int t = 0; t < n; t++) {
            const void *vt = w_row(kt, v, ld, t);
            __m512 pt = _mm512_set1_ps(p[t]);
            a0 = _mm512_fmadd_ps(pt, load_w16(kt, vt, (size_t)c0, m[0]), a0);
            a1 = _mm512_fmadd_ps(pt, load_w16(kt, vt, (size_t)c0 + 16, m[1]), a1);
            a2 = _mm512_fmadd_ps(pt, load_w16(kt, vt, (size_t)c0 + 32, m[2]), a2);
            a3 = _mm512_fmadd_ps(pt, load_w16(kt, vt, (size_t)c0 + 48, m[3]), a3);
        }
        _mm512_mask_storeu_ps(a, m[0], a0);
        _mm512_mask_storeu_ps(a + 16, m[1], a1);
        _mm512_mask_storeu_ps(a + 32, m[2], a2);
        _mm512_mask_storeu_ps(a + 48, m[3], a3);
    }
}

/* One copy per dtype, as the GEMV: the conversion in the loops is branch-free. */
static void dots_avx512(float *s, const float *q, const void *k, enum vlm_dtype kt, size_t ld, int n, int d) {
    if (kt == VLM_DT_BF16) dots_body(s, q, k, VLM_DT_BF16, ld, n, d);
    else if (kt == VLM_DT_F16) dots_body(s, q, k, VLM_DT_F16, ld, n, d);
    else dots_body(s, q, k, VLM_DT_F32, ld, n, d);
}

static void axpys_avx512(float *acc, const float *p, const void *v, enum vlm_dtype kt, size_t ld, int n, int d) {
    if (kt == VLM_DT_BF16) axpys_body(acc, p, v, VLM_DT_BF16, ld, n, d);
    else if (kt == VLM_DT_F16) axpys_body(acc, p, v, VLM_DT_F16, ld, n, d);
    else axpys_body(acc, p, v, VLM_DT_F32, ld, n, d);
}

#define GEMV_KC 1024   /* k block: 4 converted W rows take 16 KiB of L1 */
#ifndef GEMV_SEQ_MAX_M
#define GEMV_SEQ_MAX_M 4   /* up to 4 x rows: W streamed in order (bandwidth); more: tiles (compute) */
#endif
#ifndef GEMV_PF
#define GEMV_PF 2
#endif

/* More than 8 x rows (batched decode): compute-bound, so each group of 4 W rows is converted to
 * f32 once per k block into an L1 buffer (f32 weights are read in place) and then swept by 4x4
 * register tiles over the x rows: 4 W loads + 4 x loads per 16 FMAs, no conversion in the tile
 * loop, and the 16 sums reduced four at a time. */
static inline __attribute__((always_inline)) void
gemv_tiles_body(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w, size_t ldw,
                int n0, int n1, const float *bias, float *y, int ldy) {
    float wb[4 * GEMV_KC] __attribute__((aligned(64)));
    int j = n0;
    for (; j + 4 <= n1; j += 4) {
        for (int k0 = 0; k0 < k; k0 += GEMV_KC) {
            int kc = k - k0 < GEMV_KC ? k - k0 : GEMV_KC, kfull = kc & ~15, first = k0 == 0;
            __mmask16 tail = (__mmask16)((1u << (kc & 15)) - 1);
            const float *w0, *w1, *w2, *w3;
            if (wt == VLM_DT_F32) {
                w0 = (const float *)w_row(wt, w, ldw, j) + k0;
                w1 = (const float *)w_row(wt, w, ldw, j + 1) + k0;
                w2 = (const float *)w_row(wt, w, ldw, j + 2) + k0;
                w3 = (const float *)w_row(wt, w, ldw, j + 3) + k0;
            } else {
                /* W streams from memory once: while converting this group, ask for the group
                   after next (the tiles below give the requests time to land) */
                int pf = j + 4 * GEMV_PF + 4 <= n1;
                for (int r = 0; r < 4; r++) {
                    const void *wr = w_row(wt, w, ldw, j + r);
                    const char *ahead = (const char *)w_row(wt, w, ldw, j + 4 * GEMV_PF + r) + (size_t)k0 * 2;
                    float *d = wb + r * GEMV_KC;
                    int t = 0;
                    for (; t < kfull; t += 16) {
                        if (pf && !(t & 31)) _mm_prefetch(ahead + (size_t)t * 2, _MM_HINT_T0);
                        _mm512_store_ps(d + t, load_w16(wt, wr, (size_t)(k0 + t), 0xffff));
                    }
                    if (tail) _mm512_store_ps(d + t, load_w16(wt, wr, (size_t)(k0 + t), tail));
                }
                w0 = wb; w1 = wb + GEMV_KC; w2 = wb + 2 * GEMV_KC; w3 = wb + 3 * GEMV_KC;
            }
            int i = 0;
            for (; i + 4 <= m; i += 4) {
                const float *x0 = x + (size_t)i * ldx + k0, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
                __m512 c00 = _mm512_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00,
                       c12 = c00, c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00,
                       c31 = c00, c32 = c00, c33 = c00;
                for (int t = 0; t < kc; t += 16) {
                    __mmask16 mk = t < kfull ? 0xffff : tail;
                    __m512 v0 = _mm512_maskz_loadu_ps(mk, w0 + t), v1 = _mm512_maskz_loadu_ps(mk, w1 + t);
                    __m512 v2 = _mm512_maskz_loadu_ps(mk, w2 + t), v3 = _mm512_maskz_loadu_ps(mk, w3 + t);
#define XROW(xp, d0, d1, d2, d3) do { \
                        __m512 v = _mm512_maskz_loadu_ps(mk, xp + t); \
                        d0 = _mm512_fmadd_ps(v, v0, d0); d1 = _mm512_fmadd_ps(v, v1, d1); \
                        d2 = _mm512_fmadd_ps(v, v2, d2); d3 = _mm512_fmadd_ps(v, v3, d3); \
                    } while (0)
                    XROW(x0, c00, c01, c02, c03); XROW(x1, c10, c11, c12, c13);
                    XROW(x2, c20, c21, c22, c23); XROW(x3, c30, c31, c32, c33);
#undef XROW
                }
                float *yi = y + (size_t)i * ldy + j;
                store4(yi, reduce4(c00, c01, c02, c03), bias, j, first);
                store4(yi + ldy, reduce4(c10, c11, c12, c13), bias, j, first);
                store4(yi + 2 * (size_t)ldy, reduce4(c20, c21, c22, c23), bias, j, first);
                store4(yi + 3 * (size_t)ldy, reduce4(c30, c31, c32, c33), bias, j, first);
            }
            for (; i < m; i++)
                store4(y + (size_t)i * ldy + j, dot1x4(x + (size_t)i * ldx + k0, w0, w1, w2, w3, kc), bias, j, first);
        }
    }
    if (j < n1) gemv_rows_body(x, ldx, m, k, wt, w, ldw, j, n1, bias, y, ldy);   /* last 1-3 W rows */
}

/* One x row: W rows in order, one sequential stream (like the bandwidth probe), 4 chains per
 * row over interleaved 16-element pieces. */
static inline __attribute__((always_inline)) void
gemv1_body(const float *x, int k, enum vlm_dtype wt, const void *w, size_t ldw, int n0, int n1,
           const float *bias, float *y) {
    int k64 = k & ~63, kfull = k & ~15;
    __mmask16 tail = (__mmask16)((1u << (k & 15)) - 1);
    for (int j = n0; j < n1; j++) {
        const void *wr = w_row(wt, w, ldw, j);
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        int t = 0;
        for (; t < k64; t += 64) {
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + t), load_w16(wt, wr, t, 0xffff), a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + t + 16), load_w16(wt, wr, t + 16, 0xffff), a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x + t + 32), load_w16(wt, wr, t + 32, 0xffff), a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x + t + 48), load_w16(wt, wr, t + 48, 0xffff), a3);
        }
        for (; t < kfull; t += 16) a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + t), load_w16(wt, wr, t, 0xffff), a0);
        if (tail) a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, x + kfull), load_w16(wt, wr, kfull, tail), a1);
        y[j] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3))) + (bias ? bias[j] : 0);
    }
}

/* 2 to 4 x rows: W rows in order (one stream), each 16-weight piece loaded once and used for
 * every x row, 2 chains per x row. */
static inline __attribute__((always_inline)) void
gemv_seq_body(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w, size_t ldw,
              int n0, int n1, const float *bias, float *y, int ldy) {
    int k32 = k & ~31, kfull = k & ~15;
    __mmask16 tail = (__mmask16)((1u << (k & 15)) - 1);
    const float *x0 = x, *x1 = x + ldx, *x2 = m > 2 ? x + 2 * (size_t)ldx : x1,
                *x3 = m > 3 ? x + 3 * (size_t)ldx : x2;
    for (int j = n0; j < n1; j++) {
        const void *wr = w_row(wt, w, ldw, j);
        __m512 z = _mm512_setzero_ps();
        __m512 a0 = z, b0 = z, a1 = z, b1 = z, a2 = z, b2 = z, a3 = z, b3 = z;
        int t = 0;
        for (; t < k32; t += 32) {
            __m512 wa = load_w16(wt, wr, t, 0xffff), wb = load_w16(wt, wr, t + 16, 0xffff);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x0 + t), wa, a0); b0 = _mm512_fmadd_ps(_mm512_loadu_ps(x0 + t + 16), wb, b0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x1 + t), wa, a1); b1 = _mm512_fmadd_ps(_mm512_loadu_ps(x1 + t + 16), wb, b1);
            if (m > 2) { a2 = _mm512_fmadd_ps(_mm512_loadu_ps(x2 + t), wa, a2); b2 = _mm512_fmadd_ps(_mm512_loadu_ps(x2 + t + 16), wb, b2); }
            if (m > 3) { a3 = _mm512_fmadd_ps(_mm512_loadu_ps(x3 + t), wa, a3); b3 = _mm512_fmadd_ps(_mm512_loadu_ps(x3 + t + 16), wb, b3); }
        }
        for (; t < k; t += 16) {
            __mmask16 mk = t < kfull ? 0xffff : tail;
            __m512 wa = load_w16(wt, wr, t, mk);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, x0 + t), wa, a0);
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, x1 + t), wa, a1);
            if (m > 2) a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, x2 + t), wa, a2);
            if (m > 3) a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, x3 + t), wa, a3);
        }
        float bj = bias ? bias[j] : 0;
        y[j] = _mm512_reduce_add_ps(_mm512_add_ps(a0, b0)) + bj;
        y[(size_t)ldy + j] = _mm512_reduce_add_ps(_mm512_add_ps(a1, b1)) + bj;
        if (m > 2) y[2 * (size_t)ldy + j] = _mm512_reduce_add_ps(_mm512_add_ps(a2, b2)) + bj;
        if (m > 3) y[3 * (size_t)ldy + j] = _mm512_reduce_add_ps(_mm512_add_ps(a3, b3)) + bj;
    }
}

/* One copy per dtype (gemv_dispatch inlined with a constant wt), so the conversion in the inner
 * loop is branch-free. Up to 4 x rows W is read as one sequential stream: from memory that
 * measured twice as fast per CPU-second as walking 4 W rows side by side (bf16 lm head, one
 * thread: 23.8 vs 10.5 GB/s). From 5 rows the tiled path (W converted once, prefetched) wins:
 * vlm bench --batch 8 on the SmolVLM-256M shape 290 vs 266 tokens/s with two streams of 4. */
static inline __attribute__((always_inline)) void
gemv_dispatch(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w, size_t ldw,
           int n0, int n1, const float *bias, float *y, int ldy, int m_total) {
    /* the call's row count, not this task's, picks the path: the two sum in different orders,
       and a thread's share of a 36-row call can be 4 rows */
    if (m_total > GEMV_SEQ_MAX_M) {
        gemv_tiles_body(x, ldx, m, k, wt, w, ldw, n0, n1, bias, y, ldy);
        return;
    }
    for (int i = 0; i < m; i += 4) {   /* decode: memory-bound, W streamed in order once per 4 x rows */
        int r = m - i < 4 ? m - i : 4;
        const float *xi = x + (size_t)i * ldx;
        float *yi = y + (size_t)i * ldy;
        if (r == 1) gemv1_body(xi, k, wt, w, ldw, n0, n1, bias, yi);
        else gemv_seq_body(xi, ldx, r, k, wt, w, ldw, n0, n1, bias, yi, ldy);
    }
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

/* Many x rows: W is packed (converted to f32) into panels of NR=32 columns x KC depth, and an
 * MR x NR register tile (8 x 2 zmm accumulators) walks each panel with broadcast x values. */
#define GE_MR 8
#ifndef GEMV_MAX_M
#define GEMV_MAX_M 128   /* below this many x rows the unpacked path measured faster */
#endif
#define GE_NR 32
#define GE_KC 256
#define GE_NC 64

/* panel[t*32 + c] = W[j0 + c][k0 + t] for c < nc (zero past nc). */
static void pack_panel(float *panel, enum vlm_dtype wt, const void *w, size_t ldw, int j0, int nc,
                       int k0, int kc) {
    float row[GE_KC];
    for (int c = 0; c < GE_NR; c++) {
        if (c >= nc) {
            for (int t = 0; t < kc; t++) panel[t * GE_NR + c] = 0.0f;
            continue;
        }
        const void *wr = w_row(wt, w, ldw, j0 + c);
        int t = 0;
        for (; t + 16 <= kc; t += 16) _mm512_storeu_ps(row + t, load_w16(wt, wr, (size_t)k0 + t, 0xffff));
        if (t < kc) {
            __mmask16 mk = (__mmask16)((1u << (kc - t)) - 1);
            _mm512_mask_storeu_ps(row + t, mk, load_w16(wt, wr, (size_t)k0 + t, mk));
        }
        for (t = 0; t < kc; t++) panel[t * GE_NR + c] = row[t];
    }
}

/* The register tile: C (8 x 32, column masks m0/m1) (+)= A (8 x kc) @ B (kc x 32).
 * A(r, t) at a[r*rs + t] (trans = 0) or a[t*ks + r] (trans = 1); B(t, c) at b[t*ldb + c].
 * first: C = bias (or 0) + product, else C += product. 16 zmm accumulators stay in registers;
 * A values are broadcast, B rows loaded (masked past the column tail). */
static inline __attribute__((always_inline)) void
micro_8x32_body(const float *a, size_t rs, size_t ks, int trans, int kc, const float *b, size_t ldb,
                float *y, size_t ldy, int first, const float *bias, __mmask16 m0, __mmask16 m1) {
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
           c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00,
           c61 = c00, c70 = c00, c71 = c00;
    const float *x0 = a, *x1 = a + rs, *x2 = a + 2 * rs, *x3 = a + 3 * rs, *x4 = a + 4 * rs,
                *x5 = a + 5 * rs, *x6 = a + 6 * rs, *x7 = a + 7 * rs;
    for (int t = 0; t < kc; t++) {
        const float *bt = b + (size_t)t * ldb;
        __m512 b0 = _mm512_maskz_loadu_ps(m0, bt), b1 = _mm512_maskz_loadu_ps(m1, bt + 16);
        const float *at = a + (size_t)t * ks;
#define ROW(r, xr, c0, c1) do { \
            __m512 av = _mm512_set1_ps(trans ? at[r] : xr[t]); \
            c0 = _mm512_fmadd_ps(av, b0, c0); c1 = _mm512_fmadd_ps(av, b1, c1); \
        } while (0)
        ROW(0, x0, c00, c01); ROW(1, x1, c10, c11); ROW(2, x2, c20, c21); ROW(3, x3, c30, c31);
        ROW(4, x4, c40, c41); ROW(5, x5, c50, c51); ROW(6, x6, c60, c61); ROW(7, x7, c70, c71);
#undef ROW
    }
    __m512 bb0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    __m512 bb1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
#define OUT(r, c0, c1) do { \
        float *yr = y + (size_t)(r) * ldy; \
        __m512 o0 = first ? bb0 : _mm512_maskz_loadu_ps(m0, yr); \
        __m512 o1 = first ? bb1 : _mm512_maskz_loadu_ps(m1, yr + 16); \
        _mm512_mask_storeu_ps(yr, m0, _mm512_add_ps(o0, c0)); \
        _mm512_mask_storeu_ps(yr + 16, m1, _mm512_add_ps(o1, c1)); \
    } while (0)
    OUT(0, c00, c01); OUT(1, c10, c11); OUT(2, c20, c21); OUT(3, c30, c31);
    OUT(4, c40, c41); OUT(5, c50, c51); OUT(6, c60, c61); OUT(7, c70, c71);
#undef OUT
}

static void micro_8x32(const float *a, size_t rs, int kc, const float *b, size_t ldb, float *y,
                       size_t ldy, int first, const float *bias, __mmask16 m0, __mmask16 m1) {
    micro_8x32_body(a, rs, 0, 0, kc, b, ldb, y, ldy, first, bias, m0, m1);
}

static void micro_8x32_t(const float *a, size_t ks, int kc, const float *b, size_t ldb, float *y,
                         size_t ldy, int first, const float *bias, __mmask16 m0, __mmask16 m1) {
    micro_8x32_body(a, 0, ks, 1, kc, b, ldb, y, ldy, first, bias, m0, m1);
}

/* Fewer than 8 rows (the m tail), any A strides. */
static void micro_tail(const float *a, size_t rs, size_t ks, int rows, int kc, const float *b,
                       size_t ldb, float *y, size_t ldy, int first, const float *bias,
                       __mmask16 m0, __mmask16 m1) {
    for (int r = 0; r < rows; r++) {
        const float *ar = a + (size_t)r * rs;
        __m512 c0 = _mm512_setzero_ps(), c1 = c0;
        for (int t = 0; t < kc; t++) {
            __m512 av = _mm512_set1_ps(ar[(size_t)t * ks]);
            c0 = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m0, b + (size_t)t * ldb), c0);
            c1 = _mm512_fmadd_ps(av, _mm512_maskz_loadu_ps(m1, b + (size_t)t * ldb + 16), c1);
        }
        float *yr = y + (size_t)r * ldy;
        __m512 o0 = first ? (bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps()) : _mm512_maskz_loadu_ps(m0, yr);
        __m512 o1 = first ? (bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps()) : _mm512_maskz_loadu_ps(m1, yr + 16);
        _mm512_mask_storeu_ps(yr, m0, _mm512_add_ps(o0, c0));
        _mm512_mask_storeu_ps(yr + 16, m1, _mm512_add_ps(o1, c1));
    }
}

static inline void col_masks(int nc, __mmask16 *m0, __mmask16 *m1) {
    *m0 = nc >= 16 ? 0xffff : (__mmask16)((1u << nc) - 1);
    *m1 = nc >= 32 ? 0xffff : nc > 16 ? (__mmask16)((1u << (nc - 16)) - 1) : 0;
}

/* C (m, n) (+)= A (m, k) @ B (k, n), f32, no packing: B rows are read in place (they are
 * contiguous in n), A by broadcasts. K is blocked so a B block stays in L1/L2. */
static void gemm_f32_avx512(int m, int n, int k, const float *a, size_t a_rs, size_t a_ks,
                            const float *b, size_t ldb, float *c, size_t ldc, int acc) {
    if (a_ks != 1 && a_rs != 1) {
        vlm_gemm_f32_generic(m, n, k, a, a_rs, a_ks, b, ldb, c, ldc, acc);
        return;
    }
    if (k <= 0) {
        if (!acc)
            for (int i = 0; i < m; i++) memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof *c);
        return;
    }
    for (int k0 = 0; k0 < k; k0 += GE_KC) {
        int kc = k - k0 < GE_KC ? k - k0 : GE_KC, first = !acc && k0 == 0;
        for (int j = 0; j < n; j += GE_NR) {
            __mmask16 m0, m1;
            col_masks(n - j, &m0, &m1);
            const float *bj = b + (size_t)k0 * ldb + j;
            int i = 0;
            for (; i + GE_MR <= m; i += GE_MR) {
                const float *ai = a + (size_t)i * a_rs + (size_t)k0 * a_ks;
                if (a_ks == 1) micro_8x32(ai, a_rs, kc, bj, ldb, c + (size_t)i * ldc + j, ldc, first, NULL, m0, m1);
                else micro_8x32_t(ai, a_ks, kc, bj, ldb, c + (size_t)i * ldc + j, ldc, first, NULL, m0, m1);
            }
            if (i < m)
                micro_tail(a + (size_t)i * a_rs + (size_t)k0 * a_ks, a_rs, a_ks, m - i, kc, bj, ldb,
                           c + (size_t)i * ldc + j, ldc, first, NULL, m0, m1);
        }
    }
}

static void gemm_avx512(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w,
                        size_t ldw, int n0, int n1, const float *bias, float *y, int ldy) {
    float panels[GE_NC / GE_NR][GE_KC * GE_NR] __attribute__((aligned(64)));
    for (int jb = n0; jb < n1; jb += GE_NC) {
        int nb = n1 - jb < GE_NC ? n1 - jb : GE_NC;
        int np = (nb + GE_NR - 1) / GE_NR;
        for (int k0 = 0; k0 < k; k0 += GE_KC) {
            int kc = k - k0 < GE_KC ? k - k0 : GE_KC;
            for (int p = 0; p < np; p++) {
                int nc = nb - p * GE_NR < GE_NR ? nb - p * GE_NR : GE_NR;
                pack_panel(panels[p], wt, w, ldw, jb + p * GE_NR, nc, k0, kc);
            }
            for (int i = 0; i < m; i += GE_MR) {
                int rows = m - i < GE_MR ? m - i : GE_MR;
                for (int p = 0; p < np; p++) {
                    int j = jb + p * GE_NR, nc = nb - p * GE_NR < GE_NR ? nb - p * GE_NR : GE_NR;
                    __mmask16 m0, m1;
                    col_masks(nc, &m0, &m1);
                    const float *xs = x + (size_t)i * ldx + k0;
                    float *ys = y + (size_t)i * ldy + j;
                    const float *bs = bias ? bias + j : NULL;
                    if (rows == GE_MR)
                        micro_8x32(xs, (size_t)ldx, kc, panels[p], GE_NR, ys, (size_t)ldy, k0 == 0, bs, m0, m1);
                    else
                        micro_tail(xs, (size_t)ldx, 1, rows, kc, panels[p], GE_NR, ys, (size_t)ldy, k0 == 0, bs, m0, m1);
                }
            }
        }
    }
}

static void matmul_avx512(const float *x, int ldx, int m, int k, enum vlm_dtype wt, const void *w,
                          size_t ldw, int n0, int n1, const float *bias, float *y, int ldy,
                          int m_total, int bf16) {
    (void)bf16;
    if (k <= 0) {
        for (int i = 0; i < m; i++)
            for (int j = n0; j < n1; j++) y[(size_t)i * ldy + j] = bias ? bias[j] : 0.0f;
        return;
    }
    if (m_total < GEMV_MAX_M) {
        if (wt == VLM_DT_BF16) gemv_bf16(x, ldx, m, k, w, ldw, n0, n1, bias, y, ldy, m_total);
        else if (wt == VLM_DT_F16) gemv_f16(x, ldx, m, k, w, ldw, n0, n1, bias, y, ldy, m_total);
        else gemv_f32(x, ldx, m, k, w, ldw, n0, n1, bias, y, ldy, m_total);
    }
    else gemm_avx512(x, ldx, m, k, wt, w, ldw, n0, n1, bias, y, ldy);
}

/* ---- elementwise math ---- */

static inline __mmask16 tail_mask(int r) { return (__mmask16)((1u << r) - 1); }

/* e^x in f32 to ~1 ulp: x = n*ln2 + r, |r| <= ln2/2, Cephes' degree-6 polynomial for e^r,
 * 2^n applied with vscalefps (which underflows to 0 and overflows to inf cleanly). Inputs
 * below -110 (and -inf) give 0. */
static inline __m512 exp512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(89.0f)), _mm512_set1_ps(-110.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

/* x * sigmoid(x) = x / (1 + e^-x) */
static inline __m512 silu512(__m512 x) {
    __m512 e = exp512(_mm512_sub_ps(_mm512_setzero_ps(), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* x * sigmoid(1.702 x) (CLIP's quick_gelu) */
static inline __m512 gelu_quick512(__m512 x) {
    __m512 e = exp512(_mm512_mul_ps(_mm512_set1_ps(-1.702f), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* 0.5 x (1 + tanh(u)), tanh(u) = 1 - 2 / (1 + e^{2u}) */
static inline __m512 gelu_tanh512(__m512 x) {
    __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    __m512 u = _mm512_mul_ps(_mm512_set1_ps(0.79788456080286536f),
                             _mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x));
    __m512 e = exp512(_mm512_add_ps(u, u));
    __m512 th = _mm512_sub_ps(_mm512_set1_ps(1.0f),
                              _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(_mm512_set1_ps(1.0f), e)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), th));
}

/* erf by Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), odd extension. */
static inline __m512 erf512(__m512 x) {
    __m512 a = _mm512_abs_ps(x);
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(a, _mm512_set1_ps(0.3275911f), _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(1.061405429f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.453152027f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.421413741f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.284496736f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.254829592f));
    p = _mm512_mul_ps(p, t);
    __m512 e = exp512(_mm512_mul_ps(_mm512_sub_ps(_mm512_setzero_ps(), a), a));
    __m512 y = _mm512_fnmadd_ps(p, e, _mm512_set1_ps(1.0f));
    /* copy the sign of x */
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(y),
        _mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u))));
}

static inline __m512 gelu_erf512(__m512 x) {
    __m512 e = erf512(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f)));
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

#define ELEMENTWISE512(name, op)                                              \
    static void name(float *x, size_t n) {                                    \
        size_t i = 0;                                                         \
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, op(_mm512_loadu_ps(x + i))); \
        if (i < n) {                                                          \
            __mmask16 m = tail_mask((int)(n - i));                            \
            _mm512_mask_storeu_ps(x + i, m, op(_mm512_maskz_loadu_ps(m, x + i))); \
        }                                                                     \
    }
ELEMENTWISE512(silu_avx512, silu512)
ELEMENTWISE512(gelu_quick_avx512, gelu_quick512)
ELEMENTWISE512(gelu_tanh_avx512, gelu_tanh512)
ELEMENTWISE512(gelu_erf_avx512, gelu_erf512)

static void silu_mul_avx512(float *g, const float *u, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(g + i, _mm512_mul_ps(silu512(_mm512_loadu_ps(g + i)), _mm512_loadu_ps(u + i)));
    if (i < n) {
        __mmask16 m = tail_mask((int)(n - i));
        _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(silu512(_mm512_maskz_loadu_ps(m, g + i)),
                                                      _mm512_maskz_loadu_ps(m, u + i)));
    }
}

static void add_avx512(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(y + i), _mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = tail_mask((int)(n - i));
        _mm512_mask_storeu_ps(y + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, y + i), _mm512_maskz_loadu_ps(m, x + i)));
    }
}

static void scale_avx512(float *x, float a, int n) {
    __m512 va = _mm512_set1_ps(a);
    int i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(va, _mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        _mm512_mask_storeu_ps(x + i, m, _mm512_mul_ps(va, _mm512_maskz_loadu_ps(m, x + i)));
    }
}

static float exp_sum_avx512(float *x, float sub, int n) {
    __m512 vs = _mm512_set1_ps(sub), acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 e = exp512(_mm512_sub_ps(_mm512_loadu_ps(x + i), vs));
        _mm512_storeu_ps(x + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), vs)));
        _mm512_mask_storeu_ps(x + i, m, e);
        acc = _mm512_add_ps(acc, e);
    }
    return _mm512_reduce_add_ps(acc);
}

static void col_max_avx512(const float *x, int rows, int n, size_t ld, float *mx) {
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? 0xffff : tail_mask(n - j);
        __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, mx + j);
        for (int i = 0; i < rows; i++)
            v = _mm512_mask_max_ps(v, m, v, _mm512_maskz_loadu_ps(m, x + i * ld + j));
        _mm512_mask_storeu_ps(mx + j, m, v);
    }
}

static void exp_cols_avx512(float *x, int rows, int n, size_t ld, const float *sub, float *colsum) {
    for (int j = 0; j < n; j += 16) {
        __mmask16 m = n - j >= 16 ? 0xffff : tail_mask(n - j);
        __m512 vs = _mm512_maskz_loadu_ps(m, sub + j), acc = _mm512_maskz_loadu_ps(m, colsum + j);
        for (int i = 0; i < rows; i++) {
            float *xi = x + i * ld + j;
            __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, xi), vs));
            _mm512_mask_storeu_ps(xi, m, e);
            acc = _mm512_mask_add_ps(acc, m, acc, e);
        }
        _mm512_mask_storeu_ps(colsum + j, m, acc);
    }
}

static void softmax_avx512(float *x, int n) {
    if (n <= 0) return;
    __m512 mx = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) mx = _mm512_max_ps(mx, _mm512_loadu_ps(x + i));
    if (i < n) mx = _mm512_mask_max_ps(mx, tail_mask(n - i), mx, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    float m = _mm512_reduce_max_ps(mx);
    if (m == -INFINITY) m = 0.0f;   /* all masked: exp gives 0s, the sum 0 gives NaN as torch */
    float s = exp_sum_avx512(x, m, n);
    scale_avx512(x, 1.0f / s, n);
}

static inline float sum_sq(const float *x, int n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512 v0 = _mm512_loadu_ps(x + i), v1 = _mm512_loadu_ps(x + i + 16);
        a0 = _mm512_fmadd_ps(v0, v0, a0);
        a1 = _mm512_fmadd_ps(v1, v1, a1);
    }
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_loadu_ps(x + i);
        a0 = _mm512_fmadd_ps(v, v, a0);
    }
    if (i < n) {
        __m512 v = _mm512_maskz_loadu_ps(tail_mask(n - i), x + i);
        a1 = _mm512_fmadd_ps(v, v, a1);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

static void rmsnorm_avx512(float *y, const float *x, const float *w, int n, float eps) {
    float r = 1.0f / sqrtf(sum_sq(x, n) / (float)n + eps);
    __m512 vr = _mm512_set1_ps(r);
    int i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_loadu_ps(x + i), vr);
        _mm512_storeu_ps(y + i, w ? _mm512_mul_ps(v, _mm512_loadu_ps(w + i)) : v);
    }
    for (; i < n; i++) y[i] = x[i] * r * (w ? w[i] : 1.0f);
}

static void layernorm_avx512(float *y, const float *x, const float *w, const float *b, int n,
                             float eps) {
    __m512 acc = _mm512_setzero_ps();
    int i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_add_ps(acc, _mm512_loadu_ps(x + i));
    if (i < n) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(tail_mask(n - i), x + i));
    float mean = _mm512_reduce_add_ps(acc) / (float)n;
    __m512 vm = _mm512_set1_ps(mean), a0 = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 d = _mm512_sub_ps(_mm512_loadu_ps(x + i), vm);
        a0 = _mm512_fmadd_ps(d, d, a0);
    }
    if (i < n) {
        __m512 d = _mm512_maskz_sub_ps(tail_mask(n - i), _mm512_maskz_loadu_ps(tail_mask(n - i), x + i), vm);
        a0 = _mm512_fmadd_ps(d, d, a0);
    }
    float r = 1.0f / sqrtf(_mm512_reduce_add_ps(a0) / (float)n + eps);
    __m512 vr = _mm512_set1_ps(r);
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm), vr);
        if (w) v = _mm512_mul_ps(v, _mm512_loadu_ps(w + i));
        if (b) v = _mm512_add_ps(v, _mm512_loadu_ps(b + i));
        _mm512_storeu_ps(y + i, v);
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * r * (w ? w[i] : 1.0f) + (b ? b[i] : 0.0f);
}

static void bf16_to_f32_avx512(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(src + i)));
        _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
    }
    for (; i < n; i++) dst[i] = vlm_bf16_to_f32(src[i]);
}

static void f16_to_f32_avx512(float *dst, const uint16_t *src, size_t n) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(src + i))));
    for (; i < n; i++) dst[i] = vlm_f16_to_f32(src[i]);
}

/* 12 independent zmm accumulators (named, so they live in registers) cover FMA latency x
 * throughput with room. */
static double fma_loop_avx512(float *acc, long iters) {
    __m512 m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(0.001f);
    __m512 a0 = _mm512_set1_ps(acc[0]), a1 = _mm512_set1_ps(acc[1]), a2 = _mm512_set1_ps(acc[2]);
    __m512 a3 = _mm512_set1_ps(acc[3]), a4 = _mm512_set1_ps(acc[4]), a5 = _mm512_set1_ps(acc[5]);
    __m512 a6 = _mm512_set1_ps(acc[6]), a7 = _mm512_set1_ps(acc[7]), a8 = _mm512_set1_ps(acc[8]);
    __m512 a9 = _mm512_set1_ps(acc[9]), a10 = _mm512_set1_ps(acc[10]), a11 = _mm512_set1_ps(acc[11]);
    for (long it = 0; it < iters; it++) {
        a0 = _mm512_fmadd_ps(a0, m, c); a1 = _mm512_fmadd_ps(a1, m, c); a2 = _mm512_fmadd_ps(a2, m, c);
        a3 = _mm512_fmadd_ps(a3, m, c); a4 = _mm512_fmadd_ps(a4, m, c); a5 = _mm512_fmadd_ps(a5, m, c);
        a6 = _mm512_fmadd_ps(a6, m, c); a7 = _mm512_fmadd_ps(a7, m, c); a8 = _mm512_fmadd_ps(a8, m, c);
        a9 = _mm512_fmadd_ps(a9, m, c); a10 = _mm512_fmadd_ps(a10, m, c); a11 = _mm512_fmadd_ps(a11, m, c);
    }
    a0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                       _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
    a8 = _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11));
    acc[0] = _mm512_reduce_add_ps(_mm512_add_ps(a0, a8));
    return 12.0 * 16 * 2 * (double)iters;
}

void vlm_kernels_init_avx512(struct vlm_kernels *k) {
    k->name = "avx512";
    k->matmul = matmul_avx512;
    k->gemm_f32 = gemm_f32_avx512;
    k->dot = dot_avx512;
    k->axpy = axpy_avx512;
    k->dots = dots_avx512;
    k->axpys = axpys_avx512;
    k->fma_loop = fma_loop_avx512;
    k->scale = scale_avx512;
    k->add = add_avx512;
    k->softmax = softmax_avx512;
    k->exp_sum = exp_sum_avx512;
    k->col_max = col_max_avx512;
    k->exp_cols = exp_cols_avx512;
    k->silu = silu_avx512;
    k->gelu_quick = gelu_quick_avx512;
    k->silu_mul = silu_mul_avx512;
    k->gelu_tanh = gelu_tanh_avx512;
    k->gelu_erf = gelu_erf_avx512;
    k->rmsnorm = rmsnorm_avx512;
    k->layernorm = layernorm_avx512;
    k->bf16_to_f32 = bf16_to_f32_avx512;
    k->f16_to_f32 = f16_to_f32_avx512;
}
