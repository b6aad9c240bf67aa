/* resize_internal.h — what resize.c shares with its SIMD variants (resize_avx2.c): the
 * fixed-point coefficient table and the pass kernels. */
#ifndef VLM_IMAGE_RESIZE_INTERNAL_H
#define VLM_IMAGE_RESIZE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* For output index i: taps k[i*ksize .. +n[i]) weight inputs start[i], start[i]+1, ... */
struct img_coeffs { int ksize; int *start, *n; int32_t *k; };

/* dst[i] = clip8(sum_t src[t*stride + i] * k[t]) for i < n (one output row, vertical pass). */
void img_pass_v_avx2(const uint8_t *src, size_t stride, size_t n, const int32_t *k, int taps,
                     uint8_t *dst);
/* Horizontal pass of 8 RGB rows at once (in_bytes = input width * 3); tbuf holds in_bytes*8. */
void img_pass_h8_avx2(const uint8_t *const in_rows[8], int out_w, const struct img_coeffs *c,
                      uint8_t *const out_rows[8], uint8_t *tbuf, size_t in_bytes);

#endif
