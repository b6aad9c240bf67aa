/* quant.c — dequantization of every block type (gguf-py's arithmetic: f32 products and sums in
 * gguf.quants' order, one rounding each, never fused) and the reference quantizers: Q8_0 ..
 * Q5_1 as gguf-py computes them, Q4_K/Q5_K/Q6_K by llama.cpp's reference algorithm (weighted
 * min/scale search per 32 (K4/K5) or 16 (K6) elements, 6/8-bit sub-scales). Layouts: ggml's. */
#include "tensor/quant.h"

#include <math.h>
#include <string.h>

#include "util/alloc.h"
#include "util/threadpool.h"
#include "vlm.h"

static float h2f(const uint8_t *p) { return vlm_f16_to_f32((uint16_t)(p[0] | p[1] << 8)); }
static void  f2h(uint8_t *p, float f) {
    uint16_t h = vlm_f32_to_f16(f);
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}
static uint32_t rd32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

/* ---- dequantization, one block ---- */

static void dq_q8_0(const uint8_t *b, float *y) {
    float d = h2f(b);
    for (int i = 0; i < 32; i++) y[i] = (float)(int8_t)b[2 + i] * d;
}

static void dq_q4_0(const uint8_t *b, float *y) {
    float d = h2f(b);
    for (int i = 0; i < 16; i++) {
        y[i] = d * (float)((b[2 + i] & 0xF) - 8);
        y[i + 16] = d * (float)((b[2 + i] >> 4) - 8);
    }
}

static void dq_q4_1(const uint8_t *b, float *y) {
    float d = h2f(b), m = h2f(b + 2);
    for (int i = 0; i < 16; i++) {
        float lo = d * (float)(b[4 + i] & 0xF), hi = d * (float)(b[4 + i] >> 4);
        y[i] = lo + m;
        y[i + 16] = hi + m;
    }
}

/* 5-bit value i of a Q5_0/Q5_1 block: low nibble from qs, bit 4 from bit i of qh. */
static int q5_at(const uint8_t *qs, uint32_t qh, int i) {
    int lo = i < 16 ? qs[i] & 0xF : qs[i - 16] >> 4;
    return lo | (int)((qh >> i) & 1u) << 4;
}

static void dq_q5_0(const uint8_t *b, float *y) {
    float d = h2f(b);
    uint32_t qh = rd32(b + 2);
    for (int i = 0; i < 32; i++) y[i] = d * (float)(q5_at(b + 6, qh, i) - 16);
}

static void dq_q5_1(const uint8_t *b, float *y) {
    float d = h2f(b), m = h2f(b + 2);
    uint32_t qh = rd32(b + 4);
    for (int i = 0; i < 32; i++) {
        float v = d * (float)q5_at(b + 8, qh, i);
        y[i] = v + m;
    }
}

/* The 8 6-bit scales and mins of a Q4_K/Q5_K block (12 bytes): sub-block j < 4 keeps its
 * scale and min in the low 6 bits of bytes j and j+4; j >= 4 has its low 4 bits in byte j+4
 * (scale low nibble, min high nibble) and its top 2 bits in the top of bytes j-4 and j. */
static void k4_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        mn[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0xF) | (s[j] >> 6) << 4);
        mn[j + 4] = (uint8_t)((s[j + 8] >> 4) | (s[j + 4] >> 6) << 4);
    }
}

static void dq_q4_k(const uint8_t *b, float *y) {
    float d = h2f(b), dmin = h2f(b + 2);
    uint8_t sc[8], mn[8];
    k4_scales(b + 4, sc, mn);
    const uint8_t *qs = b + 16;
    for (int j = 0; j < 8; j++) {
        float dj = d * (float)sc[j], mj = dmin * (float)mn[j];
        const uint8_t *q = qs + 32 * (j / 2);
        for (int l = 0; l < 32; l++) {
            int v = j & 1 ? q[l] >> 4 : q[l] & 0xF;
            float t = dj * (float)v;
            y[32 * j + l] = t - mj;
        }
    }
}

static void dq_q5_k(const uint8_t *b, float *y) {
    float d = h2f(b), dmin = h2f(b + 2);
    uint8_t sc[8], mn[8];
    k4_scales(b + 4, sc, mn);
    const uint8_t *qh = b + 16, *qs = b + 48;
    for (int j = 0; j < 8; j++) {
        float dj = d * (float)sc[j], mj = dmin * (float)mn[j];
        const uint8_t *q = qs + 32 * (j / 2);
        for (int l = 0; l < 32; l++) {
            int v = (j & 1 ? q[l] >> 4 : q[l] & 0xF) | ((qh[l] >> j) & 1) << 4;
            float t = dj * (float)v;
            y[32 * j + l] = t - mj;
        }
    }
}

/* 6-bit value e (0..255) of a Q6_K block: per 128-element half h, the low nibble of element
 * e' = e mod 128 is nibble (e' / 64) of ql[64h + e' mod 64], its top 2 bits are bits
 * 2*(e' / 32) of qh[32h + e' mod 32]. */
static int q6_at(const uint8_t *ql, const uint8_t *qh, int e) {
    int h = e / 128, r = e % 128;
    int lo = (ql[64 * h + r % 64] >> (4 * (r / 64))) & 0xF;
    int hi = (qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
    return lo | hi << 4;
}

static void dq_q6_k(const uint8_t *b, float *y) {
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    float d = h2f(b + 208);
    for (int g = 0; g < 16; g++) {
        float dg = d * (float)sc[g];
        for (int l = 0; l < 16; l++) y[16 * g + l] = dg * (float)(q6_at(ql, qh, 16 * g + l) - 32);
    }
}

typedef void (*dq_block_fn)(const uint8_t *b, float *y);

static dq_block_fn dq_fn(enum vlm_dtype t) {
    switch (t) {
    case VLM_DT_Q8_0: return dq_q8_0;
    case VLM_DT_Q4_0: return dq_q4_0;
    case VLM_DT_Q4_1: return dq_q4_1;
    case VLM_DT_Q5_0: return dq_q5_0;
    case VLM_DT_Q5_1: return dq_q5_1;
    case VLM_DT_Q4_K: return dq_q4_k;
    case VLM_DT_Q5_K: return dq_q5_k;
    case VLM_DT_Q6_K: return dq_q6_k;
    default: return NULL;
    }
}

void vlm_dequantize_row(enum vlm_dtype t, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    switch (t) {
    case VLM_DT_F32: memcpy(dst, src, (size_t)n * 4); return;
    case VLM_DT_F16: for (int64_t i = 0; i < n; i++) dst[i] = h2f(p + 2 * i); return;
    case VLM_DT_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = vlm_bf16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        return;
    default: break;
    }
    dq_block_fn f = dq_fn(t);
    int be = vlm_dtype_block_elems(t);
    size_t bb = vlm_dtype_block_bytes(t);
    if (!f) return;
    for (int64_t i = 0; i + be <= n; i += be) f(p + (size_t)(i / be) * bb, dst + i);
}

/* ---- reference quantizers of the 32-element types (gguf-py's arithmetic) ---- */

/* The element of largest magnitude, the first one on ties (numpy argmax). */
static float signed_absmax(const float *x, int n) {
    float m = x[0], am = fabsf(x[0]);
    for (int i = 1; i < n; i++)
        if (fabsf(x[i]) > am) am = fabsf(x[i]), m = x[i];
    return m;
}

static void min_max(const float *x, int n, float *mn, float *mx) {
    *mn = *mx = x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < *mn) *mn = x[i];
        if (x[i] > *mx) *mx = x[i];
    }
}

/* trunc(v) clipped to [0, hi], as numpy's trunc().astype(uint8).clip(0, hi) for v >= 0. */
static uint8_t trunc_clip(float v, int hi) {
    float t = truncf(v);
    if (!(t > 0.0f)) return 0;
    return t >= (float)hi ? (uint8_t)hi : (uint8_t)t;
}

static void q_q8_0(const float *x, uint8_t *b) {
    float amax = 0.0f;
    for (int i = 0; i < 32; i++) amax = fabsf(x[i]) > amax ? fabsf(x[i]) : amax;
    float d = amax / 127.0f, id = d == 0.0f ? 0.0f : 1.0f / d;
    f2h(b, d);
    for (int i = 0; i < 32; i++) {
        float v = x[i] * id;
        b[2 + i] = (uint8_t)(int8_t)roundf(v);   /* numpy np_roundf: half away from zero */
    }
}

static void pack_nibbles(uint8_t *qs, const uint8_t q[32]) {
    for (int i = 0; i < 16; i++) qs[i] = (uint8_t)((q[i] & 0xF) | q[i + 16] << 4);
}

static uint32_t pack_bit4(const uint8_t q[32]) {
    uint32_t h = 0;
    for (int i = 0; i < 32; i++) h |= (uint32_t)(q[i] >> 4 & 1) << i;
    return h;
}

static void wr32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> 8 * i);
}

/* Q4_0 / Q5_0: d = (signed absmax) / -half, q = trunc(x/d + half + 0.5). */
static void q_sym(const float *x, uint8_t q[32], float *d_out, int half) {
    float mx = signed_absmax(x, 32);
    float d = mx / (float)-half, id = d == 0.0f ? 0.0f : 1.0f / d;
    for (int i = 0; i < 32; i++) {
        float v = x[i] * id;
        q[i] = trunc_clip(v + ((float)half + 0.5f), 2 * half - 1);
    }
    *d_out = d;
}

/* Q4_1 / Q5_1: d = (max - min) / top, q = trunc((x - min)/d + 0.5). */
static void q_asym(const float *x, uint8_t q[32], float *d_out, float *m_out, int top) {
    float mn, mx;
    min_max(x, 32, &mn, &mx);
    float d = (mx - mn) / (float)top, id = d == 0.0f ? 0.0f : 1.0f / d;
    for (int i = 0; i < 32; i++) {
        float v = (x[i] - mn) * id;
        q[i] = trunc_clip(v + 0.5f, top);
    }
    *d_out = d;
    *m_out = mn;
}

static void q_q4_0(const float *x, uint8_t *b) {
    uint8_t q[32];
    float d;
    q_sym(x, q, &d, 8);
    f2h(b, d);
    pack_nibbles(b + 2, q);
}

static void q_q4_1(const float *x, uint8_t *b) {
    uint8_t q[32];
    float d, m;
    q_asym(x, q, &d, &m, 15);
    f2h(b, d);
    f2h(b + 2, m);
    pack_nibbles(b + 4, q);
}

static void q_q5_0(const float *x, uint8_t *b) {
    uint8_t q[32];
    float d;
    q_sym(x, q, &d, 16);
    f2h(b, d);
    wr32(b + 2, pack_bit4(q));
    pack_nibbles(b + 6, q);
}

static void q_q5_1(const float *x, uint8_t *b) {
    uint8_t q[32];
    float d, m;
    q_asym(x, q, &d, &m, 31);
    f2h(b, d);
    f2h(b + 2, m);
    wr32(b + 4, pack_bit4(q));
    pack_nibbles(b + 8, q);
}

/* ---- K-quants: llama.cpp's reference search (quantize_row_q{4,5,6}_K_ref, no imatrix) ---- */

static int nearest(float v) { return (int)lrintf(v); }   /* round half to even */
static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Scale and min for x (n) over levels 0..nmax with weights w, minimizing the weighted squared
 * error over a sweep of nstep+1 candidate ranges (make_qkx2_quants). L gets the levels;
 * returns the scale, *neg_min the negated offset (>= 0). */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *neg_min, float rmin, float rdelta, int nstep) {
    float mn = x[0], mx = x[0], sw = w[0], sx = w[0] * x[0];
    for (int i = 1; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
        sw += w[i];
        sx += w[i] * x[i];
    }
    if (mn > 0) mn = 0;
    if (mx == mn) {
        memset(L, 0, (size_t)n);
        *neg_min = -mn;
        return 0.0f;
    }
    float iscale = (float)nmax / (mx - mn), scale = 1.0f / iscale, best = 0.0f;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest(iscale * (x[i] - mn)), 0, nmax);
        float diff = scale * L[i] + mn - x[i];
        best += w[i] * (diff * diff);
    }
    uint8_t aux[32];
    for (int is = 0; is <= nstep; is++) {
        float isc = (rmin + rdelta * is + nmax) / (mx - mn);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(isc * (x[i] - mn)), 0, nmax);
            aux[i] = (uint8_t)l;
            sl += w[i] * l;
            sl2 += w[i] * l * l;
            sxl += w[i] * l * x[i];
        }
        float D = sw * sl2 - sl * sl;
        if (!(D > 0)) continue;
        float s = (sw * sxl - sx * sl) / D, m = (sl2 * sx - sl * sxl) / D;
        if (m > 0) {
            m = 0;
            s = sxl / sl2;
        }
        float err = 0;
        for (int i = 0; i < n; i++) {
            float diff = s * aux[i] + m - x[i];
            err += w[i] * (diff * diff);
        }
        if (err < best) {
            memcpy(L, aux, (size_t)n);
            best = err;
            scale = s;
            mn = m;
        }
    }
    *neg_min = -mn;
    return scale;
}

/* Symmetric scale for x (n) over levels -nmax..nmax-1, weights x^2, refined over 18 nearby
 * ranges (make_qx_quants with rmse_type 1). L gets level + nmax. */
static float fit_scale_sym(int n, int nmax, const float *x, int8_t *L) {
    float mx = 0, amax = 0;
    for (int i = 0; i < n; i++)
        if (fabsf(x[i]) > amax) amax = fabsf(x[i]), mx = x[i];
    if (amax < 1e-15f) {
        memset(L, 0, (size_t)n);
        return 0.0f;
    }
    float iscale = -nmax / mx, slx = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        slx += w * x[i] * l;
        sl2 += w * l * l;
    }
    float scale = sl2 ? slx / sl2 : 0.0f, best = scale * slx;
    for (int is = -9; is <= 9; is++) {
        if (!is) continue;
        float isc = -(nmax + 0.1f * is) / mx;
        float a = 0, b = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest(isc * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            a += w * x[i] * l;
            b += w * l * l;
        }
        if (b > 0 && a * a > best * b) {
            for (int i = 0; i < n; i++) L[i] = (int8_t)(nmax + clampi(nearest(isc * x[i]), -nmax, nmax - 1));
            scale = a / b;
            best = scale * a;
        }
    }
    return scale;
}

/* Shared by Q4_K and Q5_K: per 32-element sub-block scale/min search, 6-bit sub-scales and
 * mins relative to f16 d and dmin (written at b, b+2, scales at b+4), final levels in L. */
static void k4_block(const float *x, uint8_t *b, uint8_t L[256], int nmax, float rmin, int nstep) {
    float scales[8], mins[8], w[32], max_s = 0, max_m = 0;
    for (int j = 0; j < 8; j++) {
        const float *xj = x + 32 * j;
        float ss = 0;
        for (int l = 0; l < 32; l++) ss += xj[l] * xj[l];
        float av = sqrtf(ss / 32);
        for (int l = 0; l < 32; l++) w[l] = av + fabsf(xj[l]);
        scales[j] = fit_scale_min(32, nmax, xj, w, L + 32 * j, &mins[j], rmin, 0.1f, nstep);
        if (scales[j] > max_s) max_s = scales[j];
        if (mins[j] > max_m) max_m = mins[j];
    }
    float inv_s = max_s > 0 ? 63.f / max_s : 0.f, inv_m = max_m > 0 ? 63.f / max_m : 0.f;
    uint8_t *s = b + 4;
    memset(s, 0, 12);
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest(inv_s * scales[j]), lm = (uint8_t)nearest(inv_m * mins[j]);
        ls = ls > 63 ? 63 : ls;
        lm = lm > 63 ? 63 : lm;
        if (j < 4) {
            s[j] |= ls;
            s[j + 4] |= lm;
        } else {
            s[j + 4] = (uint8_t)((ls & 0xF) | (lm & 0xF) << 4);
            s[j - 4] |= (uint8_t)((ls >> 4) << 6);
            s[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    f2h(b, max_s / 63.f);
    f2h(b + 2, max_m / 63.f);
    uint8_t sc[8], mn[8];
    k4_scales(s, sc, mn);
    for (int j = 0; j < 8; j++) {
        float d = h2f(b) * sc[j];
        if (!d) continue;
        float dm = h2f(b + 2) * mn[j];
        for (int l = 0; l < 32; l++) L[32 * j + l] = (uint8_t)clampi(nearest((x[32 * j + l] + dm) / d), 0, nmax);
    }
}

static void q_q4_k(const float *x, uint8_t *b) {
    uint8_t L[256];
    k4_block(x, b, L, 15, -1.0f, 20);
    uint8_t *qs = b + 16;
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) qs[32 * c + l] = (uint8_t)(L[64 * c + l] | L[64 * c + 32 + l] << 4);
}

static void q_q5_k(const float *x, uint8_t *b) {
    uint8_t L[256];
    k4_block(x, b, L, 31, -0.5f, 15);
    uint8_t *qh = b + 16, *qs = b + 48;
    memset(qh, 0, 32);
    for (int c = 0; c < 4; c++)
        for (int l = 0; l < 32; l++) {
            int a = L[64 * c + l], z = L[64 * c + 32 + l];
            qh[l] |= (uint8_t)((a >> 4) << (2 * c) | (z >> 4) << (2 * c + 1));
            qs[32 * c + l] = (uint8_t)((a & 0xF) | (z & 0xF) << 4);
        }
}

static void q_q6_k(const float *x, uint8_t *b) {
    int8_t L[256];
    float scales[16], max_s = 0, max_abs = 0;
    for (int g = 0; g < 16; g++) {
        scales[g] = fit_scale_sym(16, 32, x + 16 * g, L + 16 * g);
        if (fabsf(scales[g]) > max_abs) max_abs = fabsf(scales[g]), max_s = scales[g];
    }
    memset(b, 0, 210);
    if (max_abs < 1e-15f) return;   /* all zero: d = 0 */
    float iscale = -128.f / max_s;
    f2h(b + 208, 1 / iscale);
    int8_t *sc = (int8_t *)(b + 192);
    for (int g = 0; g < 16; g++) sc[g] = (int8_t)(nearest(iscale * scales[g]) > 127 ? 127 : nearest(iscale * scales[g]));
    for (int g = 0; g < 16; g++) {
        float d = h2f(b + 208) * sc[g];
        if (!d) continue;
        for (int l = 0; l < 16; l++) L[16 * g + l] = (int8_t)(clampi(nearest(x[16 * g + l] / d), -32, 31) + 32);
    }
    uint8_t *ql = b, *qh = b + 128;
    for (int e = 0; e < 256; e++) {
        int h = e / 128, r = e % 128, v = L[e];
        ql[64 * h + r % 64] |= (uint8_t)((v & 0xF) << (4 * (r / 64)));
        qh[32 * h + r % 32] |= (uint8_t)(((v >> 4) & 3) << (2 * (r / 32)));
    }
}

typedef void (*q_block_fn)(const float *x, uint8_t *b);

static q_block_fn q_fn(enum vlm_dtype t) {
    switch (t) {
    case VLM_DT_Q8_0: return q_q8_0;
    case VLM_DT_Q4_0: return q_q4_0;
    case VLM_DT_Q4_1: return q_q4_1;
    case VLM_DT_Q5_0: return q_q5_0;
    case VLM_DT_Q5_1: return q_q5_1;
    case VLM_DT_Q4_K: return q_q4_k;
    case VLM_DT_Q5_K: return q_q5_k;
    case VLM_DT_Q6_K: return q_q6_k;
    default: return NULL;
    }
}

int vlm_quantize_supported(enum vlm_dtype t) {
    return t == VLM_DT_F32 || t == VLM_DT_F16 || t == VLM_DT_BF16 || q_fn(t) != NULL;
}

int vlm_quantize_row(enum vlm_dtype t, const float *src, int64_t n, void *dst) {
    if (!vlm_quantize_supported(t) || n < 0 || (n > 0 && vlm_dtype_row_bytes(t, n) == 0))
        return VLM_E_INVALID;
    uint8_t *p = dst;
    switch (t) {
    case VLM_DT_F32: memcpy(dst, src, (size_t)n * 4); return VLM_OK;
    case VLM_DT_F16: for (int64_t i = 0; i < n; i++) f2h(p + 2 * i, src[i]); return VLM_OK;
    case VLM_DT_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = vlm_f32_to_bf16(src[i]);
            p[2 * i] = (uint8_t)h;
            p[2 * i + 1] = (uint8_t)(h >> 8);
        }
        return VLM_OK;
    default: break;
    }
    q_block_fn f = q_fn(t);
    int be = vlm_dtype_block_elems(t);
    size_t bb = vlm_dtype_block_bytes(t);
    for (int64_t i = 0; i < n; i += be) f(src + i, p + (size_t)(i / be) * bb);
    return VLM_OK;
}

/* ---- whole tensors over the pool ---- */

struct qrows_job {
    enum vlm_dtype t, st;
    uint8_t *dst;
    const uint8_t *src;
    int64_t rows, n;
    size_t drow, srow;
    float *buf;   /* (threads, n) */
};

static void qrows_task(void *ctx, int task, int thread) {
    const struct qrows_job *j = ctx;
    float *row = j->buf + (size_t)thread * (size_t)j->n;
    int64_t r0 = (int64_t)task * 16, r1 = r0 + 16 < j->rows ? r0 + 16 : j->rows;
    for (int64_t r = r0; r < r1; r++) {
        vlm_dequantize_row(j->st, j->src + (size_t)r * j->srow, row, j->n);
        vlm_quantize_row(j->t, row, j->n, j->dst + (size_t)r * j->drow);
    }
}

int vlm_quantize_rows(struct vlm_pool *pool, enum vlm_dtype t, void *dst, enum vlm_dtype src_type,
                      const void *src, int64_t rows, int64_t n) {
    if (!vlm_quantize_supported(t) || (src_type != VLM_DT_F32 && src_type != VLM_DT_F16 &&
                                       src_type != VLM_DT_BF16) || rows < 0 || n <= 0 ||
        vlm_dtype_row_bytes(t, n) == 0 || rows > INT32_MAX / 2)
        return VLM_E_INVALID;
    int T = vlm_pool_size(pool);
    size_t nb;
    if (!vlm_mul_ok((size_t)T * sizeof(float), (size_t)n, &nb)) return VLM_E_NOMEM;
    struct qrows_job j = {.t = t, .st = src_type, .dst = dst, .src = src, .rows = rows, .n = n,
                          .drow = vlm_dtype_row_bytes(t, n), .srow = vlm_dtype_row_bytes(src_type, n),
                          .buf = vlm_malloc(nb)};
    if (!j.buf) return VLM_E_NOMEM;
    vlm_pool_run(pool, (int)((rows + 15) / 16), qrows_task, &j);
    vlm_free(j.buf);
    return VLM_OK;
}

/* ---- levels and factors for the integer-dot kernels ---- */

void vlm_q_unpack(enum vlm_dtype t, const uint8_t *b, int16_t *v, float *a, float *c) {
    switch (t) {
    case VLM_DT_Q8_0:
        for (int i = 0; i < 32; i++) v[i] = (int8_t)b[2 + i];
        a[0] = a[1] = h2f(b);
        c[0] = c[1] = 0.0f;
        return;
    case VLM_DT_Q4_0:
    case VLM_DT_Q4_1: {
        const uint8_t *qs = b + (t == VLM_DT_Q4_0 ? 2 : 4);
        for (int i = 0; i < 16; i++) v[i] = qs[i] & 0xF, v[i + 16] = qs[i] >> 4;
        a[0] = a[1] = h2f(b);
        c[0] = c[1] = t == VLM_DT_Q4_0 ? -8.0f * a[0] : h2f(b + 2);
        return;
    }
    case VLM_DT_Q5_0:
    case VLM_DT_Q5_1: {
        int o = t == VLM_DT_Q5_0 ? 2 : 4;
        uint32_t qh = rd32(b + o);
        for (int i = 0; i < 32; i++) v[i] = (int16_t)q5_at(b + o + 4, qh, i);
        a[0] = a[1] = h2f(b);
        c[0] = c[1] = t == VLM_DT_Q5_0 ? -16.0f * a[0] : h2f(b + 2);
        return;
    }
    case VLM_DT_Q4_K:
    case VLM_DT_Q5_K: {
        float d = h2f(b), dmin = h2f(b + 2);
        uint8_t sc[8], mn[8];
        k4_scales(b + 4, sc, mn);
        const uint8_t *qs = b + (t == VLM_DT_Q4_K ? 16 : 48), *qh = b + 16;
        for (int j = 0; j < 8; j++) {
            a[2 * j] = a[2 * j + 1] = d * sc[j];
            c[2 * j] = c[2 * j + 1] = -(dmin * mn[j]);
            for (int l = 0; l < 32; l++) {
                int q = j & 1 ? qs[32 * (j / 2) + l] >> 4 : qs[32 * (j / 2) + l] & 0xF;
                if (t == VLM_DT_Q5_K) q |= ((qh[l] >> j) & 1) << 4;
                v[32 * j + l] = (int16_t)q;
            }
        }
        return;
    }
    case VLM_DT_Q6_K: {
        float d = h2f(b + 208);
        for (int g = 0; g < 16; g++) {
            a[g] = d * (float)(int8_t)b[192 + g];
            c[g] = -32.0f * a[g];
        }
        for (int e = 0; e < 256; e++) v[e] = (int16_t)q6_at(b, b + 128, e);
        return;
    }
    default: return;
    }
}
