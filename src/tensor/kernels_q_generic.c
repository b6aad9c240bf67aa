/* kernels_q_generic.c — the scalar reference of the block-type matmul: activations quantized
 * to int8 per 32 elements (vlm_q8_act_quantize), weights unpacked to levels and per-16 factors
 * (vlm_q_unpack), integer dot products per 16 elements, f32 scaling and accumulation block by
 * block in index order. The SIMD variants are tested against this. */
#include "tensor/kernels.h"
#include "tensor/quant.h"

#include <math.h>

void vlm_q8_act_quantize(const struct vlm_q8_act *xa, const float *x, int ldx, int r0, int r1) {
    int k = xa->k;
    for (int r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * ldx;
        int8_t *q = xa->q + (size_t)r * k;
        float *d = xa->d + (size_t)r * (k / 32);
        int16_t *s = xa->s + (size_t)r * (k / 16);
        for (int b = 0; b < k / 32; b++) {
            const float *xb = xr + 32 * b;
            float amax = 0.0f;
            for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(xb[i]));
            float db = amax / 127.0f, id = db > 0.0f ? 1.0f / db : 0.0f;
            d[b] = db;
            for (int h = 0; h < 2; h++) {
                int sum = 0;
                for (int i = 16 * h; i < 16 * h + 16; i++) {
                    long v = lrintf(xb[i] * id);   /* half to even; NaN/inf: some value, clamped */
                    v = v > 127 ? 127 : v < -127 ? -127 : v;
                    q[32 * b + i] = (int8_t)v;
                    sum += (int)v;
                }
                s[2 * b + h] = (int16_t)sum;
            }
        }
    }
}

/* One weight row against one activation row. */
static float dot_row_q(enum vlm_dtype wt, const uint8_t *wr, const int8_t *q, const float *d,
                       const int16_t *s, int k) {
    int be = vlm_dtype_block_elems(wt);
    size_t bb = vlm_dtype_block_bytes(wt);
    int16_t v[256];
    float a[16], c[16], acc = 0.0f;
    for (int b = 0; b < k / be; b++) {
        vlm_q_unpack(wt, wr + (size_t)b * bb, v, a, c);
        for (int t = 0; t < be / 32; t++) {      /* activation blocks of 32 */
            int e0 = b * be + 32 * t;
            float part = 0.0f;
            for (int h = 0; h < 2; h++) {         /* groups of 16 */
                int g = 2 * t + h, isum = 0;
                for (int i = 0; i < 16; i++) isum += v[16 * g + i] * q[e0 + 16 * h + i];
                part += a[g] * (float)isum + c[g] * (float)s[e0 / 16 + h];
            }
            acc += d[e0 / 32] * part;
        }
    }
    return acc;
}

static void matmul_q_generic(const struct vlm_q8_act *xa, int i0, int m, enum vlm_dtype wt,
                             const void *w, size_t ldw, int n0, int n1, const float *bias,
                             float *y, int ldy) {
    int k = xa->k;
    for (int i = 0; i < m; i++) {
        size_t r = (size_t)(i0 + i);
        for (int j = n0; j < n1; j++) {
            float v = dot_row_q(wt, (const uint8_t *)w + (size_t)j * ldw, xa->q + r * k,
                                xa->d + r * (k / 32), xa->s + r * (k / 16), k);
            y[(size_t)i * ldy + j] = bias ? v + bias[j] : v;
        }
    }
}

static void round_bf16_generic(float *dst, const float *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = vlm_bf16_to_f32(vlm_f32_to_bf16(src[i]));
}

void vlm_kernels_init_q_generic(struct vlm_kernels *k) {
    k->matmul_q = matmul_q_generic;
    k->q8_act = vlm_q8_act_quantize;
    k->round_bf16 = round_bf16_generic;
}
