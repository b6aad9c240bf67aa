/* kernels_q_avx512_body.h — the AVX-512 block-type matmul, included twice by
 * kernels_q_avx512.c: once with VNNI (vpdpbusd) and once without (vpmaddubsw + vpmaddwd),
 * QF(name) naming each copy. Weights are unpacked once per block to unsigned bytes (levels
 * 0..63, or |w| with the sign moved onto x for Q8_0) and dotted with the int8 activations of
 * up to 4 rows; the 32-bit lane sums are scaled per 16/32 elements in f32. Every output row
 * goes through the same operations whatever the number of rows beside it. */

/* Q8_0: 2 blocks (64 elements) per step, the last odd block with the upper half zero. */
static inline __attribute__((always_inline)) void
QF(rows_q8_0)(const uint8_t *wr, const struct vlm_q8_act *xa, size_t r0, const int NR, float *out) {
    int k = xa->k, nb = k / 32;
    __m512 acc[4];
    const __m512i idx01 = _mm512_loadu_si512(q_idx_pair);
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps();
    for (int b = 0; b < nb; b += 2) {
        const uint8_t *p = wr + (size_t)b * 34;
        int two = b + 1 < nb;
        __m256i w0 = _mm256_loadu_si256((const __m256i *)(p + 2));
        __m256i w1 = two ? _mm256_loadu_si256((const __m256i *)(p + 36)) : _mm256_setzero_si256();
        __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1);
        __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(h2f(p)), _mm256_set1_ps(two ? h2f(p + 34) : 0.0f), 1);
        __m512i uw = _mm512_abs_epi8(w);
        __mmask64 neg = _mm512_movepi8_mask(w);
        __mmask64 lm = two ? ~(__mmask64)0 : 0xffffffffull;
        for (int r = 0; r < NR; r++) {
            size_t row = r0 + (size_t)r;
            __m512i x = _mm512_maskz_loadu_epi8(lm, xa->q + row * k + 32 * b);
            x = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
            const float *d = xa->d + row * nb + b;
            __m128 d2 = two ? _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)d)) : _mm_load_ss(d);
            __m512 dx = _mm512_permutexvar_ps(idx01, _mm512_castps128_ps512(d2));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(QF(dp)(uw, x)), _mm512_mul_ps(dw, dx), acc[r]);
        }
    }
    for (int r = 0; r < NR; r++) out[r] = _mm512_reduce_add_ps(acc[r]);
}

/* Q4_0, Q4_1, Q5_0, Q5_1: 2 blocks per step; levels 0..15 (0..31) scaled by d, plus a per-block
 * offset (-8d, -16d or the stored min) times the activation block's sum. */
static inline __attribute__((always_inline)) void
QF(rows_q4_0)(enum vlm_dtype wt, const uint8_t *wr, const struct vlm_q8_act *xa, size_t r0,
              const int NR, float *out) {
    int k = xa->k, nb = k / 32;
    const int five = wt == VLM_DT_Q5_0 || wt == VLM_DT_Q5_1, has_min = wt == VLM_DT_Q4_1 || wt == VLM_DT_Q5_1;
    const int bb = wt == VLM_DT_Q4_0 ? 18 : wt == VLM_DT_Q4_1 ? 20 : wt == VLM_DT_Q5_0 ? 22 : 24;
    const int hoff = has_min ? 4 : 2, qoff = hoff + (five ? 4 : 0);
    const float off = wt == VLM_DT_Q4_0 ? -8.0f : -16.0f;
    const __m512i idx01 = _mm512_loadu_si512(q_idx_pair);
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m512 acc[4];
    float bacc[4];
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps(), bacc[r] = 0.0f;
    for (int b = 0; b < nb; b += 2) {
        const uint8_t *p0 = wr + (size_t)b * bb, *p1 = p0 + bb;
        int two = b + 1 < nb;
        __m128i q0 = _mm_loadu_si128((const __m128i *)(p0 + qoff));
        __m128i q1 = two ? _mm_loadu_si128((const __m128i *)(p1 + qoff)) : _mm_setzero_si128();
        __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
        __m256i lo = _mm256_and_si256(a, m4), hi = _mm256_and_si256(_mm256_srli_epi16(a, 4), m4);
        __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
        z = _mm512_shuffle_i64x2(z, z, 0xD8);   /* [b0 lo, b0 hi, b1 lo, b1 hi] */
        if (five) {
            uint64_t h = rd32(p0 + hoff) | (two ? (uint64_t)rd32(p1 + hoff) << 32 : 0);
            z = _mm512_mask_add_epi8(z, (__mmask64)h, z, _mm512_set1_epi8(0x10));
        }
        float d0 = h2f(p0), d1 = two ? h2f(p1) : 0.0f;
        __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1);
        __mmask64 lm = two ? ~(__mmask64)0 : 0xffffffffull;
        __mmask64 neg = 0;
        if (!has_min) {   /* levels minus 8 (16), signed: |w| against x with w's sign */
            z = _mm512_sub_epi8(z, _mm512_set1_epi8((char)-off));
            neg = _mm512_movepi8_mask(z);
            z = _mm512_abs_epi8(z);
        }
        float c0 = has_min ? h2f(p0 + 2) : 0.0f, c1 = has_min && two ? h2f(p1 + 2) : 0.0f;
        for (int r = 0; r < NR; r++) {
            size_t row = r0 + (size_t)r;
            __m512i x = _mm512_maskz_loadu_epi8(lm, xa->q + row * k + 32 * b);
            if (!has_min) x = _mm512_mask_sub_epi8(x, neg, _mm512_setzero_si512(), x);
            const float *d = xa->d + row * nb + b;
            __m128 d2 = two ? _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)d)) : _mm_load_ss(d);
            __m512 dx = _mm512_permutexvar_ps(idx01, _mm512_castps128_ps512(d2));
            acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(QF(dp)(z, x)), _mm512_mul_ps(dw, dx), acc[r]);
            if (has_min) {
                const int16_t *s = xa->s + row * (k / 16) + 2 * b;
                bacc[r] += c0 * d[0] * (float)(s[0] + s[1]);
                if (two) bacc[r] += c1 * d[1] * (float)(s[2] + s[3]);
            }
        }
    }
    for (int r = 0; r < NR; r++) out[r] = _mm512_reduce_add_ps(acc[r]) + bacc[r];
}

/* Q4_K / Q5_K: per 256, levels 0..15 (0..31) in 4 vectors of 64, scale d*sc[j] and min
 * dmin*m[j] per 32. */
static inline __attribute__((always_inline)) void
QF(rows_q4_k)(int five, const uint8_t *wr, const struct vlm_q8_act *xa, size_t r0, const int NR,
              float *out) {
    int k = xa->k, nsb = k / 256;
    const size_t bb = five ? 176 : 144;
    __m512 acc[4];
    __m256 macc[4];
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps(), macc[r] = _mm256_setzero_ps();
    for (int sb = 0; sb < nsb; sb++) {
        const uint8_t *p = wr + (size_t)sb * bb;
        __m256 scv, mnv;
        __m512i W[4];
        k4_factors(p, &scv, &mnv);
        k4_levels(p, five, W);
        for (int r = 0; r < NR; r++) {
            size_t row = r0 + (size_t)r;
            const int8_t *x = xa->q + row * k + 256 * sb;
            __m256 dx = _mm256_loadu_ps(xa->d + row * (k / 32) + 8 * sb);
            __m512 f = _mm512_castps256_ps512(_mm256_mul_ps(scv, dx));
            for (int c = 0; c < 4; c++) {
                __m512 fc = _mm512_permutexvar_ps(_mm512_loadu_si512(q_idx_sub32[c]), f);
                __m512i pr = QF(dp)(W[c], _mm512_loadu_si512(x + 64 * c));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pr), fc, acc[r]);
            }
            __m256i s16 = _mm256_loadu_si256((const __m256i *)(xa->s + row * (k / 16) + 16 * sb));
            __m256 s32 = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
            macc[r] = _mm256_fmadd_ps(_mm256_mul_ps(mnv, dx), s32, macc[r]);
        }
    }
    for (int r = 0; r < NR; r++) out[r] = _mm512_reduce_add_ps(acc[r]) - hsum8(macc[r]);
}

/* Q6_K: per 256, levels 0..63 (low nibbles of ql, 2 bits of qh) in 4 vectors of 64, scale
 * d*sc[g] per 16, offset -32 per level. */
static inline __attribute__((always_inline)) void
QF(rows_q6_k)(const uint8_t *wr, const struct vlm_q8_act *xa, size_t r0, const int NR, float *out) {
    int k = xa->k, nsb = k / 256;
    const __m512i dup = _mm512_loadu_si512(q_idx_dup);
    __m512 acc[4], oacc[4];
    for (int r = 0; r < NR; r++) acc[r] = _mm512_setzero_ps(), oacc[r] = _mm512_setzero_ps();
    for (int sb = 0; sb < nsb; sb++) {
        __m512 a16;
        __m512i W[4];
        q6k_levels(wr + (size_t)sb * 210, W, &a16);
        for (int r = 0; r < NR; r++) {
            size_t row = r0 + (size_t)r;
            const int8_t *x = xa->q + row * k + 256 * sb;
            __m512 dx = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(xa->d + row * (k / 32) + 8 * sb)));
            __m512 f = _mm512_mul_ps(a16, dx);
            for (int c = 0; c < 4; c++) {
                __m512 fc = _mm512_permutexvar_ps(_mm512_loadu_si512(q_idx_sub16[c]), f);
                __m512i pr = QF(dp)(W[c], _mm512_loadu_si512(x + 64 * c));
                acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(pr), fc, acc[r]);
            }
            __m512 s = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(xa->s + row * (k / 16) + 16 * sb))));
            oacc[r] = _mm512_fmadd_ps(f, s, oacc[r]);
        }
    }
    for (int r = 0; r < NR; r++) out[r] = _mm512_reduce_add_ps(acc[r]) - 32.0f * _mm512_reduce_add_ps(oacc[r]);
}

static inline __attribute__((always_inline)) void
QF(rows)(enum vlm_dtype wt, const uint8_t *wr, const struct vlm_q8_act *xa, size_t r0, const int NR, float *out) {
    switch (wt) {
    case VLM_DT_Q8_0: QF(rows_q8_0)(wr, xa, r0, NR, out); break;
    case VLM_DT_Q4_K: QF(rows_q4_k)(0, wr, xa, r0, NR, out); break;
    case VLM_DT_Q5_K: QF(rows_q4_k)(1, wr, xa, r0, NR, out); break;
    case VLM_DT_Q6_K: QF(rows_q6_k)(wr, xa, r0, NR, out); break;
    default: QF(rows_q4_0)(wt, wr, xa, r0, NR, out); break;
    }
}

/* One weight type x up to 4 activation rows, over columns [n0, n1): the type and row count
 * are constants inside, so each instance is straight-line code. */
#define QF_COLS(T, NR)                                                                               \
    static void QF(cols_##T##_##NR)(const struct vlm_q8_act *xa, size_t r0, const uint8_t *w,        \
                                    size_t ldw, int n0, int n1, const float *bias, float *y, int ldy) { \
        for (int j = n0; j < n1; j++) {                                                              \
            float out[4];                                                                            \
            if (NR == 1 && j + QF_AHEAD < n1) /* decode: the row QF_AHEAD ahead on its way */        \
                for (size_t o = 0; o < ldw; o += 64)                                                 \
                    _mm_prefetch((const char *)w + (size_t)(j + QF_AHEAD) * ldw + o, _MM_HINT_T0);   \
            QF(rows)(T, (const uint8_t *)w + (size_t)j * ldw, xa, r0, NR, out);                     \
            for (int r = 0; r < NR; r++) y[(size_t)r * ldy + j] = bias ? out[r] + bias[j] : out[r];  \
        }                                                                                            \
    }
#define QF_COLS4(T) QF_COLS(T, 1) QF_COLS(T, 2) QF_COLS(T, 3) QF_COLS(T, 4)
QF_COLS4(VLM_DT_Q8_0)
QF_COLS4(VLM_DT_Q4_0)
QF_COLS4(VLM_DT_Q4_1)
QF_COLS4(VLM_DT_Q5_0)
QF_COLS4(VLM_DT_Q5_1)
QF_COLS4(VLM_DT_Q4_K)
QF_COLS4(VLM_DT_Q5_K)
QF_COLS4(VLM_DT_Q6_K)
#undef QF_COLS4
#undef QF_COLS

typedef void (*QF(cols_fn))(const struct vlm_q8_act *, size_t, const uint8_t *, size_t, int, int,
                            const float *, float *, int);
#define QF_ROW(T) {QF(cols_##T##_1), QF(cols_##T##_2), QF(cols_##T##_3), QF(cols_##T##_4)}

static void QF(matmul_q)(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt,
                         const void *w, size_t ldw, int n0, int n1, const float *bias, float *y,
                         int ldy) {
    static const QF(cols_fn) fn[8][4] = {QF_ROW(VLM_DT_Q8_0), QF_ROW(VLM_DT_Q4_0), QF_ROW(VLM_DT_Q4_1),
                                         QF_ROW(VLM_DT_Q5_0), QF_ROW(VLM_DT_Q5_1), QF_ROW(VLM_DT_Q4_K),
                                         QF_ROW(VLM_DT_Q5_K), QF_ROW(VLM_DT_Q6_K)};
    if (wt < VLM_DT_Q8_0 || wt > VLM_DT_Q6_K) return;
    for (int i = 0; i < m; i += 4) {
        int nr = m - i < 4 ? m - i : 4;
        fn[wt - VLM_DT_Q8_0][nr - 1](xa, (size_t)(i0 + i), w, ldw, n0, n1, bias, y + (size_t)i * ldy, ldy);
    }
}
#undef QF_ROW
