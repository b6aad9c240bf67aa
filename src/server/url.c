/* url.c — strict absolute-URL parsing (http, https, file) and the public-address policy.
 * Anything two URL parsers might read differently is refused rather than interpreted. */
#include "server/url.h"

#include "util/alloc.h"
#include "util/error.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

static int is_alpha(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static int is_digit(int c) { return c >= '0' && c <= '9'; }
static int lower(int c) { return (c >= 'A' && c <= 'Z') ? c + 32 : c; }

void vlm_url_free(struct vlm_url *u) {
    if (!u) return;
    vlm_free(u->host);
    vlm_free(u->path);
    u->host = u->path = NULL;
}

/* 1 if the label looks numeric to a WHATWG/inet_aton parser (digits, or 0x hex). */
static int label_numeric(const char *s, size_t n) {
    if (n == 0) return 0;
    if (n >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) return 1;
    for (size_t i = 0; i < n; i++)
        if (!is_digit((unsigned char)s[i])) return 0;
    return 1;
}

/* Checks a host name (already lower case) and detects IPv4 literals: a host whose last label
 * is numeric must be a canonical dotted quad. Returns 4 for IPv4, 0 for a name, -1 invalid. */
static int check_hostname(const char *h, size_t n) {
    if (n == 0 || n > 253) return -1;
    size_t start = 0, labels = 0, last_start = 0, last_len = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || h[i] == '.') {
            size_t len = i - start;
            if (len == 0 && i != n) return -1;      /* empty label ("a..b", ".a") */
            if (len > 63) return -1;
            if (len) { labels++; last_start = start; last_len = len; }
            start = i + 1;
            continue;
        }
        int c = (unsigned char)h[i];
        if (!(is_alpha(c) || is_digit(c) || c == '-')) return -1;
        if (c == '-' && (i == start || i + 1 == n || h[i + 1] == '.')) return -1; /* "-a", "a-" */
    }
    if (!labels) return -1;
    if (!label_numeric(h + last_start, last_len)) return 0;
    /* must be a.b.c.d, each 0..255 in decimal without leading zeros, no trailing dot */
    if (h[n - 1] == '.' || labels != 4) return -1;
    const char *p = h;
    for (int k = 0; k < 4; k++) {
        size_t len = 0;
        unsigned v = 0;
        while (p[len] && p[len] != '.') {
            if (!is_digit((unsigned char)p[len]) || len >= 3) return -1;
            v = v * 10 + (unsigned)(p[len] - '0');
            len++;
        }
        if (len == 0 || v > 255 || (len > 1 && p[0] == '0')) return -1;
        p += len + (k < 3);
    }
    return 4;
}

static int fail(struct vlm_error *err, int code, const char *msg) {
    return vlm_error_set(err, code, "%s", msg);
}

/* Parses "host[:port]" or "[v6][:port]" from the authority a[0..n). */
static int parse_authority(const char *a, size_t n, struct vlm_url *u, struct vlm_error *err) {
    if (memchr(a, '@', n)) return fail(err, VLM_E_FORBIDDEN, "URLs with credentials are not allowed");
    const char *host = a, *port = NULL;
    size_t hlen;
    if (n && a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close) return fail(err, VLM_E_FORMAT, "invalid URL: unterminated IPv6 address");
        host = a + 1;
        hlen = (size_t)(close - host);
        size_t rest = n - (size_t)(close + 1 - a);
        if (rest) {
            if (close[1] != ':') return fail(err, VLM_E_FORMAT, "invalid URL host");
            port = close + 2;
        }
        char tmp[64];
        struct in6_addr a6;
        if (hlen == 0 || hlen >= sizeof tmp || memchr(host, '%', hlen))
            return fail(err, VLM_E_FORMAT, "invalid URL: bad IPv6 address");
        memcpy(tmp, host, hlen);
        tmp[hlen] = 0;
        if (inet_pton(AF_INET6, tmp, &a6) != 1)
            return fail(err, VLM_E_FORMAT, "invalid URL: bad IPv6 address");
        u->ip_family = 6;
    } else {
        const char *colon = memchr(a, ':', n);
        hlen = colon ? (size_t)(colon - a) : n;
        if (colon) port = colon + 1;
    }
    u->host = vlm_strndup(host, hlen);
    if (!u->host) return fail(err, VLM_E_NOMEM, "out of memory");
    for (size_t i = 0; i < hlen; i++) u->host[i] = (char)lower((unsigned char)u->host[i]);
    if (u->ip_family != 6) {
        int kind = check_hostname(u->host, hlen);
        if (kind < 0) return fail(err, VLM_E_FORMAT, "invalid URL host");
        u->ip_family = kind;
    }
    u->port = strcmp(u->scheme, "https") == 0 ? 443 : 80;
    if (port) {
        size_t plen = n - (size_t)(port - a);
        long v = 0;
        if (plen == 0 || plen > 5) return fail(err, VLM_E_FORMAT, "invalid URL port");
        for (size_t i = 0; i < plen; i++) {
            if (!is_digit((unsigned char)port[i])) return fail(err, VLM_E_FORMAT, "invalid URL port");
            v = v * 10 + (port[i] - '0');
        }
        if (v < 1 || v > 65535) return fail(err, VLM_E_FORMAT, "invalid URL port");
        u->port = (int)v;
    }
    return VLM_OK;
}

int vlm_url_parse(const char *s, size_t len, struct vlm_url *u, struct vlm_error *err) {
    memset(u, 0, sizeof *u);
    if (len > VLM_URL_MAX) return fail(err, VLM_E_TOO_LARGE, "URL too long");
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '\\')
            return fail(err, VLM_E_FORMAT, "invalid character in URL");
    }
    size_t i = 0;
    while (i < len && i < sizeof u->scheme && (is_alpha((unsigned char)s[i]) ||
                                               (i && (is_digit((unsigned char)s[i]) || s[i] == '+' ||
                                                      s[i] == '-' || s[i] == '.'))))
        i++;
    if (i == 0 || i >= len || s[i] != ':') return fail(err, VLM_E_FORMAT, "invalid URL: no scheme");
    if (i >= sizeof u->scheme) return fail(err, VLM_E_UNSUPPORTED, "unsupported URL scheme");
    for (size_t k = 0; k < i; k++) u->scheme[k] = (char)lower((unsigned char)s[k]);
    u->scheme[i] = 0;
    int is_file = !strcmp(u->scheme, "file");
    if (!is_file && strcmp(u->scheme, "http") && strcmp(u->scheme, "https"))
        return fail(err, VLM_E_UNSUPPORTED, "unsupported URL scheme");
    i++;
    if (len - i < 2 || s[i] != '/' || s[i + 1] != '/')
        return fail(err, VLM_E_FORMAT, "invalid URL: expected '//' after the scheme");
    i += 2;
    size_t a0 = i;
    while (i < len && s[i] != '/' && s[i] != '?' && s[i] != '#') i++;
    size_t end = len;
    const char *hash = memchr(s + i, '#', len - i);
    if (hash) end = (size_t)(hash - s);
    int rc;
    if (is_file) {
        if (i > a0 && !(i - a0 == 9 && strncasecmp(s + a0, "localhost", 9) == 0))
            return fail(err, VLM_E_FORMAT, "file URLs must not name a host");
        u->host = vlm_strdup("");
        if (!u->host) return fail(err, VLM_E_NOMEM, "out of memory");
    } else if ((rc = parse_authority(s + a0, i - a0, u, err)) != VLM_OK) {
        vlm_url_free(u);
        return rc;
    }
    if (i < end && s[i] == '?') {  /* "http://h?q" -> path "/?q" */
        u->path = vlm_malloc(end - i + 2);
        if (u->path) { u->path[0] = '/'; memcpy(u->path + 1, s + i, end - i); u->path[end - i + 1] = 0; }
    } else {
        u->path = i < end ? vlm_strndup(s + i, end - i) : vlm_strdup("/");
    }
    if (!u->path) { vlm_url_free(u); return fail(err, VLM_E_NOMEM, "out of memory"); }
    return VLM_OK;
}

char *vlm_url_format(const struct vlm_url *u) {
    struct vlm_buf b = {0};
    int rc = u->ip_family == 6
        ? vlm_buf_appendf(&b, "%s://[%s]:%d%s", u->scheme, u->host, u->port, u->path)
        : vlm_buf_appendf(&b, "%s://%s:%d%s", u->scheme, u->host, u->port, u->path);
    if (rc != VLM_OK) { vlm_buf_free(&b); return NULL; }
    return vlm_buf_take(&b);
}

int vlm_url_resolve(const struct vlm_url *base, const char *ref, struct vlm_url *out,
                    struct vlm_error *err) {
    size_t n = strlen(ref);
    size_t i = 0;
    while (i < n && (is_alpha((unsigned char)ref[i]) || (i && (is_digit((unsigned char)ref[i]) ||
           ref[i] == '+' || ref[i] == '-' || ref[i] == '.'))))
        i++;
    if (i > 0 && i < n && ref[i] == ':') return vlm_url_parse(ref, n, out, err);  /* absolute */
    struct vlm_buf b = {0};
    const char *hostfmt = base->ip_family == 6 ? "%s://[%s]:%d" : "%s://%s:%d";
    int rc = vlm_buf_appendf(&b, hostfmt, base->scheme, base->host, base->port);
    if (rc == VLM_OK) {
        if (n >= 2 && ref[0] == '/' && ref[1] == '/') {           /* scheme-relative */
            vlm_buf_free(&b);
            rc = vlm_buf_appendf(&b, "%s:%s", base->scheme, ref);
        } else if (n && ref[0] == '/') {
            rc = vlm_buf_append(&b, ref, n);
        } else {                                                  /* relative to the dir */
            const char *q = strchr(base->path, '?');
            size_t plen = q ? (size_t)(q - base->path) : strlen(base->path);
            while (plen && base->path[plen - 1] != '/') plen--;
            rc = vlm_buf_append(&b, base->path, plen);
            if (rc == VLM_OK) rc = vlm_buf_append(&b, ref, n);
        }
    }
    if (rc != VLM_OK) { vlm_buf_free(&b); return fail(err, VLM_E_NOMEM, "out of memory"); }
    rc = vlm_url_parse(b.data, b.len, out, err);
    vlm_buf_free(&b);
    return rc;
}

static int v4_public(uint32_t a) {
    static const struct { uint32_t net, mask; } deny[] = {
        {0x00000000, 0xff000000}, /* 0/8 "this network" */
        {0x0a000000, 0xff000000}, /* 10/8 */
        {0x64400000, 0xffc00000}, /* 100.64/10 carrier-grade NAT */
        {0x7f000000, 0xff000000}, /* 127/8 loopback */
        {0xa9fe0000, 0xffff0000}, /* 169.254/16 link-local, cloud metadata */
        {0xac100000, 0xfff00000}, /* 172.16/12 */
        {0xc0000000, 0xffffff00}, /* 192.0.0/24 IETF protocol assignments */
        {0xc0000200, 0xffffff00}, /* 192.0.2/24 documentation */
        {0xc0586300, 0xffffff00}, /* 192.88.99/24 6to4 relay */
        {0xc0a80000, 0xffff0000}, /* 192.168/16 */
        {0xc6120000, 0xfffe0000}, /* 198.18/15 benchmarking */
        {0xc6336400, 0xffffff00}, /* 198.51.100/24 documentation */
        {0xcb007100, 0xffffff00}, /* 203.0.113/24 documentation */
        {0xe0000000, 0xf0000000}, /* 224/4 multicast */
        {0xf0000000, 0xf0000000}, /* 240/4 reserved, broadcast */
    };
    for (size_t i = 0; i < sizeof deny / sizeof deny[0]; i++)
        if ((a & deny[i].mask) == deny[i].net) return 0;
    return 1;
}

static int v6_public(const uint8_t *b) {
    static const uint8_t zero[16];
    /* ::/96 covers :: , ::1 and IPv4-compatible addresses */
    if (memcmp(b, zero, 12) == 0) return 0;
    if (memcmp(b, zero, 10) == 0 && b[10] == 0xff && b[11] == 0xff) return 0; /* ::ffff:0:0/96 */
    if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) return 0; /* 64:ff9b::/96, /48 */
    if (b[0] == 0x01 && b[1] == 0x00 && !memcmp(b + 2, zero, 6)) return 0;      /* 100::/64 discard */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00) return 0; /* 2001::/32 Teredo */
    if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8) return 0; /* 2001:db8::/32 */
    if (b[0] == 0x20 && b[1] == 0x02) return 0;                                 /* 2002::/16 6to4 */
    if ((b[0] & 0xfe) == 0xfc) return 0;                                        /* fc00::/7 ULA */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) return 0;                        /* fe80::/10 */
    if (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) return 0;                        /* fec0::/10 */
    if (b[0] == 0xff) return 0;                                                 /* multicast */
    if ((b[0] & 0xe0) != 0x20) return 0;                     /* outside 2000::/3 global unicast */
    return 1;
}

int vlm_addr_is_public(const struct sockaddr *sa) {
    if (!sa) return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        return v4_public(ntohl(s4->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        return v6_public(s6->sin6_addr.s6_addr);
    }
    return 0;
}

int vlm_addr_is_metadata(const struct sockaddr *sa) {
    if (!sa) return 1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        uint32_t a = ntohl(s4->sin_addr.s_addr);
        return (a & 0xffff0000) == 0xa9fe0000 || a == 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        static const uint8_t ec2[16] = {0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54};
        static const uint8_t zero[16];
        const uint8_t *b = s6->sin6_addr.s6_addr;
        if (!memcmp(b, ec2, 16) || !memcmp(b, zero, 16)) return 1;
        /* IPv4-mapped link-local */
        return !memcmp(b, zero, 10) && b[10] == 0xff && b[11] == 0xff && b[12] == 169 && b[13] == 254;
    }
    return 1;
}
