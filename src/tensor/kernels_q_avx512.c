/* kernels_q_avx512.c — matmul_q of the AVX-512 table: the body (kernels_q_avx512_body.h)
 * compiled twice, with AVX512-VNNI's vpdpbusd where the CPU has it (chosen at run time) and
 * with vpmaddubsw/vpmaddwd otherwise; the two give identical results (exact integer sums). */
#include "tensor/kernels.h"

#include <immintrin.h>
#include <string.h>

static inline float q_h2f(const uint8_t *p) {
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline uint32_t q_rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline float q_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

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

#pragma GCC push_options
#pragma GCC target("avx512vnni")
#define QVNNI 1
#define QF(name) name##_vnni
#include "tensor/kernels_q_avx512_body.h"
#undef QF
#undef QVNNI
#pragma GCC pop_options

#define QVNNI 0
#define QF(name) name##_novnni
#include "tensor/kernels_q_avx512_body.h"
#undef QF
#undef QVNNI

void vlm_kernels_init_q_avx512(struct vlm_kernels *k, int vnni) {
    k->matmul_q = vnni ? matmul_q_vnni : matmul_q_novnni;
}
