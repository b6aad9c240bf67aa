/* base64.h — strict RFC 4648 base64 (standard alphabet, '=' padding required) for data: URLs
 * from requests; the decoded size is computed and capped before any byte is decoded. */
#ifndef VLM_UTIL_BASE64_H
#define VLM_UTIL_BASE64_H

#include <stddef.h>
#include <stdint.h>

struct vlm_error;

/* Decoded size of a well-formed base64 text of len chars (padding included); 0 if len is
 * not a multiple of 4. Does not validate the characters. */
size_t vlm_base64_decoded_size(const char *in, size_t len);

/* Decodes in[0..len) into *out (vlm_malloc'd, caller frees; one extra NUL byte after the data)
 * with *out_len bytes. Strict: only A-Z a-z 0-9 + /, length a multiple of 4, '=' only as the
 * last one or two characters; no whitespace. VLM_E_TOO_LARGE (before decoding or allocating)
 * when the decoded size would exceed max_out; VLM_E_FORMAT for any malformed input, with a
 * message that does not echo the input. An empty input decodes to 0 bytes. */
int vlm_base64_decode(const char *in, size_t len, size_t max_out, uint8_t **out, size_t *out_len,
                      struct vlm_error *err);

/* Encodes in[0..len) with padding into *out (vlm_malloc'd, NUL-terminated). */
int vlm_base64_encode(const uint8_t *in, size_t len, char **out, size_t *out_len,
                      struct vlm_error *err);

#endif
