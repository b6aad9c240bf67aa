/* tok_encode.c — vlm_tokenize: repair invalid UTF-8 (U+FFFD, as a lossy decode does), cut
 * out added tokens (special ones only with VLM_TOK_PARSE_SPECIAL), normalize and
 * pre-tokenize the text between them, run BPE, then apply the post-processor template. */
#include "text/tok_internal.h"

#include <string.h>
#include <unicode/uchar.h>

#include "util/error.h"
#include "util/utf8.h"

static int is_word_char(uint32_t cp) {
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    int8_t ty = u_charType((UChar32)cp);
    return u_hasBinaryProperty((UChar32)cp, UCHAR_ALPHABETIC) || ty == U_DECIMAL_DIGIT_NUMBER ||
           ty == U_LETTER_NUMBER || ty == U_OTHER_NUMBER;
}

/* Code point ending at s[0..end) (end > 0; the text is valid UTF-8). */
static uint32_t cp_before(const uint8_t *s, size_t end, size_t *start) {
    size_t i = end - 1;
    while (i > 0 && (s[i] & 0xC0) == 0x80) i--;
    uint32_t cp = 0xFFFD;
    vlm_utf8_decode(s + i, end - i, &cp);
    if (start) *start = i;
    return cp;
}

static uint32_t cp_at(const uint8_t *s, size_t n, size_t i, size_t *len) {
    uint32_t cp = 0xFFFD;
    size_t l = vlm_utf8_decode(s + i, n - i, &cp);
    if (len) *len = l ? l : 1;
    return cp;
}

static int push(struct tok_ids *out, int32_t id, struct vlm_error *err) {
    return tok_ids_push(out, id) ? vlm_error_set(err, VLM_E_NOMEM, "out of memory") : VLM_OK;
}

static int encode_piece(const struct vlm_tokenizer *t, const char *s, size_t n, int first, int flags,
                        struct tok_ids *out, struct vlm_error *err);

/* Splits s[0..n) around added-token matches of one trie (level 0: raw text, whose gaps are
 * normalized next; level 1: normalized text, whose gaps go to the pre-tokenizer). Mirrors
 * HF's AddedVocabulary::find_matches: single_word, lstrip and rstrip adjust a match. */
static int split_added(const struct vlm_tokenizer *t, const struct tok_trie *tr, const char *text,
                       size_t n, int level, int first, int flags, struct tok_ids *out, struct vlm_error *err) {
    const uint8_t *s = (const uint8_t *)text;
    size_t pos = 0, done = 0, ms = 0, me = 0;
    int rc = VLM_OK;
    int32_t ai;
    while (rc == VLM_OK && (ai = tok_trie_find(tr, s, n, pos, &ms, &me)) >= 0) {
        const struct tok_added *a = &t->added[ai];
        pos = me;
        if (a->special && !(flags & VLM_TOK_PARSE_SPECIAL)) continue;
        if (a->single_word) {
            int start_ok = ms == 0 || !is_word_char(cp_before(s, ms, NULL));
            int stop_ok = me == n || !is_word_char(cp_at(s, n, me, NULL));
            if (!start_ok || !stop_ok) continue;
        }
        if (a->lstrip) {
            size_t b;
            while (ms > done && vlm_unicode_is_space(cp_before(s, ms, &b))) ms = b;
        }
        if (a->rstrip) {
            size_t l;
            while (me < n && vlm_unicode_is_space(cp_at(s, n, me, &l))) me += l;
        }
        if (ms > done) {
            rc = level == 0 ? encode_piece(t, text + done, ms - done, first && done == 0, flags, out, err)
                            : tok_pretok_encode(t, text + done, ms - done, first && done == 0, out, err);
        }
        if (rc == VLM_OK) rc = push(out, a->id, err);
        done = me > done ? me : done;
    }
    if (rc == VLM_OK && done < n)
        rc = level == 0 ? encode_piece(t, text + done, n - done, first && done == 0, flags, out, err)
                        : tok_pretok_encode(t, text + done, n - done, first && done == 0, out, err);
    return rc;
}

/* Text between raw added tokens: normalize, split on normalized added tokens, pre-tokenize. */
static int encode_piece(const struct vlm_tokenizer *t, const char *s, size_t n, int first, int flags,
                        struct tok_ids *out, struct vlm_error *err) {
    if (t->n_norms == 0 && t->trie_norm.n_nodes <= 1) return tok_pretok_encode(t, s, n, first, out, err);
    struct vlm_buf nb = {0};
    int rc = tok_normalize(t, s, n, &nb, err);
    if (rc == VLM_OK) rc = split_added(t, &t->trie_norm, nb.len ? nb.data : "", nb.len, 1, first, flags, out, err);
    vlm_buf_free(&nb);
    return rc;
}

int vlm_tokenize(const struct vlm_tokenizer *t, const char *text, size_t len, int flags,
                 int32_t **ids, size_t *n_ids, struct vlm_error *err) {
    *ids = NULL; *n_ids = 0;
    if (len > TOK_MAX_TEXT_BYTES) return vlm_error_set(err, VLM_E_TOO_LARGE, "text of %zu bytes is too long", len);
    struct vlm_buf fixed = {0};
    struct tok_ids out = {0};
    int rc = VLM_OK;
    if (!vlm_utf8_valid((const uint8_t *)text, len)) {
        if (vlm_utf8_lossy((const uint8_t *)text, len, &fixed)) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        text = fixed.data; len = fixed.len;
    }
    if (len) rc = split_added(t, &t->trie_raw, text, len, 0, 1, flags, &out, err);
    vlm_buf_free(&fixed);
    if (rc == VLM_OK && (flags & VLM_TOK_ADD_SPECIAL) && t->has_tmpl) {
        struct tok_ids fin = {0};
        for (size_t i = 0; rc == VLM_OK && i < t->n_tmpl; i++) {
            if (t->tmpl[i] >= 0) rc = push(&fin, t->tmpl[i], err);
            else for (size_t k = 0; rc == VLM_OK && k < out.n; k++) rc = push(&fin, out.v[k], err);
        }
        vlm_free(out.v);
        out = fin;
    }
    if (rc) { vlm_free(out.v); return rc; }
    if (!out.v && !(out.v = vlm_malloc(sizeof *out.v))) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    *ids = out.v; *n_ids = out.n;
    return VLM_OK;
}
