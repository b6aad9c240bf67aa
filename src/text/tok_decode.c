/* tok_decode.c — decoding ids to text as HF's decode() does: the decoder chain (ByteLevel,
 * Metaspace, Replace, ByteFallback, Fuse, Strip) over the list of token strings, then a
 * join; and vlm_detokenize. Streaming (detok.c) reuses it through tok_decode_can_cut. */
#include "text/tok_internal.h"

#include <string.h>

#include "util/error.h"
#include "util/utf8.h"

/* A list of strings: item i is buf[off[i] .. off[i+1]). */
struct tv { struct vlm_buf buf; size_t *off; size_t n, cap; };

static int tv_add(struct tv *v, const void *p, size_t len) {
    if (v->n + 2 > v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64, bytes;
        if (!vlm_mul_ok(cap, sizeof *v->off, &bytes)) return VLM_E_NOMEM;
        size_t *o = vlm_realloc(v->off, bytes);
        if (!o) return VLM_E_NOMEM;
        v->off = o; v->cap = cap;
        if (v->n == 0) v->off[0] = 0;
    }
    if (vlm_buf_append(&v->buf, p, len)) return VLM_E_NOMEM;
    v->off[++v->n] = v->buf.len;
    return VLM_OK;
}

/* Extends the last item (used while building one item in pieces). */
static int tv_cat(struct tv *v, const void *p, size_t len) {
    if (vlm_buf_append(&v->buf, p, len)) return VLM_E_NOMEM;
    v->off[v->n] = v->buf.len;
    return VLM_OK;
}

static const char *tv_item(const struct tv *v, size_t i, size_t *len) {
    *len = v->off[i + 1] - v->off[i];
    return v->buf.data + v->off[i];
}

static void tv_free(struct tv *v) { vlm_buf_free(&v->buf); vlm_free(v->off); memset(v, 0, sizeof *v); }

/* Byte-level bytes of one token: its chars mapped back to bytes, or its own bytes when a
 * char is outside the alphabet (HF does the same for added tokens such as "<|im_end|>"). */
static int bytelevel_bytes(const char *s, size_t n, struct vlm_buf *out) {
    size_t start = out->len, i = 0;
    while (i < n) {
        uint32_t cp;
        size_t cl = vlm_utf8_decode((const uint8_t *)s + i, n - i, &cp);
        int b = cl ? tok_char_byte(cp) : -1;
        if (b < 0) { out->len = start; return vlm_buf_append(out, s, n); }
        char c = (char)b;
        if (vlm_buf_append(out, &c, 1)) return VLM_E_NOMEM;
        i += cl;
    }
    return VLM_OK;
}

static int byte_token(const char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        if (c >= '0' && c <= '9') v = v * 16 + (c - '0');
        else if (c >= 'A' && c <= 'F') v = v * 16 + (c - 'A' + 10);
        else return -1;
    }
    return v;
}

static int replace_all(struct tv *o, const char *s, size_t n, const char *a, size_t al, const char *b, size_t bl) {
    if (tv_add(o, "", 0)) return VLM_E_NOMEM;
    size_t i = 0;
    while (i < n) {
        const char *hit = al ? memmem(s + i, n - i, a, al) : NULL;
        size_t stop = hit ? (size_t)(hit - s) : n;
        if (tv_cat(o, s + i, stop - i) || (hit && tv_cat(o, b, bl))) return VLM_E_NOMEM;
        i = hit ? stop + al : n;
    }
    return VLM_OK;
}

/* Leading / trailing characters equal to c removed, at most start / stop of them. */
static int strip_item(struct tv *o, const char *s, size_t n, uint32_t c, size_t start, size_t stop) {
    uint8_t u[4];
    size_t cl = vlm_utf8_encode(c, u), a = 0, b = n;
    for (size_t k = 0; k < start && b - a >= cl && !memcmp(s + a, u, cl); k++) a += cl;
    for (size_t k = 0; k < stop && b - a >= cl && !memcmp(s + b - cl, u, cl); k++) b -= cl;
    return tv_add(o, s + a, b - a);
}

/* One decoder step from in to out. joined: an earlier step made the list one string. */
static int dec_step(const struct tok_dec *d, const struct tv *in, struct tv *out, int cont, int joined) {
    size_t len;
    const char *s;
    switch (d->type) {
    case DEC_BYTELEVEL: {
        struct vlm_buf bytes = {0};
        int rc = VLM_OK;
        for (size_t i = 0; rc == VLM_OK && i < in->n; i++) { s = tv_item(in, i, &len); rc = bytelevel_bytes(s, len, &bytes); }
        if (rc == VLM_OK) rc = tv_add(out, "", 0);
        if (rc == VLM_OK) rc = vlm_utf8_lossy((const uint8_t *)(bytes.data ? bytes.data : ""), bytes.len, &out->buf);
        if (rc == VLM_OK) out->off[out->n] = out->buf.len;
        vlm_buf_free(&bytes);
        return rc;
    }
    case DEC_FUSE:
        if (tv_add(out, "", 0)) return VLM_E_NOMEM;
        for (size_t i = 0; i < in->n; i++) { s = tv_item(in, i, &len); if (tv_cat(out, s, len)) return VLM_E_NOMEM; }
        return VLM_OK;
    case DEC_REPLACE:
        for (size_t i = 0; i < in->n; i++) {
            s = tv_item(in, i, &len);
            if (replace_all(out, s, len, d->a, d->a_len, d->b, d->b_len)) return VLM_E_NOMEM;
        }
        return VLM_OK;
    case DEC_METASPACE:
        for (size_t i = 0; i < in->n; i++) {
            s = tv_item(in, i, &len);
            int drop = i == 0 && !cont && d->prepend != PREPEND_NEVER;
            if (replace_all(out, s, len, d->a, d->a_len, " ", drop ? 0 : 1)) return VLM_E_NOMEM;
        }
        return VLM_OK;
    case DEC_STRIP:
        for (size_t i = 0; i < in->n; i++) {
            s = tv_item(in, i, &len);
            if (strip_item(out, s, len, d->content, joined && cont ? 0 : d->start, d->stop)) return VLM_E_NOMEM;
        }
        return VLM_OK;
    case DEC_BYTEFALLBACK: {
        size_t i = 0;
        while (i < in->n) {
            s = tv_item(in, i, &len);
            if (byte_token(s, len) < 0) { if (tv_add(out, s, len)) return VLM_E_NOMEM; i++; continue; }
            struct vlm_buf grp = {0};
            size_t j = i;
            int rc = VLM_OK;
            for (; j < in->n && rc == VLM_OK; j++) {
                size_t l2;
                const char *s2 = tv_item(in, j, &l2);
                int b = byte_token(s2, l2);
                if (b < 0) break;
                char c = (char)b;
                rc = vlm_buf_append(&grp, &c, 1);
            }
            if (rc == VLM_OK && vlm_utf8_valid((const uint8_t *)grp.data, grp.len)) rc = tv_add(out, grp.data, grp.len);
            else for (size_t k = 0; rc == VLM_OK && k < grp.len; k++) rc = tv_add(out, "\xEF\xBF\xBD", 3);
            vlm_buf_free(&grp);
            if (rc) return VLM_E_NOMEM;
            i = j;
        }
        return VLM_OK;
    }
    }
    return VLM_E_INTERNAL;
}

int tok_decode_ids(const struct vlm_tokenizer *t, const int32_t *ids, size_t n, int cont,
                   struct vlm_buf *out, struct vlm_error *err) {
    struct tv a = {0}, b = {0};
    int rc = VLM_OK, joined = 0;
    for (size_t i = 0; rc == VLM_OK && i < n; i++) {
        size_t len;
        const char *s = tok_id_str(t, ids[i], &len);
        if (s) rc = tv_add(&a, s, len);
    }
    if (!t->has_decoder) {
        for (size_t i = 0; rc == VLM_OK && i < a.n; i++) {
            size_t len;
            const char *s = tv_item(&a, i, &len);
            if ((i > 0 || cont) && vlm_buf_append(out, " ", 1)) rc = VLM_E_NOMEM;
            if (rc == VLM_OK && vlm_buf_append(out, s, len)) rc = VLM_E_NOMEM;
        }
    } else {
        for (size_t k = 0; rc == VLM_OK && k < t->n_decs && a.n; k++) {
            b.n = 0; b.buf.len = 0;
            rc = dec_step(&t->decs[k], &a, &b, cont, joined);
            if (t->decs[k].type == DEC_BYTELEVEL || t->decs[k].type == DEC_FUSE) joined = 1;
            struct tv tmp = a; a = b; b = tmp;
        }
        for (size_t i = 0; rc == VLM_OK && i < a.n; i++) {
            size_t len;
            const char *s = tv_item(&a, i, &len);
            if (vlm_buf_append(out, s, len)) rc = VLM_E_NOMEM;
        }
    }
    tv_free(&a); tv_free(&b);
    if (rc == VLM_OK && vlm_buf_append(out, "", 0)) rc = VLM_E_NOMEM;
    if (rc) return vlm_error_set(err, rc == VLM_E_NOMEM ? rc : VLM_E_INTERNAL, "decoding failed");
    return VLM_OK;
}

static int id_is_byte_token(const struct vlm_tokenizer *t, int32_t id) {
    size_t len;
    const char *s = tok_id_str(t, id, &len);
    return s && byte_token(s, len) >= 0;
}

int tok_decode_can_cut(const struct vlm_tokenizer *t, const int32_t *ids, size_t k, size_t n) {
    int joined = 0;
    for (size_t i = 0; i < t->n_decs; i++) {
        const struct tok_dec *d = &t->decs[i];
        if (d->type == DEC_STRIP && d->stop > 0 && joined) return 0;
        if (d->type == DEC_BYTEFALLBACK && k > 0 && id_is_byte_token(t, ids[k - 1]) &&
            (k == n || id_is_byte_token(t, ids[k])))
            return 0;
        if (d->type == DEC_BYTELEVEL) {
            uint8_t tail[8];
            size_t got = 0;
            struct vlm_buf tb = {0};
            for (size_t j = k; j > 0 && got < 4; j--) {
                size_t len;
                const char *s = tok_id_str(t, ids[j - 1], &len);
                tb.len = 0;
                if (s && bytelevel_bytes(s, len, &tb)) { vlm_buf_free(&tb); return 0; }
                for (size_t q = tb.len; q > 0 && got < 4; q--) tail[3 - got++] = (uint8_t)tb.data[q - 1];
            }
            vlm_buf_free(&tb);
            if (vlm_utf8_incomplete_tail(tail + 4 - got, got)) return 0;
        }
        if (d->type == DEC_BYTELEVEL || d->type == DEC_FUSE) joined = 1;
    }
    return 1;
}

int vlm_detokenize(const struct vlm_tokenizer *t, const int32_t *ids, size_t n_ids,
                   int skip_special, char **text, size_t *len, struct vlm_error *err) {
    *text = NULL; *len = 0;
    int32_t *keep = vlm_malloc((n_ids ? n_ids : 1) * sizeof *keep);
    if (!keep) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n_ids; i++)
        if (!(skip_special && vlm_tokenizer_is_special(t, ids[i]))) keep[k++] = ids[i];
    struct vlm_buf out = {0};
    int rc = tok_decode_ids(t, keep, k, 0, &out, err);
    vlm_free(keep);
    if (rc) { vlm_buf_free(&out); return rc; }
    *len = out.len;
    *text = vlm_buf_take(&out);
    return VLM_OK;
}
