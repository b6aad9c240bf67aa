/* kernels_q_avx2.c — matmul_q of the AVX2 table: weights unpacked per 32 elements to unsigned
 * bytes (levels 0..63, or |w| with the sign moved onto x), vpmaddubsw + vpmaddwd against the
 * int8 activations of up to 4 rows, f32 scaling per 16/32 elements. Every output row goes
 * through the same operations whatever the rows beside it (results independent of the split). */
#include "tensor/kernels.h"
#include "tensor/kernels_q_avx2.h"

#include <immintrin.h>
#include <string.h>

/* u8 x s8 products summed in groups of 4 into 8 int32 lanes (no saturation: u <= 128 and
 * |s| <= 127 keep each pair sum within int16). */
static inline __m256 dp(__m256i u, __m256i s) {
    return _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1)));
}

/* Byte v of a Q5 block's high bits as 8 bytes: byte i is 0x10 when bit i of v is set. */
#define HB1(v) ((((v) >> 0 & 1ull) << 4) | (((v) >> 1 & 1ull) << 12) | (((v) >> 2 & 1ull) << 20) |    \
                (((v) >> 3 & 1ull) << 28) | (((v) >> 4 & 1ull) << 36) | (((v) >> 5 & 1ull) << 44) |   \
                (((v) >> 6 & 1ull) << 52) | (((v) >> 7 & 1ull) << 60))
#define HB4(v)  HB1(v), HB1((v) + 1), HB1((v) + 2), HB1((v) + 3)
#define HB16(v) HB4(v), HB4((v) + 4), HB4((v) + 8), HB4((v) + 12)
#define HB64(v) HB16(v), HB16((v) + 16), HB16((v) + 32), HB16((v) + 48)
static const uint64_t hb_tab[256] = {HB64(0), HB64(64), HB64(128), HB64(192)};

/* The high bits (bit 4) of a Q5_0 / Q5_1 block's 32 levels, from hb_tab: four loads instead of
 * a shuffle, a compare and two masks in the vector units. */
static inline __m256i q5_high(const uint8_t *qh) {
    __m128i lo = _mm_set_epi64x((long long)hb_tab[qh[1]], (long long)hb_tab[qh[0]]);
    __m128i hi = _mm_set_epi64x((long long)hb_tab[qh[3]], (long long)hb_tab[qh[2]]);
    return _mm256_set_m128i(hi, lo);
}

/* Q4_0 / Q5_0 levels are stored with an offset (8 / 16) above the signed value; with xo the
 * kernel multiplies the stored (unsigned) levels and subtracts offset * (x pair sums), which
 * gives the same int16 pair sums as |w| . sign(x, w) (both exact) for two fewer vpsignb and no
 * vpsubb per block. xo: per activation row and block, vpmaddubsw(offset, x). */
#define XO_MAX_BLOCKS 256

/* Q8_0, Q4_0, Q4_1, Q5_0, Q5_1: one 32-element block per step. xo: NULL, or (Q4_0 / Q5_0)
 * the offset products of rows r0 .. r0 + NR - 1, nb apart. */
static inline __attribute__((always_inline)) void
rows_b32(enum vlm_dtype wt, const uint8_t *wr, const struct vlm_q8_act *xa, size_t r0, const int NR,
         const __m256i *xo, float *out) {
    int k = xa->k, nb = k / 32;
    const int q8 = wt == VLM_DT_Q8_0, five = wt == VLM_DT_Q5_0 || wt == VLM_DT_Q5_1;
    const int has_min = wt == VLM_DT_Q4_1 || wt == VLM_DT_Q5_1, off = !q8 && !has_min && xo;
    const int bb = q8 ? 34 : wt == VLM_DT_Q4_0 ? 18 : wt == VLM_DT_Q4_1 ? 20 : wt == VLM_DT_Q5_0 ? 22 : 24;
    const int hoff = has_min ? 4 : 2, qoff = q8 ? 2 : hoff + (five ? 4 : 0);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[4];
    float bacc[4];
    for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps(), bacc[r] = 0.0f;
    for (int b = 0; b < nb; b++) {
        const uint8_t *p = wr + (size_t)b * bb;
        __m256i w;
        if (q8) {
            w = _mm256_loadu_si256((const __m256i *)(p + 2));
        } else {
            __m128i q = _mm_loadu_si128((const __m128i *)(p + qoff));
            w = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
            if (five) w = _mm256_or_si256(w, q5_high(p + hoff));
            if (!has_min && !off) w = _mm256_sub_epi8(w, _mm256_set1_epi8(five ? 16 : 8));
        }
        __m256i uw = has_min || off ? w : _mm256_sign_epi8(w, w);   /* |w|, or the stored levels */
        float dw = h2f(p), c = has_min ? h2f(p + 2) : 0.0f;
        for (int r = 0; r < NR; r++) {
            size_t row = r0 + (size_t)r;
            __m256i x = _mm256_loadu_si256((const __m256i *)(xa->q + row * k + 32 * b)), pr;
            if (off) {
                pr = _mm256_sub_epi16(_mm256_maddubs_epi16(uw, x), _mm256_loadu_si256(xo + (size_t)r * nb + b));
            } else {
                if (!has_min) x = _mm256_sign_epi8(x, w);   /* x with w's sign (0 where w = 0) */
                pr = _mm256_maddubs_epi16(uw, x);
            }
            float dx = xa->d[row * nb + b];
            acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(pr, ones)), _mm256_set1_ps(dw * dx), acc[r]);
            if (has_min) {
                const int16_t *s = xa->s + row * (k / 16) + 2 * b;
                bacc[r] += c * dx * (float)(s[0] + s[1]);
            }
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum8(acc[r]) + bacc[r];
}

/* xo of rows r0 .. r0 + NR - 1 for Q4_0 / Q5_0 (see rows_b32); NULL for the other types and
 * past XO_MAX_BLOCKS blocks (the sign path gives the same results). */
static inline __attribute__((always_inline)) const __m256i *
make_xo(enum vlm_dtype wt, const struct vlm_q8_act *xa, size_t r0, int NR, __m256i *xo) {
    int k = xa->k, nb = k / 32;
    if ((wt != VLM_DT_Q4_0 && wt != VLM_DT_Q5_0) || nb > XO_MAX_BLOCKS) return NULL;
    const __m256i o = _mm256_set1_epi8(wt == VLM_DT_Q5_0 ? 16 : 8);
    for (int r = 0; r < NR; r++)
        for (int b = 0; b < nb; b++)
            _mm256_storeu_si256(xo + (size_t)r * nb + b,
                                _mm256_maddubs_epi16(o, _mm256_loadu_si256((const __m256i *)(xa->q + (r0 + r) * (size_t)k + 32 * b))));
    return xo;
}

/* Q4_K / Q5_K: per 256, 8 sub-blocks of 32 with scale d*sc[j] and min dmin*m[j]. */
static inline __attribute__((always_inline)) void
rows_q4_k(int five, const uint8_t *wr, const struct vlm_q8_act *xa, size_t r0, const int NR, float *out) {
    int k = xa->k, nsb = k / 256;
    const size_t bb = five ? 176 : 144;
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    __m256 acc[4], macc[4];
    for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps(), macc[r] = _mm256_setzero_ps();
    for (int sb = 0; sb < nsb; sb++) {
        const uint8_t *p = wr + (size_t)sb * bb, *qs = p + (five ? 48 : 16);
        __m256 scv, mnv;
        k4_factors(p, &scv, &mnv);
        __m256i W[8];
        __m256i H = five ? _mm256_loadu_si256((const __m256i *)(p + 16)) : _mm256_setzero_si256();
        for (int c = 0; c < 4; c++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * c));
            W[2 * c] = _mm256_and_si256(v, m4);
            W[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
        }
        if (five)
            for (int j = 0; j < 8; j++)
                W[j] = _mm256_or_si256(W[j], _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(H, j), one), 4));
        for (int r = 0; r < NR; r++) {
            size_t row = r0 + (size_t)r;
            const int8_t *x = xa->q + row * k + 256 * sb;
            __m256 dx = _mm256_loadu_ps(xa->d + row * (k / 32) + 8 * sb);
            float f[8];
            _mm256_storeu_ps(f, _mm256_mul_ps(scv, dx));
            for (int j = 0; j < 8; j++)
                acc[r] = _mm256_fmadd_ps(dp(W[j], _mm256_loadu_si256((const __m256i *)(x + 32 * j))),
                                         _mm256_set1_ps(f[j]), acc[r]);
            __m256i s16 = _mm256_loadu_si256((const __m256i *)(xa->s + row * (k / 16) + 16 * sb));
            __m256 s32 = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
            macc[r] = _mm256_fmadd_ps(_mm256_mul_ps(mnv, dx), s32, macc[r]);
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum8(acc[r]) - hsum8(macc[r]);
}

/* Q6_K: per 256, levels 0..63 in 8 vectors of 32, scale d*sc[g] per 16, offset -32. */
static inline __attribute__((always_inline)) void
rows_q6_k(const uint8_t *wr, const struct vlm_q8_act *xa, size_t r0, const int NR, float *out) {
    int k = xa->k, nsb = k / 256;
    const __m256i lo_i = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3), hi_i = _mm256_setr_epi32(4, 4, 5, 5, 6, 6, 7, 7);
    __m256 acc[4], oacc[4];
    for (int r = 0; r < NR; r++) acc[r] = _mm256_setzero_ps(), oacc[r] = _mm256_setzero_ps();
    for (int sb = 0; sb < nsb; sb++) {
        const uint8_t *p = wr + (size_t)sb * 210;
        __m256i W[8];
        __m256 a0, a1;
        q6_unpack(p, W, &a0, &a1);
        for (int r = 0; r < NR; r++) {
            size_t row = r0 + (size_t)r;
            const int8_t *x = xa->q + row * k + 256 * sb;
            __m256 dx = _mm256_loadu_ps(xa->d + row * (k / 32) + 8 * sb);
            __m256 f0 = _mm256_mul_ps(a0, _mm256_permutevar8x32_ps(dx, lo_i));
            __m256 f1 = _mm256_mul_ps(a1, _mm256_permutevar8x32_ps(dx, hi_i));
            float f[16];
            _mm256_storeu_ps(f, f0);
            _mm256_storeu_ps(f + 8, f1);
            for (int c = 0; c < 8; c++) {
                __m256 fc = _mm256_set_m128(_mm_broadcast_ss(f + 2 * c + 1), _mm_broadcast_ss(f + 2 * c));
                acc[r] = _mm256_fmadd_ps(dp(W[c], _mm256_loadu_si256((const __m256i *)(x + 32 * c))), fc, acc[r]);
            }
            const int16_t *s = xa->s + row * (k / 16) + 16 * sb;
            __m256 s0 = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)s)));
            __m256 s1 = _mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(_mm_loadu_si128((const __m128i *)(s + 8))));
            oacc[r] = _mm256_fmadd_ps(f1, s1, _mm256_fmadd_ps(f0, s0, oacc[r]));
        }
    }
    for (int r = 0; r < NR; r++) out[r] = hsum8(acc[r]) - 32.0f * hsum8(oacc[r]);
}

static inline __attribute__((always_inline)) void
rows(enum vlm_dtype wt, const uint8_t *wr, const struct vlm_q8_act *xa, size_t r0, const int NR, const __m256i *xo,
     float *out) {
    switch (wt) {
    case VLM_DT_Q4_K: rows_q4_k(0, wr, xa, r0, NR, out); break;
    case VLM_DT_Q5_K: rows_q4_k(1, wr, xa, r0, NR, out); break;
    case VLM_DT_Q6_K: rows_q6_k(wr, xa, r0, NR, out); break;
    default: rows_b32(wt, wr, xa, r0, NR, xo, out); break;
    }
}

#define COLS(T, NR)                                                                                  \
    static void cols_##T##_##NR(const struct vlm_q8_act *xa, size_t r0, const uint8_t *w, size_t ldw, \
                                int n0, int n1, const float *bias, float *y, int ldy) {              \
        __m256i xo_[(T == VLM_DT_Q4_0 || T == VLM_DT_Q5_0) ? NR * XO_MAX_BLOCKS : 1];                  \
        const __m256i *xo = make_xo(T, xa, r0, NR, xo_);                                             \
        for (int j = n0; j < n1; j++) {                                                              \
            float out[4];                                                                            \
            if (NR == 1 && j + 4 < n1) /* decode: a row 4 ahead on its way (more misses in flight) */ \
                for (size_t o = 0; o < ldw; o += 64) _mm_prefetch((const char *)w + (size_t)(j + 4) * ldw + o, _MM_HINT_T0); \
            rows(T, w + (size_t)j * ldw, xa, r0, NR, xo, out);                                           \
            for (int r = 0; r < NR; r++) y[(size_t)r * ldy + j] = bias ? out[r] + bias[j] : out[r];  \
        }                                                                                            \
    }
#define COLS4(T) COLS(T, 1) COLS(T, 2) COLS(T, 3) COLS(T, 4)
COLS4(VLM_DT_Q8_0)
COLS4(VLM_DT_Q4_0)
COLS4(VLM_DT_Q4_1)
COLS4(VLM_DT_Q5_0)
COLS4(VLM_DT_Q5_1)
COLS4(VLM_DT_Q4_K)
COLS4(VLM_DT_Q5_K)
COLS4(VLM_DT_Q6_K)

typedef void (*cols_fn)(const struct vlm_q8_act *, size_t, const uint8_t *, size_t, int, int, const float *,
                        float *, int);
#define ROW(T) {cols_##T##_1, cols_##T##_2, cols_##T##_3, cols_##T##_4}

static void matmul_q_avx2(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt, const void *w,
                          size_t ldw, int n0, int n1, const float *bias, float *y, int ldy) {
    static const cols_fn fn[8][4] = {ROW(VLM_DT_Q8_0), ROW(VLM_DT_Q4_0), ROW(VLM_DT_Q4_1), ROW(VLM_DT_Q5_0),
                                     ROW(VLM_DT_Q5_1), ROW(VLM_DT_Q4_K), ROW(VLM_DT_Q5_K), ROW(VLM_DT_Q6_K)};
    if (wt < VLM_DT_Q8_0 || wt > VLM_DT_Q6_K) return;
    for (int i = 0; i < m; i += 4) {
        int nr = m - i < 4 ? m - i : 4;
        fn[wt - VLM_DT_Q8_0][nr - 1](xa, (size_t)(i0 + i), w, ldw, n0, n1, bias, y + (size_t)i * ldy, ldy);
    }
}

/* vlm_f32_to_bf16's integer rounding, 8 lanes at a time; the tail in scalar. */
static void round_bf16_avx2(float *dst, const float *src, size_t n) {
    const __m256i hi = _mm256_set1_epi32((int)0xffff0000u), abs = _mm256_set1_epi32(0x7fffffff);
    const __m256i inf = _mm256_set1_epi32(0x7f800000), quiet = _mm256_set1_epi32(0x00400000);
    const __m256i bias = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(src + i));
        __m256i r = _mm256_add_epi32(_mm256_add_epi32(u, bias), _mm256_and_si256(_mm256_srli_epi32(u, 16), one));
        r = _mm256_and_si256(r, hi);
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);   /* both < 2^31 */
        r = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_and_si256(u, hi), quiet), nan);
        _mm256_storeu_si256((__m256i *)(dst + i), r);
    }
    for (; i < n; i++) dst[i] = vlm_bf16_to_f32(vlm_f32_to_bf16(src[i]));
}

void vlm_kernels_init_q_avx2(struct vlm_kernels *k) {
    k->matmul_q = matmul_q_avx2;
    k->round_bf16 = round_bf16_avx2;
}
