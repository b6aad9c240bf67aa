/* resize_avx2.c — AVX2 versions of the two resampling passes of resize.c, compiled with
 * -mavx2 only (CMake) and chosen at run time. Same integer arithmetic as the scalar code
 * (u8 x int32 products summed in int32, >> 22, clamp), so results are bit-identical. */
#include "image/resize_internal.h"

#include <immintrin.h>
#include <string.h>

#define PREC 22

static inline __m128i clip_pack(__m256i acc) {
    acc = _mm256_srai_epi32(acc, PREC);
    __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
    return _mm_packus_epi16(p16, p16);   /* low 8 bytes: the clamped results */
}

static inline __m256i load8(const uint8_t *p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
}

void img_pass_v_avx2(const uint8_t *src, size_t stride, size_t n, const int32_t *k, int taps,
                     uint8_t *dst) {
    const __m256i half = _mm256_set1_epi32(1 << (PREC - 1));
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256i a0 = half, a1 = half, a2 = half, a3 = half;
        const uint8_t *s = src + i;
        for (int t = 0; t < taps; t++, s += stride) {
            __m256i kv = _mm256_set1_epi32(k[t]);
            a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(load8(s), kv));
            a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(load8(s + 8), kv));
            a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(load8(s + 16), kv));
            a3 = _mm256_add_epi32(a3, _mm256_mullo_epi32(load8(s + 24), kv));
        }
        _mm_storel_epi64((__m128i *)(dst + i), clip_pack(a0));
        _mm_storel_epi64((__m128i *)(dst + i + 8), clip_pack(a1));
        _mm_storel_epi64((__m128i *)(dst + i + 16), clip_pack(a2));
        _mm_storel_epi64((__m128i *)(dst + i + 24), clip_pack(a3));
    }
    for (; i + 8 <= n; i += 8) {
        __m256i a = half;
        const uint8_t *s = src + i;
        for (int t = 0; t < taps; t++, s += stride)
            a = _mm256_add_epi32(a, _mm256_mullo_epi32(load8(s), _mm256_set1_epi32(k[t])));
        _mm_storel_epi64((__m128i *)(dst + i), clip_pack(a));
    }
    for (; i < n; i++) {
        int32_t a = 1 << (PREC - 1);
        for (int t = 0; t < taps; t++) a += src[(size_t)t * stride + i] * k[t];
        a >>= PREC;
        dst[i] = (uint8_t)(a < 0 ? 0 : a > 255 ? 255 : a);
    }
}

/* 8 rows of n bytes -> t (n, 8): t[j*8 + r] = rows[r][j]. */
static void transpose8(const uint8_t *const rows[8], size_t n, uint8_t *t) {
    size_t j = 0;
    for (; j + 16 <= n; j += 16) {
        __m128i a[8], b[8], c[8];
        for (int r = 0; r < 8; r++) a[r] = _mm_loadu_si128((const __m128i *)(rows[r] + j));
        for (int r = 0; r < 4; r++) {
            b[2 * r] = _mm_unpacklo_epi8(a[2 * r], a[2 * r + 1]);
            b[2 * r + 1] = _mm_unpackhi_epi8(a[2 * r], a[2 * r + 1]);
        }
        /* b[0]: rows 0,1 for j..j+7; b[1]: rows 0,1 for j+8..; b[2], b[3]: rows 2,3; ... */
        c[0] = _mm_unpacklo_epi16(b[0], b[2]);   /* rows 0-3, j+0..3 */
        c[1] = _mm_unpackhi_epi16(b[0], b[2]);   /* rows 0-3, j+4..7 */
        c[2] = _mm_unpacklo_epi16(b[1], b[3]);   /* rows 0-3, j+8..11 */
        c[3] = _mm_unpackhi_epi16(b[1], b[3]);   /* rows 0-3, j+12..15 */
        c[4] = _mm_unpacklo_epi16(b[4], b[6]);   /* rows 4-7 ... */
        c[5] = _mm_unpackhi_epi16(b[4], b[6]);
        c[6] = _mm_unpacklo_epi16(b[5], b[7]);
        c[7] = _mm_unpackhi_epi16(b[5], b[7]);
        __m128i *o = (__m128i *)(t + j * 8);
        for (int q = 0; q < 4; q++) {
            _mm_storeu_si128(o + 2 * q, _mm_unpacklo_epi32(c[q], c[q + 4]));
            _mm_storeu_si128(o + 2 * q + 1, _mm_unpackhi_epi32(c[q], c[q + 4]));
        }
    }
    for (; j < n; j++)
        for (int r = 0; r < 8; r++) t[j * 8 + r] = rows[r][j];
}

void img_pass_h8_avx2(const uint8_t *const in_rows[8], int out_w, const struct img_coeffs *c,
                      uint8_t *const out_rows[8], uint8_t *tbuf, size_t in_bytes) {
    const __m256i half = _mm256_set1_epi32(1 << (PREC - 1));
    transpose8(in_rows, in_bytes, tbuf);
    for (int xx = 0; xx < out_w; xx++) {
        const int32_t *k = c->k + (size_t)xx * c->ksize;
        const uint8_t *s = tbuf + (size_t)c->start[xx] * 3 * 8;
        __m256i a0 = half, a1 = half, a2 = half;
        for (int t = 0, n = c->n[xx]; t < n; t++, s += 24) {
            __m256i kv = _mm256_set1_epi32(k[t]);
            a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(load8(s), kv));
            a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(load8(s + 8), kv));
            a2 = _mm256_add_epi32(a2, _mm256_mullo_epi32(load8(s + 16), kv));
        }
        uint64_t v[3];
        v[0] = (uint64_t)_mm_cvtsi128_si64(clip_pack(a0));
        v[1] = (uint64_t)_mm_cvtsi128_si64(clip_pack(a1));
        v[2] = (uint64_t)_mm_cvtsi128_si64(clip_pack(a2));
        for (int r = 0; r < 8; r++) {
            uint8_t *d = out_rows[r] + (size_t)xx * 3;
            d[0] = (uint8_t)(v[0] >> (8 * r));
            d[1] = (uint8_t)(v[1] >> (8 * r));
            d[2] = (uint8_t)(v[2] >> (8 * r));
        }
    }
}
