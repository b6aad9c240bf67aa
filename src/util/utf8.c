/* utf8.c — UTF-8 decoding with the Unicode "maximal subpart" rules used by lossy decoding
 * (Table 3-7 of the Unicode standard: no overlongs, no surrogates, nothing past U+10FFFF). */
#include "util/utf8.h"

#include "util/alloc.h"
#include "vlm.h"

/* Valid range of the second byte after lead byte b (Table 3-7); lo > hi means b is no lead. */
static void second_range(uint8_t b, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80; *hi = 0xBF;
    if (b == 0xE0) *lo = 0xA0;
    else if (b == 0xED) *hi = 0x9F;
    else if (b == 0xF0) *lo = 0x90;
    else if (b == 0xF4) *hi = 0x8F;
    else if (b < 0xC2 || b > 0xF4) { *lo = 1; *hi = 0; }
}

static size_t seq_len(uint8_t b) {
    return b < 0x80 ? 1 : b < 0xC2 ? 0 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF5 ? 4 : 0;
}

/* How many bytes of s[0..n) form the longest valid (possibly incomplete) prefix of a
 * sequence; *need receives the full sequence length (0 if s[0] cannot start one). */
static size_t valid_prefix(const uint8_t *s, size_t n, size_t *need) {
    size_t len = seq_len(s[0]);
    *need = len;
    if (len <= 1) return len;
    uint8_t lo, hi;
    second_range(s[0], &lo, &hi);
    size_t k = 1;
    if (k < n && s[1] >= lo && s[1] <= hi) {
        k = 2;
        while (k < len && k < n && (s[k] & 0xC0) == 0x80) k++;
    }
    return k;
}

size_t vlm_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    if (s[0] < 0x80) { if (cp) *cp = s[0]; return 1; }
    size_t need, k = valid_prefix(s, n, &need);
    if (need == 0 || k != need) return 0;
    uint32_t v = s[0] & (need == 2 ? 0x1F : need == 3 ? 0x0F : 0x07);
    for (size_t i = 1; i < need; i++) v = (v << 6) | (s[i] & 0x3F);
    if (cp) *cp = v;
    return need;
}

size_t vlm_utf8_encode(uint32_t cp, uint8_t out[4]) {
    if (cp < 0x80) { out[0] = (uint8_t)cp; return 1; }
    if (cp < 0x800) { out[0] = (uint8_t)(0xC0 | (cp >> 6)); out[1] = (uint8_t)(0x80 | (cp & 0x3F)); return 2; }
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12)); out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F)); return 3;
    }
    if (cp > 0x10FFFF) return 0;
    out[0] = (uint8_t)(0xF0 | (cp >> 18)); out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)); out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

int vlm_utf8_valid(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        size_t k = vlm_utf8_decode(s + i, n - i, NULL);
        if (!k) return 0;
        i += k;
    }
    return 1;
}

int vlm_utf8_lossy(const uint8_t *s, size_t n, struct vlm_buf *out) {
    static const char fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};
    size_t i = 0, run = 0;   /* s[run..i) is valid and not yet appended */
    while (i < n) {
        if (s[i] < 0x80) { i++; continue; }
        size_t need, k = valid_prefix(s + i, n - i, &need);
        if (need && k == need) { i += k; continue; }
        int rc = vlm_buf_append(out, s + run, i - run);
        if (rc == VLM_OK) rc = vlm_buf_append(out, fffd, 3);
        if (rc != VLM_OK) return rc;
        i += k ? k : 1;
        run = i;
    }
    return vlm_buf_append(out, s + run, n - run);
}

size_t vlm_utf8_incomplete_tail(const uint8_t *s, size_t n) {
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        uint8_t b = s[n - back];
        if ((b & 0xC0) == 0x80) continue;          /* continuation: keep looking for the lead */
        size_t need, k = valid_prefix(s + n - back, back, &need);
        return (need > back && k == back) ? back : 0;
    }
    return 0;
}

int vlm_unicode_is_space(uint32_t cp) {
    if (cp <= 0x20) return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    if (cp < 0x85) return 0;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}
