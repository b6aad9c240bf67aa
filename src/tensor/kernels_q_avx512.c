/* kernels_q_avx512.c — matmul_q of the AVX-512 table: the body (kernels_q_avx512_body.h)
 * compiled twice, with AVX512-VNNI's vpdpbusd where the CPU has it (chosen at run time) and
 * with vpmaddubsw/vpmaddwd otherwise; the two give identical results (exact integer sums). */
#include "tensor/kernels.h"
#include "tensor/kernels_q_avx512.h"   /* index tables, K-quant unpacking: shared with gemm_q */

#include <immintrin.h>
#include <string.h>

/* Weight rows prefetched ahead in the one-row (decode) case: streaming one row at a time leaves
 * too few misses in flight for the memory bandwidth. */
#ifndef QF_AHEAD
#define QF_AHEAD 4
#endif

/* the VNNI copy: every function below compiled for AVX512-VNNI too (GCC and clang spellings) */
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512vnni")
#endif
#define QVNNI 1
#define QF(name) name##_vnni
#include "tensor/kernels_q_avx512_body.h"
#undef QF
#undef QVNNI
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#define QVNNI 0
#define QF(name) name##_novnni
#include "tensor/kernels_q_avx512_body.h"
#undef QF
#undef QVNNI

/* vlm_f32_to_bf16's integer rounding, 16 lanes at a time (vcvtneps2bf16 would flush
 * subnormals, so it is not used). */
static void round_bf16_avx512(float *dst, const float *src, size_t n) {
    const __m512i hi = _mm512_set1_epi32((int)0xffff0000u), abs = _mm512_set1_epi32(0x7fffffff);
    const __m512i inf = _mm512_set1_epi32(0x7f800000), quiet = _mm512_set1_epi32(0x00400000);
    const __m512i bias = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1);
    size_t i = 0;
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512i u = _mm512_maskz_loadu_epi32(m, src + i);
        __m512i r = _mm512_add_epi32(_mm512_add_epi32(u, bias), _mm512_and_si512(_mm512_srli_epi32(u, 16), one));
        r = _mm512_and_si512(r, hi);
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        r = _mm512_mask_or_epi32(r, nan, _mm512_and_si512(u, hi), quiet);
        _mm512_mask_storeu_epi32(dst + i, m, r);
    }
}

void vlm_matmul_q_avx512_vnni(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt,
                              const void *w, size_t ldw, int n0, int n1, const float *bias,
                              float *y, int ldy) {
    matmul_q_vnni(xa, i0, m, wt, w, ldw, n0, n1, bias, y, ldy);
}

void vlm_matmul_q_avx512_novnni(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt,
                                const void *w, size_t ldw, int n0, int n1, const float *bias,
                                float *y, int ldy) {
    matmul_q_novnni(xa, i0, m, wt, w, ldw, n0, n1, bias, y, ldy);
}

void vlm_kernels_init_q_avx512(struct vlm_kernels *k, int vnni) {
    k->matmul_q = vnni ? matmul_q_vnni : matmul_q_novnni;
    vlm_kernels_init_gemm_q_avx512(k, vnni);   /* many rows: tiled over a panel, the same bits */
    k->round_bf16 = round_bf16_avx512;
}
