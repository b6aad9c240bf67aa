/* jinja_lex.c — template source to tokens, with Jinja's whitespace rules as transformers
 * configures them (trim_blocks, lstrip_blocks, `-`/`+` markers, raw blocks, comments,
 * newline normalisation and the dropped final newline). */
#include "text/jinja.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lexer {
    const char *s;
    size_t n, pos;
    size_t lc_pos, lc_line_start; /* incremental line/column tracking */
    int lc_line;
    struct jarena *a;
    struct jtoks *out;
    struct vlm_error *err;
};

static void linecol(struct lexer *lx, size_t pos, int *line, int *col) {
    if (pos < lx->lc_pos) { lx->lc_pos = 0; lx->lc_line = 1; lx->lc_line_start = 0; }
    for (; lx->lc_pos < pos && lx->lc_pos < lx->n; lx->lc_pos++)
        if (lx->s[lx->lc_pos] == '\n') { lx->lc_line++; lx->lc_line_start = lx->lc_pos + 1; }
    *line = lx->lc_line;
    *col = (int)(pos - lx->lc_line_start) + 1;
}

static int lex_error(struct lexer *lx, size_t pos, const char *msg) {
    int line, col;
    linecol(lx, pos, &line, &col);
    return vlm_error_set(lx->err, VLM_E_FORMAT, "template syntax error at line %d, column %d: %s",
                         line, col, msg);
}

static int push(struct lexer *lx, int type, size_t pos, const char *s, size_t len) {
    struct jtoks *t = lx->out;
    if (t->n == t->cap) {
        int nc = t->cap ? t->cap * 2 : 256;
        struct jtok *nv = vlm_realloc(t->v, (size_t)nc * sizeof *nv);
        if (!nv) return vlm_error_set(lx->err, VLM_E_NOMEM, "template: out of memory");
        t->v = nv;
        t->cap = nc;
    }
    struct jtok *k = &t->v[t->n++];
    memset(k, 0, sizeof *k);
    k->type = type;
    k->s = s;
    k->len = len;
    linecol(lx, pos, &k->line, &k->col);
    return VLM_OK;
}

/* Python's str.isspace on the code point starting at s[i]; *w gets its byte length. */
static int space_at(const char *s, size_t n, size_t i, size_t *w) {
    int cp = u8_decode(s + i, n - i, w);
    return py_isspace((uint32_t)cp);
}

/* Length of text[0..n) after Python's rstrip(). */
static size_t rstrip_len(const char *s, size_t n) {
    size_t end = n;
    while (end > 0) {
        size_t st = end - 1;
        while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
        size_t w;
        if (!space_at(s, end, st, &w) || st + w != end) break;
        end = st;
    }
    return end;
}

static size_t skip_space(const char *s, size_t n, size_t i) {
    size_t w;
    while (i < n && space_at(s, n, i, &w)) i += w;
    return i;
}

/* Emits text with Jinja's OptionalLStrip applied for a tag with strip sign `sign`. */
static int emit_data(struct lexer *lx, size_t start, size_t end, char sign, int is_var,
                     int line_starting) {
    size_t n = end - start;
    const char *t = lx->s + start;
    if (sign == '-') {
        n = rstrip_len(t, n);
    } else if (sign != '+' && !is_var) {
        size_t l = n;
        while (l > 0 && t[l - 1] != '\n') l--;
        if (l > 0 || line_starting) {
            size_t k = l;
            int all = k < n;
            while (k < n) {
                size_t w;
                if (!space_at(t, n, k, &w)) { all = 0; break; }
                k += w;
            }
            if (all) n = l;
        }
    }
    if (n == 0) return VLM_OK;
    char *d = ja_strndup(lx->a, t, n);
    if (!d) return vlm_error_set(lx->err, VLM_E_NOMEM, "template: out of memory");
    return push(lx, T_DATA, start, d, n);
}

/* Matches an end marker `c}` ("%}", "#}") at i: returns the position after it (with the
 * trim rules applied) or 0 if none. `+c}`, `-c}` + spaces, `c}` + one optional newline. */
static size_t match_end(struct lexer *lx, size_t i, char c, int trim_newline) {
    const char *s = lx->s;
    size_t n = lx->n;
    if (i + 2 < n && s[i] == '+' && s[i + 1] == c && s[i + 2] == '}') return i + 3;
    if (i + 2 < n && s[i] == '-' && s[i + 1] == c && s[i + 2] == '}') return skip_space(s, n, i + 3);
    if (i + 1 < n && s[i] == c && s[i + 1] == '}') {
        size_t e = i + 2;
        if (trim_newline && e < n && s[e] == '\n') e++;
        return e;
    }
    return 0;
}

static int is_word(const char *s, size_t n, size_t i, const char *w) {
    size_t k = strlen(w);
    if (i + k > n || memcmp(s + i, w, k) != 0) return 0;
    return 1;
}

/* `{%(-|+|)\s*raw\s*(-%}\s*|%})` at i: returns the end or 0. */
static size_t match_raw_begin(struct lexer *lx, size_t i, const char *word, int endraw_rules) {
    const char *s = lx->s;
    size_t n = lx->n, p = i + 2;
    if (p < n && (s[p] == '-' || s[p] == '+')) p++;
    p = skip_space(s, n, p);
    if (!is_word(s, n, p, word)) return 0;
    p = skip_space(s, n, p + strlen(word));
    if (endraw_rules) return match_end(lx, p, '%', 1);
    if (p + 2 < n && s[p] == '-' && s[p + 1] == '%' && s[p + 2] == '}') return skip_space(s, n, p + 3);
    if (p + 1 < n && s[p] == '%' && s[p + 1] == '}') return p + 2;
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decodes a Python string literal body (unicode-escape rules) into the arena. */
static int lex_string(struct lexer *lx, size_t start) {
    const char *s = lx->s;
    char q = s[start];
    size_t i = start + 1, n = lx->n;
    struct vlm_buf b = {0};
    int rc = VLM_OK;
    while (i < n && s[i] != q) {
        char c = s[i];
        if (c != '\\') { rc = vlm_buf_putc(&b, c); i++; if (rc) break; continue; }
        if (i + 1 >= n) break;
        char e = s[i + 1];
        i += 2;
        char tmp[8];
        uint32_t cp = 0;
        int hex = 0;
        switch (e) {
        case 'n': rc = vlm_buf_putc(&b, '\n'); break;
        case 't': rc = vlm_buf_putc(&b, '\t'); break;
        case 'r': rc = vlm_buf_putc(&b, '\r'); break;
        case 'a': rc = vlm_buf_putc(&b, '\a'); break;
        case 'b': rc = vlm_buf_putc(&b, '\b'); break;
        case 'f': rc = vlm_buf_putc(&b, '\f'); break;
        case 'v': rc = vlm_buf_putc(&b, '\v'); break;
        case '\\': case '\'': case '"': rc = vlm_buf_putc(&b, e); break;
        case '\n': break;
        case 'x': hex = 2; break;
        case 'u': hex = 4; break;
        case 'U': hex = 8; break;
        default:
            if (e >= '0' && e <= '7') {
                cp = (uint32_t)(e - '0');
                for (int k = 0; k < 2 && i < n && s[i] >= '0' && s[i] <= '7'; k++, i++)
                    cp = cp * 8 + (uint32_t)(s[i] - '0');
                rc = vlm_buf_append(&b, tmp, u8_encode(cp, tmp));
            } else {
                rc = vlm_buf_putc(&b, '\\');
                if (!rc) rc = vlm_buf_putc(&b, e);
            }
        }
        if (hex) {
            for (int k = 0; k < hex; k++, i++) {
                int h = i < n && s[i] != q ? hexval(s[i]) : -1;
                if (h < 0) { vlm_buf_free(&b); return lex_error(lx, i, "truncated \\x/\\u escape in string"); }
                cp = cp * 16 + (uint32_t)h;
            }
            if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
                vlm_buf_free(&b);
                return lex_error(lx, i, "invalid code point in string escape");
            }
            rc = vlm_buf_append(&b, tmp, u8_encode(cp, tmp));
        }
        if (rc) break;
    }
    if (rc) { vlm_buf_free(&b); return vlm_error_set(lx->err, VLM_E_NOMEM, "template: out of memory"); }
    if (i >= n) { vlm_buf_free(&b); return lex_error(lx, start, "unterminated string"); }
    char *d = ja_strndup(lx->a, b.data ? b.data : "", b.len);
    size_t len = b.len;
    vlm_buf_free(&b);
    if (!d) return vlm_error_set(lx->err, VLM_E_NOMEM, "template: out of memory");
    rc = push(lx, T_STRING, start, d, len);
    lx->pos = i + 1;
    return rc;
}

static int isdig(char c) { return c >= '0' && c <= '9'; }

/* Digits with single underscores between them; returns the end. */
static size_t digits(const char *s, size_t n, size_t i) {
    if (i >= n || !isdig(s[i])) return i;
    while (i < n && (isdig(s[i]) || (s[i] == '_' && i + 1 < n && isdig(s[i + 1])))) i++;
    return i;
}

static int lex_number(struct lexer *lx) {
    const char *s = lx->s;
    size_t n = lx->n, st = lx->pos;
    if (s[st] == '0' && st + 2 < n && strchr("bBoOxX", s[st + 1]) && s[st + 1]) {   /* 0b101, 0o17, 0x1F */
        int base = (s[st + 1] | 32) == 'b' ? 2 : (s[st + 1] | 32) == 'o' ? 8 : 16;
        int64_t v = 0;
        size_t i = st + 2, digits_seen = 0;
        for (; i < n; i++) {
            if (s[i] == '_') continue;
            int d = hexval(s[i]);
            if (d < 0 || d >= base) break;
            if (v > (INT64_MAX - d) / base) return lex_error(lx, st, "integer literal out of range");
            v = v * base + d;
            digits_seen++;
        }
        if (!digits_seen) return lex_error(lx, st, "invalid integer literal");
        int rc = push(lx, T_INT, st, NULL, 0);
        if (!rc) lx->out->v[lx->out->n - 1].i = v;
        lx->pos = i;
        return rc;
    }
    size_t e = digits(s, n, st), fe = 0;
    int prev_dot = st > 0 && s[st - 1] == '.';
    if (!prev_dot) {
        size_t p = e;
        if (p < n && s[p] == '.' && p + 1 < n && isdig(s[p + 1])) p = digits(s, n, p + 1);
        if (p < n && (s[p] == 'e' || s[p] == 'E')) {
            size_t q = p + 1;
            if (q < n && (s[q] == '+' || s[q] == '-')) q++;
            if (q < n && isdig(s[q])) p = digits(s, n, q);
        }
        if (p > e) fe = p;
    }
    char buf[128];
    size_t k = 0;
    size_t end = fe ? fe : e;
    for (size_t i = st; i < end && k + 1 < sizeof buf; i++)
        if (s[i] != '_') buf[k++] = s[i];
    buf[k] = 0;
    if (end - st >= sizeof buf - 1) return lex_error(lx, st, "number literal too long");
    int rc = push(lx, fe ? T_FLOAT : T_INT, st, NULL, 0);
    if (rc) return rc;
    struct jtok *t = &lx->out->v[lx->out->n - 1];
    if (fe) {
        t->f = strtod(buf, NULL);
    } else {
        errno = 0;
        if (k > 1 && buf[0] == '0') return lex_error(lx, st, "leading zeros in integer literal");
        t->i = strtoll(buf, NULL, 10);
        if (errno) return lex_error(lx, st, "integer literal out of range");
    }
    lx->pos = end;
    return VLM_OK;
}

static const char *const ops2[] = {"//", "**", "==", "!=", ">=", "<=", NULL};
static const char ops1[] = "+-/*%~[](){}><=.:|,;";

/* Inside {{ }} or {% %}: tokens until the closing marker. Returns VLM_OK with lx->pos after
 * the end marker, and *nl true if what it consumed ends with a newline. */
static int lex_tag(struct lexer *lx, int is_var, int *nl) {
    const char *s = lx->s;
    size_t n = lx->n;
    char stack[256];
    int sp = 0;
    for (;;) {
        size_t i = lx->pos;
        if (i >= n) return lex_error(lx, i, is_var ? "unexpected end of template, expected '}}'"
                                                   : "unexpected end of template, expected '%}'");
        if (sp == 0) {
            size_t e = 0;
            if (is_var) {
                if (i + 2 < n && s[i] == '-' && s[i + 1] == '}' && s[i + 2] == '}') e = skip_space(s, n, i + 3);
                else if (i + 1 < n && s[i] == '}' && s[i + 1] == '}') e = i + 2;
            } else {
                e = match_end(lx, i, '%', 1);
            }
            if (e) {
                int rc = push(lx, is_var ? T_VAR_END : T_BLOCK_END, i, NULL, 0);
                lx->pos = e;
                *nl = s[e - 1] == '\n';
                return rc;
            }
        }
        size_t w;
        if (space_at(s, n, i, &w)) { lx->pos = i + w; continue; }
        char c = s[i];
        int rc;
        if (isdig(c)) {
            rc = lex_number(lx);
        } else if (c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
            size_t e = i;
            while (e < n && (s[e] == '_' || isdig(s[e]) || (s[e] >= 'a' && s[e] <= 'z') || (s[e] >= 'A' && s[e] <= 'Z'))) e++;
            rc = push(lx, T_NAME, i, s + i, e - i);
            lx->pos = e;
        } else if (c == '\'' || c == '"') {
            rc = lex_string(lx, i);
        } else {
            size_t len = 0;
            for (int k = 0; ops2[k]; k++)
                if (i + 1 < n && s[i] == ops2[k][0] && s[i + 1] == ops2[k][1]) { len = 2; break; }
            if (!len && strchr(ops1, c) && c) len = 1;
            if (!len) {
                char m[48];
                snprintf(m, sizeof m, "unexpected char '%c'", (c >= 32 && c < 127) ? c : '?');
                return lex_error(lx, i, m);
            }
            if (len == 1 && (c == '(' || c == '[' || c == '{')) {
                if (sp >= (int)sizeof stack) return lex_error(lx, i, "brackets nested too deeply");
                stack[sp++] = c == '(' ? ')' : c == '[' ? ']' : '}';
            } else if (len == 1 && (c == ')' || c == ']' || c == '}')) {
                char m[64];
                if (!sp) { snprintf(m, sizeof m, "unexpected '%c'", c); return lex_error(lx, i, m); }
                if (stack[--sp] != c) {
                    snprintf(m, sizeof m, "unexpected '%c', expected '%c'", c, stack[sp]);
                    return lex_error(lx, i, m);
                }
            }
            rc = push(lx, T_OP, i, s + i, len);
            lx->pos = i + len;
        }
        if (rc) return rc;
    }
}

/* Finds the first `{{`, `{%` or `{#` at or after i; n if none. */
static size_t find_tag(const char *s, size_t n, size_t i) {
    for (;;) {
        const char *p = i < n ? memchr(s + i, '{', n - i) : NULL;
        if (!p) return n;
        size_t k = (size_t)(p - s);
        if (k + 1 < n && (s[k + 1] == '{' || s[k + 1] == '%' || s[k + 1] == '#')) return k;
        i = k + 1;
    }
}

static int lex_root(struct lexer *lx) {
    const char *s = lx->s;
    size_t n = lx->n;
    int line_starting = 1, rc;
    while (lx->pos < n) {
        size_t q = find_tag(s, n, lx->pos);
        if (q >= n) return emit_data(lx, lx->pos, n, 0, 1, 0);
        char kind = s[q + 1];
        char sign = (q + 2 < n && (s[q + 2] == '-' || s[q + 2] == '+')) ? s[q + 2] : 0;
        size_t raw_end = kind == '%' ? match_raw_begin(lx, q, "raw", 0) : 0;
        if ((rc = emit_data(lx, lx->pos, q, sign, kind == '{', line_starting))) return rc;
        if (raw_end) {
            size_t k = raw_end, e = 0;
            for (; k < n; k++)
                if (s[k] == '{' && k + 1 < n && s[k + 1] == '%' && (e = match_raw_begin(lx, k, "endraw", 1))) break;
            if (k >= n) return lex_error(lx, q, "missing end of raw directive");
            char rsign = (k + 2 < n && (s[k + 2] == '-' || s[k + 2] == '+')) ? s[k + 2] : 0;
            if ((rc = emit_data(lx, raw_end, k, rsign, 0, s[raw_end - 1] == '\n'))) return rc;
            lx->pos = e;
            line_starting = s[e - 1] == '\n';
            continue;
        }
        size_t body = q + 2 + (sign ? 1 : 0);
        if (kind == '#') {
            size_t k = body, e = 0;
            for (; k < n; k++)
                if ((s[k] == '+' || s[k] == '-' || s[k] == '#') && (e = match_end(lx, k, '#', 1))) break;
            if (k >= n) return lex_error(lx, q, "missing end of comment tag");
            lx->pos = e;
            line_starting = s[e - 1] == '\n';
            continue;
        }
        if ((rc = push(lx, kind == '{' ? T_VAR_BEGIN : T_BLOCK_BEGIN, q, NULL, 0))) return rc;
        lx->pos = body;
        int nl = 0;
        if ((rc = lex_tag(lx, kind == '{', &nl))) return rc;
        line_starting = nl;
    }
    return VLM_OK;
}

int jinja_lex(const char *src, size_t len, struct jarena *a, struct jtoks *out, struct vlm_error *err) {
    /* newline normalisation (\r\n, \r -> \n) and one trailing newline dropped */
    char *s = len + 1 > len ? ja_alloc(a, len + 1) : NULL;  /* names and ops point into it */
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "template: out of memory");
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') { s[n++] = '\n'; if (i + 1 < len && src[i + 1] == '\n') i++; }
        else s[n++] = src[i];
    }
    if (n > 0 && s[n - 1] == '\n') n--;
    s[n] = 0;
    struct lexer lx = {.s = s, .n = n, .lc_line = 1, .a = a, .out = out, .err = err};
    int rc = lex_root(&lx);
    if (!rc) rc = push(&lx, T_EOF, n, NULL, 0);
    return rc;
}
