/* kernels_gemm_q_avx512.c — gemm_q of the AVX-512 table: block-type weights times many int8
 * activation rows (prefill, the vision tower), the body (kernels_gemm_q_avx512_body.h)
 * compiled with and without AVX512-VNNI like the row kernels of kernels_q_avx512.c, whose
 * results it reproduces bit for bit (and to which it falls back without memory for its panel). */
#include "tensor/kernels.h"
#include "tensor/kernels_q_avx512.h"   /* index tables, K-quant unpacking (and via it h2f, rd32, b32_bytes, k4_factors) */
#include "util/alloc.h"

#include <immintrin.h>
#include <string.h>

#define GQ_MR 4   /* activation rows per register tile */
#define GQ_NR 4   /* weight columns per panel (and per tile) */

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
