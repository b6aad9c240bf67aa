/* tok_normalize.c — normalizers applied to each text piece between added tokens: Prepend,
 * Replace (string or regex), Unicode NFC/NFKC/NFD/NFKD and Lowercase (through ICU, with an
 * ASCII fast path: plain ASCII is already in every normal form). */
#include "text/tok_internal.h"

#include <string.h>
#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "util/error.h"
#include "util/utf8.h"

static int replace_str(const struct tok_norm *d, const char *s, size_t n, struct vlm_buf *out) {
    size_t i = 0;
    int rc = VLM_OK;
    while (rc == VLM_OK && i < n) {
        const char *hit = memmem(s + i, n - i, d->a, d->a_len);
        size_t stop = hit ? (size_t)(hit - s) : n;
        rc = vlm_buf_append(out, s + i, stop - i);
        if (rc == VLM_OK && hit) rc = vlm_buf_append(out, d->b, d->b_len);
        i = hit ? stop + d->a_len : n;
    }
    return rc;
}

static int replace_re(const struct tok_norm *d, const char *s, size_t n, struct vlm_buf *out,
                      struct vlm_error *err) {
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) return VLM_E_NOMEM;
    size_t pos = 0, copied = 0;
    int rc = VLM_OK;
    while (rc == VLM_OK && pos <= n) {
        int m = pcre2_match(d->re, (PCRE2_SPTR)s, n, pos, PCRE2_NO_UTF_CHECK, md, tok_regex_context());
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) { rc = vlm_error_set(err, VLM_E_LIMIT, "normalizer regex failed (%d)", m); break; }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        rc = vlm_buf_append(out, s + copied, ov[0] - copied);
        if (rc == VLM_OK) rc = vlm_buf_append(out, d->b, d->b_len);
        copied = ov[1];
        pos = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
        while (pos < n && ((uint8_t)s[pos] & 0xC0) == 0x80) pos++;
    }
    if (rc == VLM_OK) rc = vlm_buf_append(out, s + copied, n - copied);
    pcre2_match_data_free(md);
    return rc;
}

/* Lowercase as HF does it: each character on its own (Rust's char::to_lowercase, full
 * mappings such as U+0130 -> "i\u0307", but no context: a final capital sigma becomes σ). */
static int lowercase(const char *s, size_t n, struct vlm_buf *out) {
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t cl = vlm_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        if (!cl) { cp = 0xFFFD; cl = 1; }
        i += cl;
        if (cp < 0x80) {
            char c = (char)(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
            if (vlm_buf_append(out, &c, 1)) return VLM_E_NOMEM;
            continue;
        }
        UChar src[2], dst[8];
        int32_t sl = 0, dl;
        UErrorCode st = U_ZERO_ERROR;
        U16_APPEND_UNSAFE(src, sl, (UChar32)cp);
        dl = u_strToLower(dst, 8, src, sl, "", &st);
        if (U_FAILURE(st)) { dst[0] = src[0]; dst[1] = src[1]; dl = sl; }
        for (int32_t k = 0; k < dl;) {
            UChar32 c;
            U16_NEXT_UNSAFE(dst, k, c);
            uint8_t u[4];
            size_t ul = vlm_utf8_encode((uint32_t)c, u);
            if (vlm_buf_append(out, u, ul)) return VLM_E_NOMEM;
        }
    }
    return VLM_OK;
}

/* Unicode normalization through ICU (UTF-8 -> UTF-16 -> UTF-8). */
static int icu_step(enum tok_norm_type type, const char *s, size_t n, struct vlm_buf *out,
                    struct vlm_error *err) {
    UErrorCode st = U_ZERO_ERROR;
    if (n > (size_t)INT32_MAX / 8) return vlm_error_set(err, VLM_E_TOO_LARGE, "text too long to normalize");
    const UNormalizer2 *nz = type == NORM_NFC ? unorm2_getNFCInstance(&st) :
                             type == NORM_NFKC ? unorm2_getNFKCInstance(&st) :
                             type == NORM_NFD ? unorm2_getNFDInstance(&st) : unorm2_getNFKDInstance(&st);
    int32_t ulen = 0, cap = (int32_t)n + 1, rc = VLM_OK;
    UChar *u = vlm_malloc((size_t)cap * sizeof *u), *v = NULL;
    if (!u) return VLM_E_NOMEM;
    u_strFromUTF8(u, cap, &ulen, s, (int32_t)n, &st);
    int32_t vcap = ulen * 2 + 16, vlen = 0;
    for (int tries = 0; tries < 2 && U_SUCCESS(st); tries++) {
        vlm_free(v);
        if (!(v = vlm_malloc((size_t)vcap * sizeof *v))) { rc = VLM_E_NOMEM; break; }
        vlen = unorm2_normalize(nz, u, ulen, v, vcap, &st);
        if (st == U_BUFFER_OVERFLOW_ERROR) { st = U_ZERO_ERROR; vcap = vlen + 1; continue; }
        break;
    }
    if (rc == VLM_OK && U_SUCCESS(st)) {
        int32_t blen = 0;
        u_strToUTF8(NULL, 0, &blen, v, vlen, &st);
        if (st == U_BUFFER_OVERFLOW_ERROR) st = U_ZERO_ERROR;
        out->len = 0;
        if (U_SUCCESS(st) && (rc = vlm_buf_append(out, NULL, 0)) == VLM_OK) {
            char *d = vlm_realloc(out->data, (size_t)blen + 1);
            if (!d) rc = VLM_E_NOMEM;
            else {
                out->data = d; out->cap = (size_t)blen + 1;
                u_strToUTF8(d, blen + 1, &blen, v, vlen, &st);
                out->len = (size_t)blen; d[blen] = 0;
            }
        }
    }
    vlm_free(u);
    vlm_free(v);
    if (rc) return rc;
    if (U_FAILURE(st)) return vlm_error_set(err, VLM_E_FORMAT, "normalization failed: %s", u_errorName(st));
    return VLM_OK;
}

static int ascii_only(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) if ((uint8_t)s[i] >= 0x80) return 0;
    return 1;
}

/* NFC leaves text alone when no character is U+0300 or above (lead bytes below 0xCC). */
static int nfc_stable(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) if ((uint8_t)s[i] >= 0xCC) return 0;
    return 1;
}

static int step(const struct tok_norm *d, const char *s, size_t n, struct vlm_buf *out, struct vlm_error *err) {
    out->len = 0;
    switch (d->type) {
    case NORM_PREPEND:
        if (n == 0) return VLM_OK;
        return vlm_buf_append(out, d->a, d->a_len) ? VLM_E_NOMEM : vlm_buf_append(out, s, n);
    case NORM_REPLACE:
        return d->re ? replace_re(d, s, n, out, err) : replace_str(d, s, n, out);
    case NORM_NFC:
        if (nfc_stable(s, n)) return vlm_buf_append(out, s, n);
        return icu_step(d->type, s, n, out, err);
    case NORM_LOWERCASE:
        return lowercase(s, n, out);
    default:
        if (ascii_only(s, n)) return vlm_buf_append(out, s, n);
        return icu_step(d->type, s, n, out, err);
    }
}

int tok_normalize(const struct vlm_tokenizer *t, const char *s, size_t n, struct vlm_buf *out,
                  struct vlm_error *err) {
    struct vlm_buf tmp = {0};
    out->len = 0;
    int rc = vlm_buf_append(out, s, n);
    for (size_t i = 0; rc == VLM_OK && i < t->n_norms; i++) {
        struct vlm_buf sw;
        rc = step(&t->norms[i], out->data ? out->data : "", out->len, &tmp, err);
        sw = *out; *out = tmp; tmp = sw;
    }
    vlm_buf_free(&tmp);
    if (rc == VLM_E_NOMEM) vlm_error_set(err, rc, "out of memory");
    return rc;
}
