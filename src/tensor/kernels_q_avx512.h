/* kernels_q_avx512.h — what the AVX-512 block-type kernels share: the row kernels of
 * kernels_q_avx512.c (decode) and the panel kernels of kernels_gemm_q_avx512.c (prefill), which
 * must give the same bits, so they unpack the K-quant blocks through the same functions and
 * spread factors with the same index tables. Included only by files compiled with AVX-512. */
#ifndef VLM_TENSOR_KERNELS_Q_AVX512_H
#define VLM_TENSOR_KERNELS_Q_AVX512_H

#include "tensor/kernels_q_avx2.h"   /* h2f, rd32, hsum8, k4_factors */

#include <immintrin.h>
#include <stdint.h>

/* permutexvar indices: lanes 0-7 <- 0, 8-15 <- 1 (two blocks of 32); 32-element sub-block pairs
 * (2c, 2c+1); each of 8 values twice; 16-element groups 4c..4c+3, four lanes each. */
static const int32_t q_idx_pair[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
static const int32_t q_idx_sub32[4][16] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5}, {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7}};
static const int32_t q_idx_dup[16] = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7};
static const int32_t q_idx_sub16[4][16] = {
    {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}, {4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7},
    {8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11},
    {12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15}};
/* Q6_K: per 16-bit lane, the shift that brings the 2 high bits of elements 0-31 / 32-63 (first
 * vector: bits 0-1 / 2-3) and 64-95 / 96-127 (second: bits 4-5 / 6-7) of qh to the bottom. */
static const int16_t q_sh6[2][32] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2},
    {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6}};

/* u8 x s8 dot products summed in groups of 4 into 16 int32 lanes (zero-initialised): QF(dp) of
 * the bodies compiled twice, vpdpbusd or vpmaddubsw + vpmaddwd (the same exact integers). */
static inline __attribute__((always_inline, target("avx512vnni"))) __m512i dp_vnni(__m512i u, __m512i s) {
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, s);
}

static inline __attribute__((always_inline)) __m512i dp_novnni(__m512i u, __m512i s) {
    return _mm512_madd_epi16(_mm512_maddubs_epi16(u, s), _mm512_set1_epi16(1));
}

/* Q4_K / Q5_K block p (five: Q5_K): its 256 levels (0..15, 0..31) as 4 vectors of 64. */
static inline __attribute__((always_inline)) void k4_levels(const uint8_t *p, int five, __m512i W[4]) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const uint8_t *qs = p + (five ? 48 : 16);
    __m512i v0 = _mm512_loadu_si512(qs), v1 = _mm512_loadu_si512(qs + 64);
    __m512i lo0 = _mm512_and_si512(v0, m4), hi0 = _mm512_and_si512(_mm512_srli_epi16(v0, 4), m4);
    __m512i lo1 = _mm512_and_si512(v1, m4), hi1 = _mm512_and_si512(_mm512_srli_epi16(v1, 4), m4);
    W[0] = _mm512_shuffle_i64x2(lo0, hi0, 0x44);
    W[1] = _mm512_shuffle_i64x2(lo0, hi0, 0xEE);
    W[2] = _mm512_shuffle_i64x2(lo1, hi1, 0x44);
    W[3] = _mm512_shuffle_i64x2(lo1, hi1, 0xEE);
    if (five) {
        __m512i H = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 16)));
        for (int c = 0; c < 4; c++) {
            __m512i sel = _mm512_inserti64x4(_mm512_set1_epi8((char)(1 << (2 * c))),
                                             _mm256_set1_epi8((char)(1 << (2 * c + 1))), 1);
            W[c] = _mm512_mask_add_epi8(W[c], _mm512_test_epi8_mask(H, sel), W[c], _mm512_set1_epi8(0x10));
        }
    }
}

/* Q6_K block p: its 256 levels (0..63) as 4 vectors of 64, and d*sc per 16 elements in *a16. */
static inline __attribute__((always_inline)) void q6k_levels(const uint8_t *p, __m512i W[4], __m512 *a16) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(0x03);
    const __m512i sh_lo = _mm512_loadu_si512(q_sh6[0]), sh_hi = _mm512_loadu_si512(q_sh6[1]);
    *a16 = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(p + 192)))),
                         _mm512_set1_ps(h2f(p + 208)));
    for (int h = 0; h < 2; h++) {
        __m512i L = _mm512_loadu_si512(p + 64 * h);
        __m512i Q = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h)));
        __m512i tlo = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(Q, sh_lo), m2), 4);
        __m512i thi = _mm512_slli_epi16(_mm512_and_si512(_mm512_srlv_epi16(Q, sh_hi), m2), 4);
        W[2 * h] = _mm512_or_si512(_mm512_and_si512(L, m4), tlo);
        W[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(L, 4), m4), thi);
    }
}

#endif
