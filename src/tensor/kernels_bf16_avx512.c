/* kernels_bf16_avx512.c — the "avx512bf16" table: the AVX-512 one with bf16-weight GEMMs of
 * many rows (vision encoder, prefill) done by vdpbf16ps when the driver asks for bf16
 * arithmetic (VLM_COMPUTE_BF16: activations already rounded to bf16, so the products are the
 * exact ones the f32 path would form from them, summed in f32 in another order): twice the
 * FLOPs per instruction of f32 FMA, but on a CPU with one vdpbf16ps port and two FMA ports no
 * faster (measured 0.72x the f32 GEMM at 256x1536x576 on a Xeon), so chosen by default only on
 * AMD (1.5x on an EPYC Zen 5), else on request (VLM_KERNELS=avx512bf16); with VLM_COMPUTE_F32
 * it is the AVX-512 table. */
#include "tensor/kernels.h"

#include <immintrin.h>
#include <string.h>

#define BM_MR 8
#define BM_NR 32
#define BM_KC 256   /* k per block (128 pairs) */
#define BM_NC 128   /* columns packed per block */

/* panel[p*32 + c] = bf16 pair (W[j0+c][k0+2p], W[j0+c][k0+2p+1]) as one 32-bit word, zero past
 * the row's end or past nc. */
static void pack_pairs(uint32_t *panel, const uint16_t *w, size_t ldw, int j0, int nc, int k0,
                       int kc, int k) {
    int np = (kc + 1) / 2;
    for (int c = 0; c < BM_NR; c++) {
        if (c >= nc) {
            for (int p = 0; p < np; p++) panel[p * BM_NR + c] = 0;
            continue;
        }
        const uint16_t *wr = w + (size_t)(j0 + c) * ldw + k0;
        /* a pair is the row's two bf16 values read as one little-endian word (lo first) */
        int full = k0 + 2 * np <= k ? np : np - 1;
        for (int p = 0; p < full; p++) {
            uint32_t pr;
            memcpy(&pr, wr + 2 * p, sizeof pr);
            panel[p * BM_NR + c] = pr;
        }
        if (full < np) panel[full * BM_NR + c] = wr[2 * full];   /* the row's last, odd element */
    }
}

/* xb (rows, 2*np) bf16 = x rows k0 .. k0+kc, zero-padded to an even count. */
static void cvt_rows(uint16_t *xb, const float *x, int ldx, int rows, int k0, int kc, int np) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx + k0;
        uint16_t *dst = xb + (size_t)r * 2 * np;
        int t = 0;
        for (; t + 32 <= kc; t += 32) {
            __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(xr + t + 16), _mm512_loadu_ps(xr + t));
            _mm512_storeu_si512(dst + t, (__m512i)v);
        }
        for (; t < kc; t++) dst[t] = vlm_f32_to_bf16(xr[t]);
        if (kc & 1) dst[kc] = 0;
    }
}

static inline __mmask16 cmask(int nc) { return nc >= 16 ? 0xffff : (__mmask16)((1u << (nc > 0 ? nc : 0)) - 1); }

/* C (rows x 32) (+)= Xb (rows x 2np) @ panel; rows <= 8 (accumulators for absent rows unused). */
static void micro_bf16(const uint16_t *xb, int np, int rows, const uint32_t *panel, float *y,
                       size_t ldy, int first, const float *bias, int nc) {
    __m512 c[BM_MR][2];
    __mmask16 m0 = cmask(nc), m1 = cmask(nc - 16);
    if (rows == BM_MR) {
        __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
               c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00,
               c61 = c00, c70 = c00, c71 = c00;
        const uint32_t *x32 = (const uint32_t *)xb;
        for (int p = 0; p < np; p++) {
            __m512bh b0 = (__m512bh)_mm512_load_si512(panel + p * BM_NR);
            __m512bh b1 = (__m512bh)_mm512_load_si512(panel + p * BM_NR + 16);
#define ROW(r, d0, d1) do { \
                __m512bh a = (__m512bh)_mm512_set1_epi32((int)x32[(size_t)(r) * np + p]); \
                d0 = _mm512_dpbf16_ps(d0, a, b0); d1 = _mm512_dpbf16_ps(d1, a, b1); \
            } while (0)
            ROW(0, c00, c01); ROW(1, c10, c11); ROW(2, c20, c21); ROW(3, c30, c31);
            ROW(4, c40, c41); ROW(5, c50, c51); ROW(6, c60, c61); ROW(7, c70, c71);
#undef ROW
        }
        c[0][0] = c00; c[0][1] = c01; c[1][0] = c10; c[1][1] = c11; c[2][0] = c20; c[2][1] = c21;
        c[3][0] = c30; c[3][1] = c31; c[4][0] = c40; c[4][1] = c41; c[5][0] = c50; c[5][1] = c51;
        c[6][0] = c60; c[6][1] = c61; c[7][0] = c70; c[7][1] = c71;
    } else {
        for (int r = 0; r < rows; r++) {
            const uint32_t *x32 = (const uint32_t *)xb + (size_t)r * np;
            __m512 d0 = _mm512_setzero_ps(), d1 = d0;
            for (int p = 0; p < np; p++) {
                __m512bh a = (__m512bh)_mm512_set1_epi32((int)x32[p]);
                d0 = _mm512_dpbf16_ps(d0, a, (__m512bh)_mm512_load_si512(panel + p * BM_NR));
                d1 = _mm512_dpbf16_ps(d1, a, (__m512bh)_mm512_load_si512(panel + p * BM_NR + 16));
            }
            c[r][0] = d0;
            c[r][1] = d1;
        }
    }
    __m512 bb0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    __m512 bb1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    for (int r = 0; r < rows; r++) {
        float *yr = y + (size_t)r * ldy;
        __m512 o0 = first ? bb0 : _mm512_maskz_loadu_ps(m0, yr);
        __m512 o1 = first ? bb1 : _mm512_maskz_loadu_ps(m1, yr + 16);
        _mm512_mask_storeu_ps(yr, m0, _mm512_add_ps(o0, c[r][0]));
        _mm512_mask_storeu_ps(yr + 16, m1, _mm512_add_ps(o1, c[r][1]));
    }
}

static void gemm_bf16dot(const float *x, int ldx, int m, int k, const uint16_t *w, size_t ldw,
                         int n0, int n1, const float *bias, float *y, int ldy) {
    uint32_t panels[BM_NC / BM_NR][BM_KC / 2 * BM_NR] __attribute__((aligned(64)));
    uint16_t xb[BM_MR * BM_KC] __attribute__((aligned(64)));
    for (int jb = n0; jb < n1; jb += BM_NC) {
        int nb = n1 - jb < BM_NC ? n1 - jb : BM_NC, npan = (nb + BM_NR - 1) / BM_NR;
        for (int k0 = 0; k0 < k; k0 += BM_KC) {
            int kc = k - k0 < BM_KC ? k - k0 : BM_KC, np = (kc + 1) / 2;
            for (int q = 0; q < npan; q++) {
                int nc = nb - q * BM_NR < BM_NR ? nb - q * BM_NR : BM_NR;
                pack_pairs(panels[q], w, ldw, jb + q * BM_NR, nc, k0, kc, k);
            }
            for (int i = 0; i < m; i += BM_MR) {
                int rows = m - i < BM_MR ? m - i : BM_MR;
                cvt_rows(xb, x + (size_t)i * ldx, ldx, rows, k0, kc, np);
                for (int q = 0; q < npan; q++) {
                    int j = jb + q * BM_NR, nc = nb - q * BM_NR < BM_NR ? nb - q * BM_NR : BM_NR;
                    micro_bf16(xb, np, rows, panels[q], y + (size_t)i * ldy + j, (size_t)ldy,
                               k0 == 0, bias ? bias + j : NULL, nc);
                }
            }
        }
    }
}

static void matmul_bf16dot(const float *x, int ldx, int m, int k, enum vlm_dtype wt,
                           const void *w, size_t ldw, int n0, int n1, const float *bias, float *y,
                           int ldy, int m_total, int bf16) {
    if (bf16 && wt == VLM_DT_BF16 && m_total >= 128 && k > 0) {
        gemm_bf16dot(x, ldx, m, k, w, ldw, n0, n1, bias, y, ldy);
        return;
    }
    vlm_kernels_variant(2)->matmul(x, ldx, m, k, wt, w, ldw, n0, n1, bias, y, ldy, m_total, bf16);
}

void vlm_kernels_init_avx512bf16(struct vlm_kernels *k) {
    k->name = "avx512bf16";
    k->matmul = matmul_bf16dot;
}
