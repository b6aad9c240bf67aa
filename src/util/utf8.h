/* utf8.h — UTF-8 decoding, validation and lossy repair (U+FFFD per maximal invalid subpart,
 * as Python's errors="replace" and Rust's from_utf8_lossy do), plus White_Space checks. */
#ifndef VLM_UTIL_UTF8_H
#define VLM_UTIL_UTF8_H

#include <stddef.h>
#include <stdint.h>

struct vlm_buf;

/* Length (1-4) of the valid UTF-8 sequence at s[0..n), or 0 if s does not start with one.
 * On success *cp receives the code point (cp may be NULL). */
size_t vlm_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);

/* Writes cp as UTF-8 into out[4]; returns 1-4, or 0 for surrogates / values past U+10FFFF. */
size_t vlm_utf8_encode(uint32_t cp, uint8_t out[4]);

/* 1 if s[0..n) is entirely valid UTF-8 (no surrogates, no overlongs). */
int vlm_utf8_valid(const uint8_t *s, size_t n);

/* Appends s[0..n) to out with every maximal invalid subpart replaced by U+FFFD.
 * Returns VLM_OK or the vlm_buf_append error. */
int vlm_utf8_lossy(const uint8_t *s, size_t n, struct vlm_buf *out);

/* Length of the longest suffix of s[0..n) that is a valid but incomplete UTF-8 sequence
 * (0-3): bytes a later byte could still complete. */
size_t vlm_utf8_incomplete_tail(const uint8_t *s, size_t n);

/* 1 if cp has the Unicode White_Space property (Rust's char::is_whitespace). */
int vlm_unicode_is_space(uint32_t cp);

#endif
