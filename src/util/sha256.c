/* sha256.c — SHA-256 through OpenSSL's EVP interface (one-shot EVP_Digest). */
#include "util/sha256.h"

#include "vlm.h"

#include <openssl/evp.h>

int vlm_sha256(const void *data, size_t len, uint8_t digest[VLM_SHA256_LEN]) {
    unsigned int n = 0;
    if (!EVP_Digest(data, len, digest, &n, EVP_sha256(), NULL) || n != VLM_SHA256_LEN)
        return VLM_E_INTERNAL;
    return VLM_OK;
}

void vlm_sha256_hex(const uint8_t digest[VLM_SHA256_LEN], char hex[2 * VLM_SHA256_LEN + 1]) {
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < VLM_SHA256_LEN; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[2 * VLM_SHA256_LEN] = 0;
}
