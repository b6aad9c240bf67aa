/* kernels_q_avx2.h — helpers of the AVX2 block-type kernels (kernels_q_avx2.c, the row kernels;
 * kernels_gemm_q_avx2.c, the many-row GEMM), which must unpack weights the same way; the scalar
 * helpers (h2f, rd32, hsum8) serve the AVX-512 block kernels too. Included only by files
 * compiled with -mavx2 -mfma -mf16c or more. */
#ifndef VLM_TENSOR_KERNELS_Q_AVX2_H
#define VLM_TENSOR_KERNELS_Q_AVX2_H

#include "tensor/tensor.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

static inline float h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline uint32_t rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Bit i of h as byte i (0x00 or 0xff), i < 32. */
static inline __m256i bits_to_bytes(uint32_t h) {
    const __m256i shuf = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                          2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h), shuf);
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit);
}

/* Bytes per block of the 32-element types Q8_0, Q4_0, Q4_1, Q5_0, Q5_1. */
static inline int b32_bytes(enum vlm_dtype wt) {
    return wt == VLM_DT_Q8_0 ? 34 : wt == VLM_DT_Q4_0 ? 18 : wt == VLM_DT_Q4_1 ? 20 : wt == VLM_DT_Q5_0 ? 22 : 24;
}

/* Block p of such a type as 32 levels: signed for Q8_0, Q4_0, Q5_0 (offsets 8 and 16 taken
 * off), 0..31 for Q4_1, Q5_1 (their min is applied apart). */
static inline __attribute__((always_inline)) __m256i b32_levels(enum vlm_dtype wt, const uint8_t *p) {
    const int five = wt == VLM_DT_Q5_0 || wt == VLM_DT_Q5_1, has_min = wt == VLM_DT_Q4_1 || wt == VLM_DT_Q5_1;
    const int hoff = has_min ? 4 : 2, qoff = hoff + (five ? 4 : 0);
    if (wt == VLM_DT_Q8_0) return _mm256_loadu_si256((const __m256i *)(p + 2));
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m128i q = _mm_loadu_si128((const __m128i *)(p + qoff));
    __m256i w = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(q, 4), m4), _mm_and_si128(q, m4));
    if (five) w = _mm256_or_si256(w, _mm256_and_si256(bits_to_bytes(rd32(p + hoff)), _mm256_set1_epi8(0x10)));
    if (!has_min) w = _mm256_sub_epi8(w, _mm256_set1_epi8(five ? 16 : 8));
    return w;
}

/* Q4_K/Q5_K block p: its 8 sub-block scales times d (*scv) and mins times dmin (*mnv), f32. */
static inline void k4_factors(const uint8_t *p, __m256 *scv, __m256 *mnv) {
    uint32_t s0 = rd32(p + 4), s1 = rd32(p + 8), s2 = rd32(p + 12);
    uint64_t sc = (uint64_t)(s0 & 0x3f3f3f3fu) |
                  (uint64_t)((s2 & 0x0f0f0f0fu) | ((s0 >> 6) & 0x03030303u) << 4) << 32;
    uint64_t mn = (uint64_t)(s1 & 0x3f3f3f3fu) |
                  (uint64_t)(((s2 >> 4) & 0x0f0f0f0fu) | ((s1 >> 6) & 0x03030303u) << 4) << 32;
    *scv = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)sc))),
                         _mm256_set1_ps(h2f(p)));
    *mnv = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)mn))),
                         _mm256_set1_ps(h2f(p + 2)));
}

/* Q6_K block p: its 256 levels (0..63) as 8 pieces of 32 in W, factors d*sc per 16 in a0
 * (groups 0-7) and a1 (8-15). */
static inline __attribute__((always_inline)) void q6_unpack(const uint8_t *p, __m256i W[8], __m256 *a0, __m256 *a1) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x03);
    __m128i sc = _mm_loadu_si128((const __m128i *)(p + 192));
    __m256 d = _mm256_set1_ps(h2f(p + 208));
    *a0 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(sc)), d);
    *a1 = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(sc, 8))), d);
    for (int h = 0; h < 2; h++) {
        __m256i L0 = _mm256_loadu_si256((const __m256i *)(p + 64 * h));
        __m256i L1 = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32));
        __m256i Q = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
        __m256i nib[4] = {_mm256_and_si256(L0, m4), _mm256_and_si256(L1, m4),
                          _mm256_and_si256(_mm256_srli_epi16(L0, 4), m4),
                          _mm256_and_si256(_mm256_srli_epi16(L1, 4), m4)};
        for (int t = 0; t < 4; t++) {
            __m256i top = _mm256_and_si256(_mm256_srli_epi16(Q, 2 * t), m2);
            W[4 * h + t] = _mm256_or_si256(nib[t], _mm256_slli_epi16(top, 4));
        }
    }
}

#endif
