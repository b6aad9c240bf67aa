/* fuzz_quant.c — block-type bytes as a file could hold them (any scales: NaN, inf, subnormal):
 * dequantization, the embedding lookup and vlm_matmul on them, and the quantizers on floats
 * read from the same bytes, must never read or write out of bounds or hit undefined
 * behaviour; a quantized row must dequantize to finite values when its input was finite. */
#include "tensor/quant.h"
#include "tensor/tensor.h"
#include "util/alloc.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    enum vlm_dtype t = (enum vlm_dtype)(VLM_DT_Q8_0 + data[0] % (VLM_DT_COUNT - VLM_DT_Q8_0));
    data++, size--;
    int be = vlm_dtype_block_elems(t);
    size_t bb = vlm_dtype_block_bytes(t), nblk = size / bb;
    if (nblk > 64) nblk = 64;
    if (nblk) {
        int64_t n = (int64_t)nblk * be;
        float *y = vlm_malloc((size_t)n * sizeof *y), x[512];
        for (int i = 0; i < 512; i++) x[i] = (float)((i * 37) % 19) - 9.0f;
        vlm_dequantize_row(t, data, y, n);
        /* as (nblk, be) weights: the embedding lookup and a 2-row product */
        struct vlm_tensor w = {.type = t, .n_dims = 2, .ne = {(int64_t)nblk, be}, .data = data, .nbytes = nblk * bb};
        vlm_tensor_row_f32(&w, (int64_t)nblk - 1, y);
        float out[2 * 64];
        float *xx = vlm_malloc(2 * (size_t)be * sizeof *xx);
        for (int i = 0; i < 2 * be; i++) xx[i] = x[i % 512];
        vlm_matmul(NULL, xx, 2, &w, NULL, out);
        vlm_free(xx);
        vlm_free(y);
    }
    /* the input bytes as floats, quantized to every type and back */
    size_t nf = size / 4 / 256 * 256;
    if (nf > 1024) nf = 1024;
    if (nf) {
        float *f = vlm_malloc(nf * sizeof *f), *back = vlm_malloc(nf * sizeof *back);
        memcpy(f, data, nf * sizeof *f);
        int finite = 1;
        for (size_t i = 0; i < nf; i++) finite &= isfinite(f[i]) && fabsf(f[i]) < 6e4f;
        for (int q = VLM_DT_Q8_0; q < VLM_DT_COUNT; q++) {
            uint8_t *qb = vlm_malloc(vlm_dtype_row_bytes((enum vlm_dtype)q, (int64_t)nf));
            if (vlm_quantize_row((enum vlm_dtype)q, f, (int64_t)nf, qb) != 0) abort();
            vlm_dequantize_row((enum vlm_dtype)q, qb, back, (int64_t)nf);
            for (size_t i = 0; finite && i < nf; i++)
                if (!isfinite(back[i])) abort();
            vlm_free(qb);
        }
        vlm_free(f);
        vlm_free(back);
    }
    return 0;
}
