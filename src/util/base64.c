/* base64.c — strict base64 decoding (size cap before work, no whitespace, exact padding) and
 * encoding. Used on data: URLs, so every malformed input is a VLM_E_FORMAT, never a crash. */
#include "util/base64.h"

#include "util/alloc.h"
#include "util/error.h"

static const char b64_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* Value of a base64 character, or -1. */
static int b64_val(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

size_t vlm_base64_decoded_size(const char *in, size_t len) {
    if (len == 0 || len % 4) return 0;
    size_t n = len / 4 * 3;
    if (in[len - 1] == '=') n--;
    if (in[len - 2] == '=') n--;
    return n;
}

int vlm_base64_decode(const char *in, size_t len, size_t max_out, uint8_t **out, size_t *out_len,
                      struct vlm_error *err) {
    *out = NULL;
    *out_len = 0;
    if (len % 4)
        return vlm_error_set(err, VLM_E_FORMAT, "invalid base64: length is not a multiple of 4");
    size_t n = vlm_base64_decoded_size(in, len);
    if (n > max_out)
        return vlm_error_set(err, VLM_E_TOO_LARGE, "decoded data exceeds the limit of %zu bytes",
                             max_out);
    uint8_t *buf = vlm_malloc(n + 1);
    if (!buf) return vlm_error_set(err, VLM_E_NOMEM, "out of memory decoding base64");
    size_t o = 0;
    for (size_t i = 0; i < len; i += 4) {
        int v[4], pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)in[i + k];
            if (c == '=' && i + 4 == len && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            v[k] = pad ? -1 : b64_val(c);   /* a data char after '=' is malformed */
            if (v[k] < 0) {
                vlm_free(buf);
                return vlm_error_set(err, VLM_E_FORMAT, "invalid base64 character at offset %zu",
                                     i + (size_t)k);
            }
        }
        uint32_t t = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        buf[o++] = (uint8_t)(t >> 16);
        if (pad < 2) buf[o++] = (uint8_t)(t >> 8);
        if (pad < 1) buf[o++] = (uint8_t)t;
    }
    buf[o] = 0;
    *out = buf;
    *out_len = o;
    return VLM_OK;
}

int vlm_base64_encode(const uint8_t *in, size_t len, char **out, size_t *out_len,
                      struct vlm_error *err) {
    size_t groups = len / 3 + (len % 3 != 0), n;
    if (!vlm_mul_ok(groups, 4, &n) || !vlm_add_ok(n, 1, &n))
        return vlm_error_set(err, VLM_E_TOO_LARGE, "base64 input too large");
    char *s = vlm_malloc(n);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory encoding base64");
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t t = (uint32_t)in[i] << 16;
        if (i + 1 < len) t |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) t |= in[i + 2];
        s[o++] = b64_chars[t >> 18 & 63];
        s[o++] = b64_chars[t >> 12 & 63];
        s[o++] = i + 1 < len ? b64_chars[t >> 6 & 63] : '=';
        s[o++] = i + 2 < len ? b64_chars[t & 63] : '=';
    }
    s[o] = 0;
    *out = s;
    if (out_len) *out_len = o;
    return VLM_OK;
}
