/* tok_pretok.c — pre-tokenizers: splitting a normalized piece into words (Split with a
 * string or PCRE2 regex and HF's five behaviors, Digits, Metaspace, ByteLevel with its
 * GPT-2 regex and prefix space) and running the BPE model on each word. */
#include "text/tok_internal.h"

#include <pthread.h>
#include <string.h>

#include "util/error.h"

static pcre2_match_context *shared_ctx;

static void regex_context_init(void) {
    shared_ctx = pcre2_match_context_create(NULL);
    if (shared_ctx) {
        pcre2_set_match_limit(shared_ctx, 50u * 1000 * 1000);
        pcre2_set_depth_limit(shared_ctx, 1000u * 1000);
    }
}

pcre2_code *tok_regex_compile(const char *pat, size_t len, struct vlm_error *err) {
    int code;
    PCRE2_SIZE off;
    if (len > 65536) { vlm_error_set(err, VLM_E_TOO_LARGE, "regex too long"); return NULL; }
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, len, PCRE2_UTF | PCRE2_UCP, &code, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[128];
        pcre2_get_error_message(code, msg, sizeof msg);
        vlm_error_set(err, VLM_E_FORMAT, "regex at offset %zu: %s", (size_t)off, (const char *)msg);
        return NULL;
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);   /* the interpreter runs if JIT is unavailable */
    return re;
}

pcre2_match_context *tok_regex_context(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, regex_context_init);
    return shared_ctx;
}

/* A word: bytes [off, off+len) of the piece (arena 0) or of the scratch arena (arena 1). */
struct span { uint32_t off, len; uint32_t arena; };

struct spans { struct span *v; size_t n, cap; };

struct pt {
    const char *base;
    struct vlm_buf arena;
    struct spans cur, next;
    pcre2_match_data *md;
    struct vlm_error *err;
};

static int spans_push(struct spans *s, uint32_t off, uint32_t len, uint32_t arena) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64, bytes;
        if (!vlm_mul_ok(cap, sizeof *s->v, &bytes)) return VLM_E_NOMEM;
        struct span *v = vlm_realloc(s->v, bytes);
        if (!v) return VLM_E_NOMEM;
        s->v = v; s->cap = cap;
    }
    s->v[s->n++] = (struct span){off, len, arena};
    return VLM_OK;
}

static const char *span_ptr(const struct pt *p, const struct span *s) {
    return (s->arena ? p->arena.data : p->base) + s->off;
}

/* Emits the pieces of span sp cut at the given (start, end, is_match) list, folded by
 * behavior exactly as HF's NormalizedString::split does; empty pieces are dropped. */
struct cut { uint32_t a, b; int m; };

static int emit(struct pt *p, const struct span *sp, uint32_t a, uint32_t b) {
    if (b <= a) return VLM_OK;
    return spans_push(&p->next, sp->off + a, b - a, sp->arena);
}

static int fold(struct pt *p, const struct span *sp, const struct cut *c, size_t n,
                enum tok_split_behavior bh) {
    int rc = VLM_OK, prev_match = 0, have = 0;
    uint32_t a = 0, b = 0;
    for (size_t i = 0; i < n && rc == VLM_OK; i++) {
        int join;
        switch (bh) {
        case SPLIT_REMOVED:
            if (!c[i].m) rc = emit(p, sp, c[i].a, c[i].b);
            continue;
        case SPLIT_MERGED_NEXT:   /* a match joins the non-match right after it */
            if (c[i].m && i + 1 < n && !c[i + 1].m) { rc = emit(p, sp, c[i].a, c[i + 1].b); i++; }
            else rc = emit(p, sp, c[i].a, c[i].b);
            continue;
        case SPLIT_ISOLATED: join = 0; break;
        case SPLIT_CONTIGUOUS: join = have && c[i].m == prev_match; break;
        default: join = have && c[i].m && !prev_match; break;   /* MergedWithPrevious */
        }
        if (join) b = c[i].b;
        else { if (have) rc = emit(p, sp, a, b); a = c[i].a; b = c[i].b; have = 1; }
        prev_match = c[i].m;
    }
    if (rc == VLM_OK && have) rc = emit(p, sp, a, b);
    return rc;
}

/* Cut list of one span for a regex or literal: matches and the gaps between them. */
struct cuts { struct cut *v; size_t n, cap; };

static int cuts_push(struct cuts *c, uint32_t a, uint32_t b, int m) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64, bytes;
        if (!vlm_mul_ok(cap, sizeof *c->v, &bytes)) return VLM_E_NOMEM;
        struct cut *v = vlm_realloc(c->v, bytes);
        if (!v) return VLM_E_NOMEM;
        c->v = v; c->cap = cap;
    }
    c->v[c->n++] = (struct cut){a, b, m};
    return VLM_OK;
}

/* Finds the next match in s[from..n): 1 and [*ms, *me), 0 if none, <0 on a regex error. */
static int find(struct pt *p, const struct tok_pre *d, const char *s, size_t n, size_t from,
                size_t *ms, size_t *me) {
    if (!d->re) {
        const char *hit = from <= n ? memmem(s + from, n - from, d->lit, d->lit_len) : NULL;
        if (!hit) return 0;
        *ms = (size_t)(hit - s); *me = *ms + d->lit_len;
        return 1;
    }
    int rc = pcre2_match(d->re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, p->md, tok_regex_context());
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    if (rc < 0) return vlm_error_set(p->err, VLM_E_LIMIT, "pre-tokenizer regex failed (%d)", rc);
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(p->md);
    *ms = ov[0]; *me = ov[1];
    return 1;
}

static int split_span(struct pt *p, const struct tok_pre *d, const struct span *sp,
                      enum tok_split_behavior bh, int invert, struct cuts *c) {
    const char *s = span_ptr(p, sp);
    size_t n = sp->len, pos = 0, prev = 0, ms = 0, me = 0;
    int rc;
    c->n = 0;
    while (pos <= n && (rc = find(p, d, s, n, pos, &ms, &me)) == 1) {
        if (prev != ms && cuts_push(c, (uint32_t)prev, (uint32_t)ms, invert)) return VLM_E_NOMEM;
        if (cuts_push(c, (uint32_t)ms, (uint32_t)me, !invert)) return VLM_E_NOMEM;
        prev = me;
        if (me > ms) pos = me;
        else {                       /* an empty match: step over one character */
            pos = me + 1;
            while (pos < n && ((uint8_t)s[pos] & 0xC0) == 0x80) pos++;
        }
    }
    if (rc < 0) return rc;
    if (prev != n && cuts_push(c, (uint32_t)prev, (uint32_t)n, invert)) return VLM_E_NOMEM;
    return fold(p, sp, c->v, c->n, bh);
}

/* Replaces span sp by prefix + (its text with every `from` byte string replaced by `to`). */
static int rewrite(struct pt *p, const struct span *sp, const char *prefix, size_t plen,
                   const char *from, size_t flen, const char *to, size_t tlen, struct span *out) {
    char *copy = NULL;
    const char *s = span_ptr(p, sp);
    size_t n = sp->len, off = p->arena.len, i = 0;
    if (sp->arena && !(s = copy = vlm_memdup(s, n ? n : 1))) return VLM_E_NOMEM;
    int rc = vlm_buf_append(&p->arena, prefix, plen);
    while (rc == VLM_OK && i < n) {
        const char *hit = flen ? memmem(s + i, n - i, from, flen) : NULL;
        size_t stop = hit ? (size_t)(hit - s) : n;
        rc = vlm_buf_append(&p->arena, s + i, stop - i);
        if (rc == VLM_OK && hit) rc = vlm_buf_append(&p->arena, to, tlen);
        i = hit ? stop + flen : n;
    }
    vlm_free(copy);
    if (rc == VLM_OK && p->arena.len > UINT32_MAX) rc = VLM_E_TOO_LARGE;
    *out = (struct span){(uint32_t)off, (uint32_t)(p->arena.len - off), 1};
    return rc;
}

static int run_step(struct pt *p, const struct tok_pre *d, int first, struct cuts *c) {
    p->next.n = 0;
    for (size_t i = 0; i < p->cur.n; i++) {
        struct span sp = p->cur.v[i];
        int rc = VLM_OK;
        switch (d->type) {
        case PRE_SPLIT:
            rc = split_span(p, d, &sp, d->behavior, d->invert, c);
            break;
        case PRE_DIGITS:
            rc = split_span(p, d, &sp, d->individual ? SPLIT_ISOLATED : SPLIT_CONTIGUOUS, 0, c);
            break;
        case PRE_BYTELEVEL:
            if (d->add_prefix_space && (sp.len == 0 || span_ptr(p, &sp)[0] != ' '))
                rc = rewrite(p, &sp, " ", 1, NULL, 0, NULL, 0, &sp);
            if (rc == VLM_OK) rc = d->use_regex ? split_span(p, d, &sp, SPLIT_ISOLATED, 0, c)
                                                : spans_push(&p->next, sp.off, sp.len, sp.arena);
            break;
        case PRE_METASPACE: {
            int pre = d->prepend == PREPEND_ALWAYS || (d->prepend == PREPEND_FIRST && first && i == 0);
            struct span w;
            rc = rewrite(p, &sp, d->repl, 0, " ", 1, d->repl, d->repl_len, &w);
            if (rc == VLM_OK && pre && (w.len < d->repl_len || memcmp(span_ptr(p, &w), d->repl, d->repl_len)))
                rc = rewrite(p, &sp, d->repl, d->repl_len, " ", 1, d->repl, d->repl_len, &w);
            if (rc == VLM_OK && d->split) {
                struct tok_pre lit = {.lit = (char *)d->repl, .lit_len = d->repl_len};
                rc = split_span(p, &lit, &w, SPLIT_MERGED_NEXT, 0, c);
            } else if (rc == VLM_OK) {
                rc = spans_push(&p->next, w.off, w.len, w.arena);
            }
            break;
        }
        default:
            rc = VLM_E_INTERNAL;
        }
        if (rc) return rc;
    }
    struct spans tmp = p->cur; p->cur = p->next; p->next = tmp;
    return VLM_OK;
}

int tok_pretok_encode(const struct vlm_tokenizer *t, const char *s, size_t n, int first,
                      struct tok_ids *out, struct vlm_error *err) {
    if (n == 0) return VLM_OK;
    if (n > UINT32_MAX) return vlm_error_set(err, VLM_E_TOO_LARGE, "text piece too long");
    struct pt p = {.base = s, .err = err};
    struct cuts c = {0};
    int rc = VLM_OK;
    p.md = pcre2_match_data_create(1, NULL);
    if (!p.md || spans_push(&p.cur, 0, (uint32_t)n, 0)) rc = VLM_E_NOMEM;
    for (size_t i = 0; rc == VLM_OK && i < t->n_pres; i++) rc = run_step(&p, &t->pres[i], first, &c);
    for (size_t i = 0; rc == VLM_OK && i < p.cur.n; i++)
        rc = tok_bpe_word(t, (const uint8_t *)span_ptr(&p, &p.cur.v[i]), p.cur.v[i].len, out, err);
    if (rc == VLM_E_NOMEM) vlm_error_set(err, rc, "out of memory");
    else if (rc == VLM_E_TOO_LARGE) vlm_error_set(err, rc, "text piece too long");
    else if (rc == VLM_E_INTERNAL) vlm_error_set(err, rc, "unknown pre-tokenizer step");
    pcre2_match_data_free(p.md);
    vlm_free(c.v); vlm_free(p.cur.v); vlm_free(p.next.v);
    vlm_buf_free(&p.arena);
    return rc;
}
