/* kernels_gemm_q_avx512.c — gemm_q of the AVX-512 table: block-type weights times many int8
 * activation rows (prefill, the vision tower), the body (kernels_gemm_q_avx512_body.h)
 * compiled with and without AVX512-VNNI like the row kernels of kernels_q_avx512.c, whose
 * results it reproduces bit for bit (and to which it falls back without memory for its panel). */
#include "tensor/kernels.h"
#include "tensor/kernels_q_avx2.h"   /* h2f, rd32, hsum8, b32_bytes, k4_factors */
#include "util/alloc.h"

#include <immintrin.h>
#include <string.h>

#define GQ_MR 4   /* activation rows per register tile */
#define GQ_NR 4   /* weight columns per panel (and per tile) */

/* lanes 0-7 <- 0, 8-15 <- 1 (two blocks of 32), as kernels_q_avx512.c */
static const int32_t q_idx_pair[16] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1};
/* 32-element sub-block pairs (2c, 2c+1); each of 8 values twice; 16-element groups 4c..4c+3,
 * four lanes each */
static const int32_t q_idx_sub32[4][16] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3},
    {4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5}, {6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7}};
static const int32_t q_idx_dup[16] = {0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7};
static const int32_t q_idx_sub16[4][16] = {
    {0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}, {4, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7},
    {8, 8, 8, 8, 9, 9, 9, 9, 10, 10, 10, 10, 11, 11, 11, 11},
    {12, 12, 12, 12, 13, 13, 13, 13, 14, 14, 14, 14, 15, 15, 15, 15}};
/* Q6_K: per 16-bit lane, the shift bringing 2 high bits of qh to the bottom */
static const int16_t q_sh6[2][32] = {
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2},
    {4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6}};

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512vnni")
#endif
#define QVNNI 1
#define QF(name) name##_vnni
#define QROWS vlm_matmul_q_avx512_vnni
#include "tensor/kernels_gemm_q_avx512_body.h"
#undef QROWS
#undef QF
#undef QVNNI
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#define QVNNI 0
#define QF(name) name##_novnni
#define QROWS vlm_matmul_q_avx512_novnni
#include "tensor/kernels_gemm_q_avx512_body.h"
#undef QROWS
#undef QF
#undef QVNNI

void vlm_kernels_init_gemm_q_avx512(struct vlm_kernels *k, int vnni) {
    k->gemm_q = vnni ? gemm_q_vnni : gemm_q_novnni;
}
