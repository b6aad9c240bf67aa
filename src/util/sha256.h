/* sha256.h — SHA-256 (OpenSSL libcrypto, EVP) for cache keys that requests cannot collide
 * on purpose: image bytes -> a 32-byte digest and its 64-char hex form. */
#ifndef VLM_UTIL_SHA256_H
#define VLM_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

#define VLM_SHA256_LEN 32

/* digest = SHA-256(data[0..len)). Returns VLM_OK or VLM_E_INTERNAL if libcrypto fails. */
int vlm_sha256(const void *data, size_t len, uint8_t digest[VLM_SHA256_LEN]);

/* Lower-case hex of a digest into hex (65 bytes incl. NUL). */
void vlm_sha256_hex(const uint8_t digest[VLM_SHA256_LEN], char hex[2 * VLM_SHA256_LEN + 1]);

#endif
