/* headers.c — what the hub says in response headers (X-Repo-Commit, X-Linked-Etag,
 * X-Linked-Size, ETag, Location, Content-Range, X-Error-Code), parsed as untrusted text, and
 * the URL handling the redirects need (join, origin, escaping). */
#include "hub/hub_internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

void hub_head_reset(struct hub_head *h) { memset(h, 0, sizeof *h); }

/* Strict unsigned decimal, at most 20 digits, no overflow. */
static bool parse_u64(const char *s, size_t n, uint64_t *out) {
    if (n == 0 || n > 20) return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

bool hub_etag_normalize(const char *raw, size_t n, char *out, size_t cap) {
    if (n >= 2 && raw[0] == 'W' && raw[1] == '/') raw += 2, n -= 2;
    if (n >= 2 && raw[0] == '"' && raw[n - 1] == '"') raw++, n -= 2;
    if (n == 0 || n > HUB_ETAG_MAX || n >= cap || raw[0] == '.') return false;
    for (size_t i = 0; i < n; i++) {
        char c = raw[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            return false;
    }
    memcpy(out, raw, n);
    out[n] = 0;
    return true;
}

static void copy_text(char *dst, size_t cap, const char *v, size_t n) {
    dst[0] = 0;
    if (n >= cap) return;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x21 || v[i] == 0x7f) return;   /* no spaces or controls in these values */
    memcpy(dst, v, n);
    dst[n] = 0;
}

/* "bytes a-b/t" (t may be '*'); only fully numeric forms are kept. */
static void parse_content_range(struct hub_head *h, const char *v, size_t n) {
    if (n < 6 || strncasecmp(v, "bytes ", 6) != 0) return;
    v += 6, n -= 6;
    const char *dash = memchr(v, '-', n), *slash = memchr(v, '/', n);
    if (!dash || !slash || dash > slash) return;
    uint64_t a, b, t;
    if (!parse_u64(v, (size_t)(dash - v), &a) || !parse_u64(dash + 1, (size_t)(slash - dash - 1), &b) ||
        !parse_u64(slash + 1, (size_t)(v + n - slash - 1), &t) || a > b || b >= t)
        return;
    h->range_start = a, h->range_end = b, h->range_total = t, h->has_range = true;
}

static void parse_status(struct hub_head *h, const char *line, size_t n) {
    hub_head_reset(h);
    const char *sp = memchr(line, ' ', n);
    if (!sp || (size_t)(line + n - sp) < 4) return;
    int code = 0;
    for (int i = 1; i <= 3; i++) {
        if (sp[i] < '0' || sp[i] > '9') return;
        code = code * 10 + (sp[i] - '0');
    }
    h->status = code;
}

void hub_head_line(struct hub_head *h, const char *line, size_t n) {
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) n--;
    if (n >= 5 && !strncmp(line, "HTTP/", 5)) { parse_status(h, line, n); return; }
    const char *colon = memchr(line, ':', n);
    if (!colon) return;
    size_t kn = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vn = n - kn - 1;
    while (vn && (*v == ' ' || *v == '\t')) v++, vn--;
    while (vn && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) vn--;
#define KEY(s) (kn == sizeof(s) - 1 && !strncasecmp(line, s, kn))
    if (KEY("X-Repo-Commit")) {
        char c[HUB_COMMIT_LEN + 1];
        copy_text(c, sizeof c, v, vn);
        memcpy(h->commit, hub_is_commit(c) ? c : "", hub_is_commit(c) ? sizeof c : 1);
    } else if (KEY("ETag")) {
        if (!hub_etag_normalize(v, vn, h->etag, sizeof h->etag)) h->etag[0] = 0;
    } else if (KEY("X-Linked-Etag")) {
        if (!hub_etag_normalize(v, vn, h->linked_etag, sizeof h->linked_etag)) h->linked_etag[0] = 0;
    } else if (KEY("X-Linked-Size")) {
        h->has_linked_size = parse_u64(v, vn, &h->linked_size);
    } else if (KEY("Content-Length")) {
        h->has_content_length = parse_u64(v, vn, &h->content_length);
    } else if (KEY("Location")) {
        copy_text(h->location, sizeof h->location, v, vn);
    } else if (KEY("X-Error-Code")) {
        copy_text(h->error_code, sizeof h->error_code, v, vn);
    } else if (KEY("Content-Range")) {
        parse_content_range(h, v, vn);
    }
#undef KEY
}

/* ---- URLs ---- */

struct origin {
    char scheme[8];
    char host[256];
    unsigned port;
    const char *path;   /* where the path starts in the URL ("" if none) */
};

static bool parse_origin(const char *url, struct origin *o) {
    const char *sep = strstr(url, "://");
    if (!sep || sep - url >= (long)sizeof o->scheme || sep == url) return false;
    size_t sn = (size_t)(sep - url);
    for (size_t i = 0; i < sn; i++) o->scheme[i] = (char)(url[i] | 0x20);
    o->scheme[sn] = 0;
    const char *auth = sep + 3, *end = auth + strcspn(auth, "/?#");
    const char *at = NULL;
    for (const char *p = auth; p < end; p++) if (*p == '@') at = p;
    if (at) auth = at + 1;
    const char *host_end = end, *port = NULL;
    if (*auth == '[') {
        const char *rb = memchr(auth, ']', (size_t)(end - auth));
        if (!rb) return false;
        host_end = rb + 1;
        if (host_end < end && *host_end == ':') port = host_end + 1;
        else if (host_end != end) return false;
    } else {
        const char *c = memchr(auth, ':', (size_t)(end - auth));
        if (c) host_end = c, port = c + 1;
    }
    size_t hn = (size_t)(host_end - auth);
    if (hn == 0 || hn >= sizeof o->host) return false;
    for (size_t i = 0; i < hn; i++) o->host[i] = (char)((auth[i] >= 'A' && auth[i] <= 'Z') ? auth[i] | 0x20 : auth[i]);
    o->host[hn] = 0;
    uint64_t p = 0;
    if (port && port < end) {
        if (!parse_u64(port, (size_t)(end - port), &p) || p == 0 || p > 65535) return false;
    } else {
        p = !strcmp(o->scheme, "https") ? 443 : !strcmp(o->scheme, "http") ? 80 : 0;
    }
    o->port = (unsigned)p;
    o->path = end;
    return true;
}

bool hub_same_origin(const char *a, const char *b) {
    struct origin x, y;
    if (!parse_origin(a, &x) || !parse_origin(b, &y)) return false;
    return !strcmp(x.scheme, y.scheme) && !strcmp(x.host, y.host) && x.port == y.port;
}

bool hub_url_join(const char *base, const char *loc, char *out, size_t cap) {
    int n;
    if (!*loc) return false;
    struct origin o;
    if (strstr(loc, "://") && strcspn(loc, "/?#") > (size_t)(strstr(loc, "://") - loc)) {
        struct origin chk;
        if (!parse_origin(loc, &chk) || (strcmp(chk.scheme, "http") && strcmp(chk.scheme, "https"))) return false;
        n = snprintf(out, cap, "%s", loc);
    } else if (!parse_origin(base, &o)) {
        return false;
    } else if (loc[0] == '/' && loc[1] == '/') {
        n = snprintf(out, cap, "%s:%s", o.scheme, loc);
    } else if (loc[0] == '/') {
        n = snprintf(out, cap, "%.*s%s", (int)(o.path - base), base, loc);
    } else {
        size_t dir = strcspn(o.path, "?#");
        while (dir && o.path[dir - 1] != '/') dir--;
        size_t keep = (size_t)(o.path - base) + dir;
        n = dir ? snprintf(out, cap, "%.*s%s", (int)keep, base, loc)
                : snprintf(out, cap, "%.*s/%s", (int)keep, base, loc);
    }
    return n > 0 && (size_t)n < cap;
}

bool hub_url_escape(const char *s, bool keep_slash, char *out, size_t cap) {
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                     *p == '-' || *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/');
        if (k + (plain ? 1 : 3) >= cap) return false;
        if (plain) out[k++] = (char)*p;
        else out[k++] = '%', out[k++] = hex[*p >> 4], out[k++] = hex[*p & 15];
    }
    if (k >= cap) return false;
    out[k] = 0;
    return true;
}
