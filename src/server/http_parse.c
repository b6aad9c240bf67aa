/* http_parse.c — the request-head and chunked-body parsers of http_parse.h: byte-level, with a
 * cap on every length and the strict choices that keep a proxy in front from reading a request
 * differently (RFC 9112 sections 2-7). */
#include "server/http_parse.h"

#include <string.h>
#include <strings.h>

static int is_tchar(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int fail(const char **msg, const char *why, int status) {
    if (msg) *msg = why;
    return status;
}

/* Copies [v, v+n) into dst (size cap) as a C string; -1 when it does not fit. */
static int copy_val(char *dst, size_t cap, const char *v, size_t n) {
    if (n >= cap) return -1;
    memcpy(dst, v, n);
    dst[n] = 0;
    return 0;
}

static int token_eq(const char *a, size_t n, const char *lit) {
    return strlen(lit) == n && strncasecmp(a, lit, n) == 0;
}

/* The end of the head: offset just past the blank line, or 0 when not there yet. */
static size_t head_end(const char *b, size_t len) {
    for (size_t i = 0; i + 1 < len; i++) {
        if (b[i] != '\n') continue;
        if (b[i + 1] == '\n') return i + 2;
        if (b[i + 1] == '\r' && i + 2 < len && b[i + 2] == '\n') return i + 3;
    }
    return 0;
}

/* One line [s, e) without its line ending. */
static size_t line_len(const char *s, const char *e) {
    const char *nl = memchr(s, '\n', (size_t)(e - s));
    size_t n = nl ? (size_t)(nl - s) : (size_t)(e - s);
    return n && s[n - 1] == '\r' ? n - 1 : n;
}

static int parse_request_line(const char *s, size_t n, struct vlm_http_head *h, const char **msg) {
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)s[i])) i++;
    if (i == 0 || i >= sizeof h->method || i >= n || s[i] != ' ') return fail(msg, "malformed request line", -400);
    memcpy(h->method, s, i);
    h->method[i] = 0;
    size_t t0 = ++i;
    while (i < n && (unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f) i++;
    if (i == t0 || i >= n || s[i] != ' ') return fail(msg, "malformed request target", -400);
    const char *t = s + t0;
    size_t tn = i - t0;
    if (tn > 7 && !strncasecmp(t, "http://", 7)) {        /* absolute-form: keep the path */
        const char *p = memchr(t + 7, '/', tn - 7);
        if (!p) { t = "/"; tn = 1; }
        else { tn -= (size_t)(p - t); t = p; }
    }
    if (t[0] != '/' && !(tn == 1 && t[0] == '*')) return fail(msg, "malformed request target", -400);
    if (copy_val(h->target, sizeof h->target, t, tn)) return fail(msg, "request target too long", -414);
    const char *v = s + i + 1;
    size_t vn = n - i - 1;
    if (vn == 8 && !memcmp(v, "HTTP/1.", 7) && (v[7] == '0' || v[7] == '1')) h->minor = v[7] - '0';
    else if (vn >= 5 && !memcmp(v, "HTTP/", 5)) return fail(msg, "HTTP version not supported", -505);
    else return fail(msg, "malformed request line", -400);
    return 0;
}

/* Content-Length: digits only; a repeated header must repeat the same value. */
static int parse_length(const char *v, size_t n, struct vlm_http_head *h, const char **msg) {
    long long x = 0;
    if (n == 0 || n > 18) return fail(msg, "bad Content-Length", -400);
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return fail(msg, "bad Content-Length", -400);
        x = x * 10 + (v[i] - '0');
    }
    if (h->content_length >= 0 && h->content_length != x) return fail(msg, "conflicting Content-Length", -400);
    h->content_length = x;
    return 0;
}

/* Transfer-Encoding: exactly "chunked"; any other coding is not implemented. */
static int parse_te(const char *v, size_t n, struct vlm_http_head *h, const char **msg) {
    if (h->chunked) return fail(msg, "repeated Transfer-Encoding", -400);
    if (!token_eq(v, n, "chunked")) return fail(msg, "only the chunked transfer coding is supported", -501);
    h->chunked = 1;
    return 0;
}

static void parse_connection(const char *v, size_t n, int *close_seen, int *keep_seen) {
    size_t i = 0;
    while (i < n) {
        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) i++;
        size_t s = i;
        while (i < n && v[i] != ',' && v[i] != ' ' && v[i] != '\t') i++;
        if (token_eq(v + s, i - s, "close")) *close_seen = 1;
        if (token_eq(v + s, i - s, "keep-alive")) *keep_seen = 1;
    }
}

/* One header line [s, s+n). */
static int parse_header(const char *s, size_t n, struct vlm_http_head *h, int *hosts, int *close_seen,
                        int *keep_seen, const char **msg) {
    if (s[0] == ' ' || s[0] == '\t') return fail(msg, "obsolete header line folding", -400);
    size_t k = 0;
    while (k < n && is_tchar((unsigned char)s[k])) k++;
    if (k == 0 || k >= n || s[k] != ':') return fail(msg, "malformed header", -400);
    const char *v = s + k + 1, *e = s + n;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    for (const char *p = v; p < e; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) return fail(msg, "control character in a header", -400);
    size_t vn = (size_t)(e - v);
    int bad = 0;
    if (token_eq(s, k, "Content-Length")) return parse_length(v, vn, h, msg);
    if (token_eq(s, k, "Transfer-Encoding")) return parse_te(v, vn, h, msg);
    if (token_eq(s, k, "Host")) { if (++*hosts > 1) return fail(msg, "repeated Host", -400); }
    else if (token_eq(s, k, "Connection")) parse_connection(v, vn, close_seen, keep_seen);
    else if (token_eq(s, k, "Expect")) h->expect_continue = token_eq(v, vn, "100-continue");
    else if (token_eq(s, k, "Authorization")) bad = copy_val(h->authorization, sizeof h->authorization, v, vn);
    else if (token_eq(s, k, "Origin")) bad = copy_val(h->origin, sizeof h->origin, v, vn);
    else if (token_eq(s, k, "Access-Control-Request-Method")) bad = copy_val(h->acr_method, sizeof h->acr_method, v, vn);
    else if (token_eq(s, k, "Access-Control-Request-Headers")) bad = copy_val(h->acr_headers, sizeof h->acr_headers, v, vn);
    return bad ? fail(msg, "header too large", -431) : 0;
}

int vlm_http_parse_head(const char *buf, size_t len, struct vlm_http_head *h, const char **msg) {
    memset(h, 0, sizeof *h);
    h->content_length = -1;
    if (msg) *msg = "";
    const char *s = buf, *end = buf + len;
    for (int i = 0; i < 4 && s < end && (*s == '\r' || *s == '\n'); i++) s++;   /* stray empty lines */
    size_t he = head_end(s, (size_t)(end - s));
    if (!he) {
        /* a request line or header that cannot be valid needs no more bytes to be refused */
        for (const char *p = s; p < end && *p != '\n'; p++)
            if ((unsigned char)*p < 0x20 && *p != '\r' && *p != '\t') return fail(msg, "malformed request line", -400);
        return len > VLM_HTTP_MAX_HEAD ? fail(msg, "request head too large", -431) : 0;
    }
    if ((size_t)(s - buf) + he > VLM_HTTP_MAX_HEAD) return fail(msg, "request head too large", -431);
    const char *he_ptr = s + he;
    size_t n = line_len(s, he_ptr);
    int rc = parse_request_line(s, n, h, msg);
    if (rc) return rc;
    int hosts = 0, close_seen = 0, keep_seen = 0, count = 0;
    s = memchr(s, '\n', (size_t)(he_ptr - s)) + 1;
    while (s < he_ptr) {
        n = line_len(s, he_ptr);
        if (n == 0) break;                      /* the blank line */
        if (++count > VLM_HTTP_MAX_HEADERS) return fail(msg, "too many headers", -431);
        if ((rc = parse_header(s, n, h, &hosts, &close_seen, &keep_seen, msg))) return rc;
        s = memchr(s, '\n', (size_t)(he_ptr - s)) + 1;
    }
    if (h->chunked && h->content_length >= 0) return fail(msg, "both Content-Length and Transfer-Encoding", -400);
    if (h->chunked && h->minor == 0) return fail(msg, "Transfer-Encoding in an HTTP/1.0 request", -400);
    if (h->minor == 1 && hosts == 0) return fail(msg, "missing Host header", -400);
    h->keep_alive = h->minor == 1 ? !close_seen : (keep_seen && !close_seen);
    return (int)((size_t)(he_ptr - buf));
}

/* ---- chunked bodies ---- */

enum { CH_SIZE, CH_EXT, CH_SIZE_LF, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_TRAILER_LF, CH_DONE };
#define CH_MAX_LINE 4096

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int vlm_http_chunked_feed(struct vlm_http_chunked *c, const char *in, size_t n, size_t *used,
                          int (*sink)(void *ctx, const char *data, size_t len), void *ctx) {
    size_t i = 0;
    int rc = 0;
    while (i < n && c->state != CH_DONE) {
        char ch = in[i];
        switch (c->state) {
        case CH_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (++c->digits > 15) { rc = -400; goto out; }   /* < 2^60: no overflow */
                c->left = c->left * 16 + (uint64_t)v;
            } else if (c->digits && (ch == ';' || ch == ' ' || ch == '\t')) c->state = CH_EXT;
            else if (c->digits && ch == '\r') c->state = CH_SIZE_LF;
            else if (c->digits && ch == '\n') c->state = c->left ? CH_DATA : CH_TRAILER;
            else { rc = -400; goto out; }
            i++;
            break;
        }
        case CH_EXT:                                 /* chunk extensions are skipped */
            if (++c->line > CH_MAX_LINE || (ch != '\t' && ch != '\r' && ch != '\n' && (unsigned char)ch < 0x20)) {
                rc = -400;
                goto out;
            }
            if (ch == '\r') c->state = CH_SIZE_LF;
            else if (ch == '\n') c->state = c->left ? CH_DATA : CH_TRAILER;
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n') { rc = -400; goto out; }
            c->state = c->left ? CH_DATA : CH_TRAILER;
            c->line = 0;
            i++;
            break;
        case CH_DATA: {
            size_t take = n - i;
            if ((uint64_t)take > c->left) take = (size_t)c->left;
            if (sink(ctx, in + i, take)) { rc = -413; goto out; }
            c->left -= take;
            i += take;
            if (!c->left) c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (ch == '\r') c->state = CH_DATA_LF;
            else if (ch == '\n') { c->state = CH_SIZE; c->digits = 0; }
            else { rc = -400; goto out; }
            i++;
            break;
        case CH_DATA_LF:
            if (ch != '\n') { rc = -400; goto out; }
            c->state = CH_SIZE;
            c->digits = 0;
            c->line = 0;
            i++;
            break;
        case CH_TRAILER:                             /* trailer fields are skipped; a blank line ends */
            if (ch == '\r') { if (c->line == 0) c->state = CH_TRAILER_LF; i++; break; }
            if (ch == '\n') { if (c->line == 0) c->state = CH_DONE; c->line = 0; i++; break; }
            if (++c->line > CH_MAX_LINE) { rc = -400; goto out; }
            i++;
            break;
        case CH_TRAILER_LF:
            if (ch != '\n') { rc = -400; goto out; }
            c->state = CH_DONE;
            i++;
            break;
        }
    }
out:
    *used = i;
    if (rc) return rc;
    return c->state == CH_DONE ? 1 : 0;
}
