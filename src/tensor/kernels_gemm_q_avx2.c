/* kernels_gemm_q_avx2.c — gemm_q of the AVX2 table: block-type weights times many int8
 * activation rows (prefill, the vision tower). GQ_NR weight columns at a time are unpacked once
 * per call into a panel of byte levels (|w| with w kept for its sign, or the unsigned levels of
 * the types with a min) and f32 factors, then register tiles of up to GQ_MR activation rows x
 * GQ_NR columns run over it. Every element goes through exactly the operations of the row
 * kernels of kernels_q_avx2.c (vpmaddubsw + vpmaddwd per 32, one FMA by d_w*d_x into 8 lanes,
 * the min/offset sums last), so results equal matmul_q's bit for bit, whatever the split. */
#include "tensor/kernels.h"
#include "tensor/kernels_q_avx2.h"
#include "util/alloc.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define GQ_MR 4
#define GQ_NR 2

/* The panel of GQ_NR columns over nb blocks of 32. Block b of column c: levels at
 * u + (b*GQ_NR + c)*32 (unsigned: |w| for the signed types), their signed values at s (same
 * layout; Q8_0, Q4_0, Q5_0 only), the factor per 16 elements a0 x4 | a1 x4 at
 * a + (b*GQ_NR + c)*8. Per column at cf + c*G (G = k/16): Q4_1/Q5_1 the min per block,
 * Q4_K/Q5_K dmin*m per sub-block, Q6_K d*sc per 16. */
struct panel {
    uint8_t *u;
    int8_t  *s;
    float   *a, *cf;
    int      nb, G;
};

static inline void put_a(const struct panel *P, int b, int c, __m128 a0, __m128 a1) {
    _mm256_storeu_ps(P->a + ((size_t)b * GQ_NR + c) * 8, _mm256_set_m128(a1, a0));
}

static inline void put_u(const struct panel *P, int b, int c, __m256i u) {
    _mm256_storeu_si256((__m256i *)(P->u + ((size_t)b * GQ_NR + c) * 32), u);
}

/* Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: one 32-element block per step. */
static void unpack_b32(const struct panel *P, enum vlm_dtype wt, const uint8_t *wr, int c) {
    const int has_min = wt == VLM_DT_Q4_1 || wt == VLM_DT_Q5_1, bb = b32_bytes(wt);
    float *cf = P->cf + (size_t)c * P->G;
    for (int b = 0; b < P->nb; b++) {
        const uint8_t *p = wr + (size_t)b * bb;
        __m256i w = b32_levels(wt, p);
        __m128 d = _mm_set1_ps(h2f(p));
        put_a(P, b, c, d, d);
        if (has_min) {
            put_u(P, b, c, w);
            cf[b] = h2f(p + 2);
        } else {
            put_u(P, b, c, _mm256_sign_epi8(w, w));
            _mm256_storeu_si256((__m256i *)(P->s + ((size_t)b * GQ_NR + c) * 32), w);
        }
    }
}

/* Q4_K / Q5_K: per 256, sub-block j of 32 has factor d*sc[j] and min dmin*m[j]. */
static void unpack_q4_k(const struct panel *P, int five, const uint8_t *wr, int c) {
    const size_t bb = five ? 176 : 144;
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    float *cf = P->cf + (size_t)c * P->G;
    for (int sb = 0; sb < P->nb / 8; sb++) {
        const uint8_t *p = wr + (size_t)sb * bb, *qs = p + (five ? 48 : 16);
        __m256 scv8, mnv;
        k4_factors(p, &scv8, &mnv);
        float scv[8];
        _mm256_storeu_ps(scv, scv8);
        _mm256_storeu_ps(cf + 8 * sb, mnv);
        __m256i H = five ? _mm256_loadu_si256((const __m256i *)(p + 16)) : _mm256_setzero_si256();
        for (int j = 0; j < 8; j++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * (j / 2)));
            __m256i u = _mm256_and_si256(j & 1 ? _mm256_srli_epi16(v, 4) : v, m4);
            if (five) u = _mm256_or_si256(u, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, j), one), 4));
            put_u(P, 8 * sb + j, c, u);
            put_a(P, 8 * sb + j, c, _mm_set1_ps(scv[j]), _mm_set1_ps(scv[j]));
        }
    }
}

/* Q6_K: per 256, levels 0..63 in 8 pieces of 32, factor d*sc[g] per 16 (offset -32 last). */
static void unpack_q6_k(const struct panel *P, const uint8_t *wr, int c) {
    float *cf = P->cf + (size_t)c * P->G;
    for (int sb = 0; sb < P->nb / 8; sb++) {
        const uint8_t *p = wr + (size_t)sb * 210;
        __m256i W[8];
        __m256 a0, a1;
        q6_unpack(p, W, &a0, &a1);
        float *a = cf + 16 * sb;
        _mm256_storeu_ps(a, a0);
        _mm256_storeu_ps(a + 8, a1);
        for (int j = 0; j < 8; j++) {
            put_u(P, 8 * sb + j, c, W[j]);
            put_a(P, 8 * sb + j, c, _mm_set1_ps(a[2 * j]), _mm_set1_ps(a[2 * j + 1]));
        }
    }
}

/* Column c of the panel from weight row wr, or zeros (a column past the end). */
static void unpack_col(const struct panel *P, enum vlm_dtype wt, const uint8_t *wr, int c) {
    if (!wr) {
        for (int b = 0; b < P->nb; b++) {
            put_u(P, b, c, _mm256_setzero_si256());
            put_a(P, b, c, _mm_setzero_ps(), _mm_setzero_ps());
            if (P->s) memset(P->s + ((size_t)b * GQ_NR + c) * 32, 0, 32);
        }
        memset(P->cf + (size_t)c * P->G, 0, (size_t)P->G * sizeof(float));
        return;
    }
    switch (wt) {
    case VLM_DT_Q4_K: unpack_q4_k(P, 0, wr, c); break;
    case VLM_DT_Q5_K: unpack_q4_k(P, 1, wr, c); break;
    case VLM_DT_Q6_K: unpack_q6_k(P, wr, c); break;
    default: unpack_b32(P, wt, wr, c); break;
    }
}

/* The terms after the 8-lane sum acc of one (row, column), in matmul_q_avx2's order: the
 * Q4_1/Q5_1 mins per block, the Q4_K/Q5_K mins and the Q6_K offset per 256. */
static inline float finish(const struct panel *P, enum vlm_dtype wt, const float *cf, const float *xd,
                           const int16_t *xs, __m256 acc) {
    const int nb = P->nb;
    if (wt == VLM_DT_Q4_1 || wt == VLM_DT_Q5_1) {
        float bacc = 0.0f;
        for (int b = 0; b < nb; b++) bacc += cf[b] * xd[b] * (float)(xs[2 * b] + xs[2 * b + 1]);
        return hsum8(acc) + bacc;
    }
    if (wt == VLM_DT_Q4_K || wt == VLM_DT_Q5_K) {
        __m256 macc = _mm256_setzero_ps();
        for (int sb = 0; sb < nb / 8; sb++) {
            __m256i s16 = _mm256_loadu_si256((const __m256i *)(xs + 16 * sb));
            __m256 s32 = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
            macc = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(cf + 8 * sb), _mm256_loadu_ps(xd + 8 * sb)), s32, macc);
        }
        return hsum8(acc) - hsum8(macc);
    }
    if (wt == VLM_DT_Q6_K) {
        const __m256i lo_i = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), hi_i = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
        __m256 oacc = _mm256_setzero_ps();
        for (int sb = 0; sb < nb / 8; sb++) {
            __m256 dx = _mm256_loadu_ps(xd + 8 * sb);
            __m256 f0 = _mm256_mul_ps(_mm256_loadu_ps(cf + 16 * sb), _mm256_permutevar8x32_ps(dx, lo_i));
            __m256 f1 = _mm256_mul_ps(_mm256_loadu_ps(cf + 16 * sb + 8), _mm256_permutevar8x32_ps(dx, hi_i));
            const int16_t *s = xs + 16 * sb;
            __m256 s0 = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)s)));
            __m256 s1 = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(s + 8))));
            oacc = _mm256_fmadd_ps(f1, s1, _mm256_fmadd_ps(f0, s0, oacc));
        }
        return hsum8(acc) - 32.0f * hsum8(oacc);
    }
    return hsum8(acc);
}

/* RM rows (xa rows r0..r0+RM) x GQ_NR panel columns; y row i column c at y[i*ldy + c] for
 * c < nc. SG: the x signs come from the panel's signed levels. */
static inline __attribute__((always_inline)) void
tile(const struct panel *P, enum vlm_dtype wt, const struct vlm_q8_act *xa, size_t r0, const int RM,
     const int SG, int nc, const float *bias, float *y, int ldy) {
    const int k = xa->k, nb = P->nb;
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[GQ_MR][GQ_NR];
    const int8_t *xq[GQ_MR];
    const float *xd[GQ_MR];
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++) {
        xq[r] = xa->q + (r0 + r) * (size_t)k;
        xd[r] = xa->d + (r0 + r) * (size_t)nb;
#pragma GCC unroll 4
        for (int c = 0; c < GQ_NR; c++) acc[r][c] = _mm256_setzero_ps();
    }
    for (int b = 0; b < nb; b++) {
        const uint8_t *pu = P->u + (size_t)b * GQ_NR * 32;
        const float *pa = P->a + (size_t)b * GQ_NR * 8;
        __m256i u[GQ_NR];
#pragma GCC unroll 4
        for (int c = 0; c < GQ_NR; c++) u[c] = _mm256_loadu_si256((const __m256i *)(pu + 32 * c));
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++) {
            __m256i x = _mm256_loadu_si256((const __m256i *)(xq[r] + 32 * b));
            __m256 dx = _mm256_broadcast_ss(xd[r] + b);
#pragma GCC unroll 4
            for (int c = 0; c < GQ_NR; c++) {
                __m256i xs = x;
                if (SG) xs = _mm256_sign_epi8(x, _mm256_loadu_si256((const __m256i *)(P->s + ((size_t)b * GQ_NR + c) * 32)));
                __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(u[c], xs), ones);
                acc[r][c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_mul_ps(_mm256_loadu_ps(pa + 8 * c), dx), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++)
#pragma GCC unroll 4
        for (int c = 0; c < GQ_NR; c++) {
            if (c >= nc) continue;
            float v = finish(P, wt, P->cf + (size_t)c * P->G, xd[r], xa->s + (r0 + r) * (size_t)P->G, acc[r][c]);
            y[(size_t)r * ldy + c] = bias ? v + bias[c] : v;
        }
}

#define TILE_FN(RM, SG)                                                                                 \
    static void tile_##RM##_##SG(const struct panel *P, enum vlm_dtype wt, const struct vlm_q8_act *xa, \
                                 size_t r0, int nc, const float *bias, float *y, int ldy) {           \
        tile(P, wt, xa, r0, RM, SG, nc, bias, y, ldy);                                                 \
    }
TILE_FN(1, 0) TILE_FN(2, 0) TILE_FN(3, 0) TILE_FN(4, 0)
TILE_FN(1, 1) TILE_FN(2, 1) TILE_FN(3, 1) TILE_FN(4, 1)

typedef void (*tile_fn)(const struct panel *, enum vlm_dtype, const struct vlm_q8_act *, size_t, int,
                        const float *, float *, int);

static void gemm_q_avx2(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt, const void *w,
                        size_t ldw, int n0, int n1, const float *bias, float *y, int ldy) {
    static const tile_fn fn[2][GQ_MR] = {{tile_1_0, tile_2_0, tile_3_0, tile_4_0},
                                         {tile_1_1, tile_2_1, tile_3_1, tile_4_1}};
    if (wt < VLM_DT_Q8_0 || wt > VLM_DT_Q6_K || m <= 0 || n0 >= n1) return;
    const int k = xa->k, nb = k / 32, G = k / 16;
    const int sg = wt == VLM_DT_Q8_0 || wt == VLM_DT_Q4_0 || wt == VLM_DT_Q5_0;
    size_t ub = (size_t)nb * GQ_NR * 32, ab = (size_t)nb * GQ_NR * 8 * sizeof(float);
    size_t cb = (size_t)G * GQ_NR * sizeof(float);
    char *buf = vlm_malloc(ub * (sg ? 2 : 1) + ab + cb);
    if (!buf) {   /* no memory for the panel: NaN, as the driver does when it cannot compute */
        for (int i = 0; i < m; i++)
            for (int j = n0; j < n1; j++) y[(size_t)i * ldy + j] = NAN;
        return;
    }
    struct panel P = {.u = (uint8_t *)buf, .a = (float *)(buf + ub), .cf = (float *)(buf + ub + ab),
                      .s = sg ? (int8_t *)(buf + ub + ab + cb) : NULL, .nb = nb, .G = G};
    for (int j = n0; j < n1; j += GQ_NR) {
        int nc = n1 - j < GQ_NR ? n1 - j : GQ_NR;
        for (int c = 0; c < GQ_NR; c++)
            unpack_col(&P, wt, c < nc ? (const uint8_t *)w + (size_t)(j + c) * ldw : NULL, c);
        for (int i = 0; i < m; i += GQ_MR) {
            int rows = m - i < GQ_MR ? m - i : GQ_MR;
            fn[sg][rows - 1](&P, wt, xa, (size_t)(i0 + i), nc, bias ? bias + j : NULL, y + (size_t)i * ldy + j, ldy);
        }
    }
    vlm_free(buf);
}

/* vlm_q8_act_quantize's bytes, 32 elements per step: the same amax (NaN ignored as fmaxf
 * does), the same scalar d and 1/d, products rounded half to even by vcvtps2dq as lrintf does
 * (NaN and out-of-range give INT_MIN, clamped to -127 as the scalar's LONG_MIN). */
static void q8_act_quantize_avx2(const struct vlm_q8_act *xa, const float *x, int ldx, int r0, int r1) {
    const int k = xa->k;
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * ldx;
        int8_t *q = xa->q + (size_t)r * k;
        float *d = xa->d + (size_t)r * (k / 32);
        int16_t *s = xa->s + (size_t)r * (k / 16);
        for (int b = 0; b < k / 32; b++) {
            __m256 v[4], m = _mm256_setzero_ps();
            for (int i = 0; i < 4; i++) {
                v[i] = _mm256_loadu_ps(xr + 32 * b + 8 * i);
                m = _mm256_max_ps(_mm256_andnot_ps(sign, v[i]), m);   /* NaN lanes keep m */
            }
            __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
            h = _mm_max_ps(h, _mm_movehl_ps(h, h));
            h = _mm_max_ss(h, _mm_movehdup_ps(h));
            float amax = _mm_cvtss_f32(h), db = amax / 127.0f, id = db > 0.0f ? 1.0f / db : 0.0f;
            d[b] = db;
            __m256 idv = _mm256_set1_ps(id);
            __m256i qi[4];
            for (int i = 0; i < 4; i++)
                qi[i] = _mm256_max_epi32(_mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(v[i], idv)), hi), lo);
            for (int g = 0; g < 2; g++) {
                __m256i t = _mm256_add_epi32(qi[2 * g], qi[2 * g + 1]);
                __m128i u = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));
                u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0x4e));
                u = _mm_add_epi32(u, _mm_shuffle_epi32(u, 0xb1));
                s[2 * b + g] = (int16_t)_mm_cvtsi128_si32(u);
            }
            __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(qi[0], qi[1]), _mm256_packs_epi32(qi[2], qi[3]));
            _mm256_storeu_si256((__m256i *)(q + 32 * b), _mm256_permutevar8x32_epi32(p, order));
        }
    }
}

void vlm_kernels_init_gemm_q_avx2(struct vlm_kernels *k) {
    k->gemm_q = gemm_q_avx2;
    k->q8_act_quantize = q8_act_quantize_avx2;
}
