/* kernels_gemm_q_avx512_body.h — the AVX-512 many-row block-type matmul, included twice by
 * kernels_gemm_q_avx512.c: with VNNI (QVNNI 1) and without, QF(name) naming each copy.
 * GQ_NR weight columns at a time are unpacked once per call into a panel (per 64-element step:
 * byte levels and 16 f32 factors), then register tiles of up to GQ_MR activation rows x GQ_NR
 * columns run over it. Every (row, column) goes through the operations of
 * kernels_q_avx512_body.h in its order: the same int32 lanes per step (here, with VNNI and the
 * signed types, (x+128) . w - 128 * sum w per 4 bytes, the same exact integers), the same cvt,
 * the same factor d_w * d_x per lane, the same FMA into the same 16 lanes, the same reduction
 * and min/offset terms last, so the results equal matmul_q's bit for bit. */

/* ---- the 32-element block types: Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 ----
 * Step t (blocks 2t, 2t+1; the odd last block's upper half zero) of column c: 64 bytes at
 * u + (t*GQ_NR + c)*64: signed w (VNNI, signed types), |w| (no VNNI, signed types) or the levels
 * 0..31 (Q4_1/Q5_1); at v + (t*GQ_NR + c)*64: -128 * sum w per 4 bytes as 16 int32 (VNNI,
 * signed types) or the sign mask of w as one uint64 (no VNNI, signed types); the factor d_w
 * (d0 x8 | d1 x8) at f + (t*GQ_NR + c)*16. Q4_1/Q5_1 mins of block b at cm + b*GQ_NR + c. */
typedef float QF(vnr) __attribute__((vector_size(GQ_NR * sizeof(float))));

struct QF(panel) {
    uint8_t *u, *v;
    float   *f, *cm;
    int      nb, ns;
};

static void QF(unpack_b32)(const struct QF(panel) *P, enum vlm_dtype wt, const uint8_t *wr, int c) {
    const int nb = P->nb;
    const int five = wt == VLM_DT_Q5_0 || wt == VLM_DT_Q5_1, has_min = wt == VLM_DT_Q4_1 || wt == VLM_DT_Q5_1;
    const int bb = b32_bytes(wt);
    const int hoff = has_min ? 4 : 2, qoff = hoff + (five ? 4 : 0);
    const float off = wt == VLM_DT_Q4_0 ? -8.0f : -16.0f;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int b = 0, t = 0; b < nb; b += 2, t++) {
        const uint8_t *p0 = wr + (size_t)b * bb, *p1 = p0 + bb;
        int two = b + 1 < nb;
        size_t at = (size_t)t * GQ_NR + c;
        __m512i z;
        float d0, d1;
        if (wt == VLM_DT_Q8_0) {
            __m256i w0 = _mm256_loadu_si256((const __m256i *)(p0 + 2));
            __m256i w1 = two ? _mm256_loadu_si256((const __m256i *)(p0 + 36)) : _mm256_setzero_si256();
            z = _mm512_inserti64x4(_mm512_castsi256_si512(w0), w1, 1);
            d0 = h2f(p0), d1 = two ? h2f(p0 + 34) : 0.0f;
        } else {
            __m128i q0 = _mm_loadu_si128((const __m128i *)(p0 + qoff));
            __m128i q1 = two ? _mm_loadu_si128((const __m128i *)(p1 + qoff)) : _mm_setzero_si128();
            __m256i a = _mm256_inserti128_si256(_mm256_castsi128_si256(q0), q1, 1);
            __m256i lo = _mm256_and_si256(a, m4), hi = _mm256_and_si256(_mm256_srli_epi16(a, 4), m4);
            z = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            z = _mm512_shuffle_i64x2(z, z, 0xD8);   /* [b0 lo, b0 hi, b1 lo, b1 hi] */
            if (five) {
                uint64_t h = rd32(p0 + hoff) | (two ? (uint64_t)rd32(p1 + hoff) << 32 : 0);
                z = _mm512_mask_add_epi8(z, (__mmask64)h, z, _mm512_set1_epi8(0x10));
            }
            if (!has_min) {
                /* levels minus 8 (16); the odd last block's upper half stays 0, not -8 (-16),
                   as the row kernel's (its x there is zero, so either gives 0 there) */
                __mmask64 lm = two ? ~(__mmask64)0 : 0xffffffffull;
                z = _mm512_maskz_sub_epi8(lm, z, _mm512_set1_epi8((char)-off));
            }
            d0 = h2f(p0), d1 = two ? h2f(p1) : 0.0f;
            if (has_min) {
                P->cm[(size_t)b * GQ_NR + c] = h2f(p0 + 2);
                if (two) P->cm[(size_t)(b + 1) * GQ_NR + c] = h2f(p1 + 2);
            }
        }
        _mm512_storeu_ps(P->f + at * 16, _mm512_insertf32x8(_mm512_set1_ps(d0), _mm256_set1_ps(d1), 1));
        if (has_min) {
            _mm512_storeu_si512(P->u + at * 64, z);
        } else {
#if QVNNI
            __m512i sw = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), z);
            _mm512_storeu_si512(P->u + at * 64, z);
            _mm512_storeu_si512(P->v + at * 64, _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_slli_epi32(sw, 7)));
#else
            uint64_t neg = (uint64_t)_mm512_movepi8_mask(z);
            _mm512_storeu_si512(P->u + at * 64, _mm512_abs_epi8(z));
            memcpy(P->v + at * 64, &neg, 8);
#endif
        }
    }
}

/* A column past the end: zeros (its results are never stored). */
static void QF(zero_b32)(const struct QF(panel) *P, int c) {
    for (int t = 0; t < P->ns; t++) {
        size_t at = (size_t)t * GQ_NR + c;
        memset(P->u + at * 64, 0, 64);
        memset(P->v + at * 64, 0, 64);
        memset(P->f + at * 16, 0, 64);
    }
    for (int b = 0; b < P->nb; b++) P->cm[(size_t)b * GQ_NR + c] = 0.0f;
}

/* RM rows (xa rows r0..r0+RM) x GQ_NR columns of the panel; y row i column c at y[i*ldy + c]
 * for c < nc. SG: a signed type (no min). */
static inline __attribute__((always_inline)) void
QF(tile_b32)(const struct QF(panel) *P, const struct vlm_q8_act *xa, size_t r0, const int RM, const int SG,
             int nc, const float *bias, float *y, int ldy) {
    const int k = xa->k, nb = P->nb;
    const __m512i idx01 = _mm512_loadu_si512(q_idx_pair);
    __m512 acc[GQ_MR][GQ_NR];
    const int8_t *xq[GQ_MR];
    const float *xd[GQ_MR];
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++) {
        xq[r] = xa->q + (r0 + r) * (size_t)k;
        xd[r] = xa->d + (r0 + r) * (size_t)nb;
#pragma GCC unroll 4
        for (int c = 0; c < GQ_NR; c++) acc[r][c] = _mm512_setzero_ps();
    }
    for (int b = 0, t = 0; b < nb; b += 2, t++) {
        int two = b + 1 < nb;
        __mmask64 lm = two ? ~(__mmask64)0 : 0xffffffffull;
        const uint8_t *pu = P->u + (size_t)t * GQ_NR * 64, *pv = P->v + (size_t)t * GQ_NR * 64;
        const float *pf = P->f + (size_t)t * GQ_NR * 16;
        __m512i x[GQ_MR];
        __m512 dx[GQ_MR];
#pragma GCC unroll 4
        for (int r = 0; r < RM; r++) {
            x[r] = _mm512_maskz_loadu_epi8(lm, xq[r] + 32 * b);
            if (SG && QVNNI) x[r] = _mm512_xor_si512(x[r], _mm512_set1_epi8((char)0x80));
            const float *d = xd[r] + b;
            __m128 d2 = two ? _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)d)) : _mm_load_ss(d);
            dx[r] = _mm512_permutexvar_ps(idx01, _mm512_castps128_ps512(d2));
        }
#pragma GCC unroll 4
        for (int c = 0; c < GQ_NR; c++) {
            __m512i u = _mm512_loadu_si512(pu + 64 * c);
            __m512 dw = _mm512_loadu_ps(pf + 16 * c);
#if !QVNNI
            __mmask64 neg = 0;
            if (SG) memcpy(&neg, pv + 64 * c, 8);
#endif
#pragma GCC unroll 4
            for (int r = 0; r < RM; r++) {
                __m512i p;
                if (SG) {
#if QVNNI
                    p = _mm512_dpbusd_epi32(_mm512_loadu_si512(pv + 64 * c), x[r], u);
#else
                    p = QF(dp)(u, _mm512_mask_sub_epi8(x[r], neg, _mm512_setzero_si512(), x[r]));
#endif
                } else {
                    p = QF(dp)(u, x[r]);
                }
                acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dw, dx[r]), acc[r][c]);
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++) {
        /* the row kernel's per-block min terms (Q4_1/Q5_1; else 0), its scalar expression
           evaluated for the GQ_NR columns at once (the same operations per lane) */
        QF(vnr) bacc;
        for (int c = 0; c < GQ_NR; c++) bacc[c] = 0.0f;
        if (!SG) {
            const int16_t *s0 = xa->s + (r0 + r) * (size_t)(k / 16);
            for (int b = 0; b < nb; b += 2) {
                QF(vnr) c0, c1;
                memcpy(&c0, P->cm + (size_t)b * GQ_NR, sizeof c0);
                if (b + 1 < nb) memcpy(&c1, P->cm + (size_t)(b + 1) * GQ_NR, sizeof c1);
                else c1 = c0;
                const float *d = xd[r] + b;
                const int16_t *s = s0 + 2 * b;
                bacc += c0 * d[0] * (float)(s[0] + s[1]);
                if (b + 1 < nb) bacc += c1 * d[1] * (float)(s[2] + s[3]);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < GQ_NR; c++) {
            if (c >= nc) continue;
            float out = _mm512_reduce_add_ps(acc[r][c]) + bacc[c];
            y[(size_t)r * ldy + c] = bias ? out + bias[c] : out;
        }
    }
}

#define QF_TILE(RM, SG)                                                                             \
    static void QF(tile_b32_##RM##_##SG)(const struct QF(panel) *P, const struct vlm_q8_act *xa,    \
                                         size_t r0, int nc, const float *bias, float *y, int ldy) { \
        QF(tile_b32)(P, xa, r0, RM, SG, nc, bias, y, ldy);                                          \
    }
QF_TILE(1, 0) QF_TILE(2, 0) QF_TILE(3, 0) QF_TILE(4, 0)
QF_TILE(1, 1) QF_TILE(2, 1) QF_TILE(3, 1) QF_TILE(4, 1)
#undef QF_TILE

typedef void (*QF(tile_fn))(const struct QF(panel) *, const struct vlm_q8_act *, size_t, int, const float *,
                            float *, int);

/* Returns 0 when it could not get its panel (nothing written). */
static int QF(gemm_b32)(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt, const void *w,
                        size_t ldw, int n0, int n1, const float *bias, float *y, int ldy) {
    static const QF(tile_fn) fn[2][GQ_MR] = {
        {QF(tile_b32_1_0), QF(tile_b32_2_0), QF(tile_b32_3_0), QF(tile_b32_4_0)},
        {QF(tile_b32_1_1), QF(tile_b32_2_1), QF(tile_b32_3_1), QF(tile_b32_4_1)}};
    const int nb = xa->k / 32, ns = (nb + 1) / 2;
    const int sg = !(wt == VLM_DT_Q4_1 || wt == VLM_DT_Q5_1);
    size_t ub = (size_t)ns * GQ_NR * 64, fb = (size_t)ns * GQ_NR * 16 * sizeof(float);
    size_t cb = (size_t)nb * GQ_NR * sizeof(float);
    char *buf = vlm_malloc(2 * ub + fb + cb);
    if (!buf) return 0;
    struct QF(panel) P = {.u = (uint8_t *)buf, .v = (uint8_t *)(buf + ub), .f = (float *)(buf + 2 * ub),
                          .cm = (float *)(buf + 2 * ub + fb), .nb = nb, .ns = ns};
    for (int j = n0; j < n1; j += GQ_NR) {
        int nc = n1 - j < GQ_NR ? n1 - j : GQ_NR;
        for (int c = 0; c < GQ_NR; c++) {
            if (c < nc) QF(unpack_b32)(&P, wt, (const uint8_t *)w + (size_t)(j + c) * ldw, c);
            else QF(zero_b32)(&P, c);
        }
        for (int i = 0; i < m; i += GQ_MR) {
            int rows = m - i < GQ_MR ? m - i : GQ_MR;
            fn[sg][rows - 1](&P, xa, (size_t)(i0 + i), nc, bias ? bias + j : NULL, y + (size_t)i * ldy + j, ldy);
        }
    }
    vlm_free(buf);
    return 1;
}

/* ---- the 256-element block types: Q4_K, Q5_K, Q6_K ----
 * Super-block t of column c, at (t*GQ_NR + c): its levels as the row kernel's 4 vectors of 64
 * at u + 256*(..); the factors of vector q (the scales d*sc the row kernel permutes into place
 * per 16/32 elements), already permuted, at f + 64*(..) + 16*q; at g + 16*(..) the min factors
 * dmin*m per 32 (Q4_K/Q5_K, 8 lanes) or d*sc per 16 unpermuted (Q6_K). A lane permutation
 * commutes with the lane-wise product, so permute(sc) * permute(d_x) is the row kernel's
 * permute(sc * d_x) exactly. */
struct QF(kpanel) {
    uint8_t *u;
    float   *f, *g;
    int      nsb;
};

static void QF(unpack_k)(const struct QF(kpanel) *P, enum vlm_dtype wt, const uint8_t *wr, int c) {
    for (int sb = 0; sb < P->nsb; sb++) {
        size_t at = (size_t)sb * GQ_NR + c;
        __m512i W[4];
        if (wt == VLM_DT_Q6_K) {
            __m512 a16;
            q6k_levels(wr + (size_t)sb * 210, W, &a16);
            for (int q = 0; q < 4; q++)
                _mm512_storeu_ps(P->f + at * 64 + 16 * q, _mm512_permutexvar_ps(_mm512_loadu_si512(q_idx_sub16[q]), a16));
            _mm512_storeu_ps(P->g + at * 16, a16);
        } else {
            const int five = wt == VLM_DT_Q5_K;
            const uint8_t *p = wr + (size_t)sb * (five ? 176 : 144);
            __m256 scv, mnv;
            k4_factors(p, &scv, &mnv);
            k4_levels(p, five, W);
            __m512 f = _mm512_castps256_ps512(scv);
            for (int q = 0; q < 4; q++)
                _mm512_storeu_ps(P->f + at * 64 + 16 * q, _mm512_permutexvar_ps(_mm512_loadu_si512(q_idx_sub32[q]), f));
            _mm512_storeu_ps(P->g + at * 16, _mm512_castps256_ps512(mnv));
        }
        for (int q = 0; q < 4; q++) _mm512_storeu_si512(P->u + at * 256 + 64 * q, W[q]);
    }
}

static void QF(zero_k)(const struct QF(kpanel) *P, int c) {
    for (int sb = 0; sb < P->nsb; sb++) {
        size_t at = (size_t)sb * GQ_NR + c;
        memset(P->u + at * 256, 0, 256);
        memset(P->f + at * 64, 0, 64 * sizeof(float));
        memset(P->g + at * 16, 0, 16 * sizeof(float));
    }
}

/* Row xd/xs's outputs for columns c < nc from their 16-lane sums acc: the row kernel's min
 * (Q4_K/Q5_K, 8 lanes) or offset (Q6_K) sum per column, lane for lane in its order, last. */
static inline __attribute__((always_inline)) void
QF(finish_k)(const struct QF(kpanel) *P, int q6, int nc, const float *xd, const int16_t *xs, const __m512 *acc,
             const float *bias, float *y) {
    if (q6) {
        const __m512i dup = _mm512_loadu_si512(q_idx_dup);
        __m512 oacc[GQ_NR];
#pragma GCC unroll 4
        for (int c = 0; c < GQ_NR; c++) oacc[c] = _mm512_setzero_ps();
        for (int sb = 0; sb < P->nsb; sb++) {
            __m512 dx = _mm512_permutexvar_ps(dup, _mm512_castps256_ps512(_mm256_loadu_ps(xd + 8 * sb)));
            __m512 s = _mm512_cvtepi32_ps(_mm512_cvtepi16_epi32(_mm256_loadu_si256((const __m256i *)(xs + 16 * sb))));
#pragma GCC unroll 4
            for (int c = 0; c < GQ_NR; c++) {
                __m512 a16 = _mm512_loadu_ps(P->g + ((size_t)sb * GQ_NR + c) * 16);
                __m512 f = _mm512_mul_ps(a16, dx);
                oacc[c] = _mm512_fmadd_ps(f, s, oacc[c]);
            }
        }
#pragma GCC unroll 4
        for (int c = 0; c < GQ_NR; c++) {
            if (c >= nc) continue;
            float out = _mm512_reduce_add_ps(acc[c]) - 32.0f * _mm512_reduce_add_ps(oacc[c]);
            y[c] = bias ? out + bias[c] : out;
        }
        return;
    }
    __m256 macc[GQ_NR];
#pragma GCC unroll 4
    for (int c = 0; c < GQ_NR; c++) macc[c] = _mm256_setzero_ps();
    for (int sb = 0; sb < P->nsb; sb++) {
        __m256 dx = _mm256_loadu_ps(xd + 8 * sb);
        __m256i s16 = _mm256_loadu_si256((const __m256i *)(xs + 16 * sb));
        __m256 s32 = _mm256_cvtepi32_ps(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)));
#pragma GCC unroll 4
        for (int c = 0; c < GQ_NR; c++) {
            __m256 mnv = _mm256_loadu_ps(P->g + ((size_t)sb * GQ_NR + c) * 16);
            macc[c] = _mm256_fmadd_ps(_mm256_mul_ps(mnv, dx), s32, macc[c]);
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < GQ_NR; c++) {
        if (c >= nc) continue;
        float out = _mm512_reduce_add_ps(acc[c]) - hsum8(macc[c]);
        y[c] = bias ? out + bias[c] : out;
    }
}

static inline __attribute__((always_inline)) void
QF(tile_k)(const struct QF(kpanel) *P, int q6, const struct vlm_q8_act *xa, size_t r0, const int RM, int nc,
           const float *bias, float *y, int ldy) {
    const int k = xa->k;
    __m512 acc[GQ_MR][GQ_NR];
    const int8_t *xq[GQ_MR];
    const float *xd[GQ_MR];
#pragma GCC unroll 4
    for (int r = 0; r < RM; r++) {
        xq[r] = xa->q + (r0 + r) * (size_t)k;
        xd[r] = xa->d + (r0 + r) * (size_t)(k / 32);
#pragma GCC unroll 4
        for (int c = 0; c < GQ_NR; c++) acc[r][c] = _mm512_setzero_ps();
    }
    for (int sb = 0; sb < P->nsb; sb++) {
        const uint8_t *pu = P->u + (size_t)sb * GQ_NR * 256;
        const float *pf = P->f + (size_t)sb * GQ_NR * 64;
#pragma GCC unroll 4
        for (int q = 0; q < 4; q++) {
            const __m512i idx = _mm512_loadu_si512(q_idx_sub32[q]);
            __m512i x[GQ_MR];
            __m512 dx[GQ_MR];
#pragma GCC unroll 4
            for (int r = 0; r < RM; r++) {
                x[r] = _mm512_loadu_si512(xq[r] + 256 * sb + 64 * q);
                dx[r] = _mm512_permutexvar_ps(idx, _mm512_castps256_ps512(_mm256_loadu_ps(xd[r] + 8 * sb)));
            }
#pragma GCC unroll 4
            for (int c = 0; c < GQ_NR; c++) {
                __m512i u = _mm512_loadu_si512(pu + 256 * c + 64 * q);
                __m512 fw = _mm512_loadu_ps(pf + 64 * c + 16 * q);
#pragma GCC unroll 4
                for (int r = 0; r < RM; r++)
                    acc[r][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(QF(dp)(u, x[r])), _mm512_mul_ps(fw, dx[r]), acc[r][c]);
            }
        }
    }
    for (int r = 0; r < RM; r++)
        QF(finish_k)(P, q6, nc, xd[r], xa->s + (r0 + r) * (size_t)(k / 16), acc[r], bias, y + (size_t)r * ldy);
}

#define QF_TILE(RM)                                                                                 \
    static void QF(tile_k_##RM)(const struct QF(kpanel) *P, int q6, const struct vlm_q8_act *xa,    \
                                size_t r0, int nc, const float *bias, float *y, int ldy) {          \
        QF(tile_k)(P, q6, xa, r0, RM, nc, bias, y, ldy);                                            \
    }
QF_TILE(1) QF_TILE(2) QF_TILE(3) QF_TILE(4)
#undef QF_TILE

typedef void (*QF(ktile_fn))(const struct QF(kpanel) *, int, const struct vlm_q8_act *, size_t, int,
                             const float *, float *, int);

/* Returns 0 when it could not get its panel (nothing written). */
static int QF(gemm_k)(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt, const void *w,
                      size_t ldw, int n0, int n1, const float *bias, float *y, int ldy) {
    static const QF(ktile_fn) fn[GQ_MR] = {QF(tile_k_1), QF(tile_k_2), QF(tile_k_3), QF(tile_k_4)};
    const int nsb = xa->k / 256, q6 = wt == VLM_DT_Q6_K;
    size_t ub = (size_t)nsb * GQ_NR * 256, fb = (size_t)nsb * GQ_NR * 64 * sizeof(float);
    size_t gb = (size_t)nsb * GQ_NR * 16 * sizeof(float);
    char *buf = vlm_malloc(ub + fb + gb);
    if (!buf) return 0;
    struct QF(kpanel) P = {.u = (uint8_t *)buf, .f = (float *)(buf + ub), .g = (float *)(buf + ub + fb), .nsb = nsb};
    for (int j = n0; j < n1; j += GQ_NR) {
        int nc = n1 - j < GQ_NR ? n1 - j : GQ_NR;
        for (int c = 0; c < GQ_NR; c++) {
            if (c < nc) QF(unpack_k)(&P, wt, (const uint8_t *)w + (size_t)(j + c) * ldw, c);
            else QF(zero_k)(&P, c);
        }
        for (int i = 0; i < m; i += GQ_MR) {
            int rows = m - i < GQ_MR ? m - i : GQ_MR;
            fn[rows - 1](&P, q6, xa, (size_t)(i0 + i), nc, bias ? bias + j : NULL, y + (size_t)i * ldy + j, ldy);
        }
    }
    vlm_free(buf);
    return 1;
}

static void QF(gemm_q)(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt, const void *w,
                       size_t ldw, int n0, int n1, const float *bias, float *y, int ldy) {
    if (wt < VLM_DT_Q8_0 || wt > VLM_DT_Q6_K || m <= 0 || n0 >= n1) return;
    switch (wt) {
    case VLM_DT_Q8_0:
    case VLM_DT_Q4_0:
    case VLM_DT_Q4_1:
    case VLM_DT_Q5_0:
    case VLM_DT_Q5_1:
        if (QF(gemm_b32)(xa, i0, m, wt, w, ldw, n0, n1, bias, y, ldy)) return;
        break;
    default:
        if (QF(gemm_k)(xa, i0, m, wt, w, ldw, n0, n1, bias, y, ldy)) return;
        break;
    }
    /* no memory for the panel: the row kernel, the same bits */
    QROWS(xa, i0, m, wt, w, ldw, n0, n1, bias, y, ldy);
}
