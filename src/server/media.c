/* media.c — loads image bytes for a request: data: URLs, file:// under the allowed folder, and
 * http(s):// with libcurl. For web URLs the name is resolved here, every address checked, and
 * curl is pinned to the checked address (CURLOPT_RESOLVE) with a socket callback that refuses
 * any other; redirects are followed by hand so each hop goes through the same checks. */
#include "server/media.h"

#include "server/url.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/error.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void vlm_media_policy_default(struct vlm_media_policy *p) {
    memset(p, 0, sizeof *p);
    p->timeout_ms = 5000;
    p->max_redirects = 5;
    p->max_bytes = 20u << 20;
}

int vlm_media_global_init(struct vlm_error *err) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return vlm_error_set(err, VLM_E_INTERNAL, "libcurl initialisation failed");
    return VLM_OK;
}

/* ---- data: ---- */

int vlm_media_load_data_url(const char *url, size_t len, size_t max_bytes, uint8_t **data,
                            size_t *n, struct vlm_error *err) {
    *data = NULL;
    *n = 0;
    if (len < 5 || strncasecmp(url, "data:", 5) != 0)
        return vlm_error_set(err, VLM_E_FORMAT, "invalid data URL");
    const char *spec = url + 5, *end = url + len;
    const char *comma = memchr(spec, ',', (size_t)(end - spec));
    if (!comma) return vlm_error_set(err, VLM_E_FORMAT, "invalid data URL: missing ','");
    const char *semi = memchr(spec, ';', (size_t)(comma - spec));
    if (!semi || (size_t)(comma - semi - 1) != 6 || strncasecmp(semi + 1, "base64", 6) != 0)
        return vlm_error_set(err, VLM_E_FORMAT, "invalid data URL: only base64 data URLs are supported");
    size_t mlen = (size_t)(semi - spec);
    if (mlen < 7 || strncasecmp(spec, "image/", 6) != 0)
        return vlm_error_set(err, VLM_E_FORMAT, "invalid data URL: the media type must be image/*");
    for (size_t i = 6; i < mlen; i++) {
        unsigned char c = (unsigned char)spec[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '+' || c == '-'))
            return vlm_error_set(err, VLM_E_FORMAT, "invalid data URL: bad media type");
    }
    const char *payload = comma + 1;
    size_t plen = (size_t)(end - payload);
    if (plen == 0) return vlm_error_set(err, VLM_E_FORMAT, "invalid data URL: empty payload");
    /* the cap is checked on the length before decoding anything */
    if (plen / 4 * 3 > max_bytes + 2)
        return vlm_error_set(err, VLM_E_TOO_LARGE, "image data exceeds the limit of %zu bytes", max_bytes);
    int rc = vlm_base64_decode(payload, plen, max_bytes, data, n, err);
    if (rc == VLM_E_FORMAT) return vlm_error_set(err, rc, "invalid data URL: malformed base64");
    if (rc == VLM_E_TOO_LARGE)
        return vlm_error_set(err, rc, "image data exceeds the limit of %zu bytes", max_bytes);
    if (rc == VLM_OK && *n == 0) {
        vlm_free(*data);
        *data = NULL;
        return vlm_error_set(err, VLM_E_FORMAT, "invalid data URL: empty payload");
    }
    return rc;
}

/* ---- file:// ---- */

/* "/a/./b/../c" -> "/a/c" without touching the file system; -1 if it does not fit. */
static int lexical_normalize(const char *in, char *out, size_t cap) {
    size_t o = 0;
    const char *p = in;
    while (*p) {
        while (*p == '/') p++;
        const char *e = p;
        while (*e && *e != '/') e++;
        size_t n = (size_t)(e - p);
        if (n == 1 && p[0] == '.') { p = e; continue; }
        if (n == 2 && p[0] == '.' && p[1] == '.') {          /* up one level (never above "/") */
            while (o > 0 && out[o - 1] != '/') o--;
            if (o > 0) o--;
            p = e;
            continue;
        }
        if (n == 0) break;
        if (o + 1 + n + 1 > cap) return -1;
        out[o++] = '/';
        memcpy(out + o, p, n);
        o += n;
        p = e;
    }
    if (o == 0) out[o++] = '/';
    out[o] = 0;
    return 0;
}

/* Whether path names something strictly inside the folder root (both absolute, normalized). */
static int path_inside(const char *path, const char *root) {
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/') rl--;
    return rl == 1 ? path[0] == '/' && path[1] != 0 : strncmp(path, root, rl) == 0 && path[rl] == '/';
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int vlm_media_load_file(const char *root, const char *path, size_t max_bytes, uint8_t **data,
                        size_t *n, struct vlm_error *err) {
    *data = NULL;
    *n = 0;
    if (!root)
        return vlm_error_set(err, VLM_E_FORBIDDEN,
                             "Cannot load local files without `--allowed-local-media-path`.");
    size_t plen = strlen(path);
    if (plen >= PATH_MAX) return vlm_error_set(err, VLM_E_FORMAT, "invalid file URL");
    char dec[PATH_MAX], real[PATH_MAX];
    size_t o = 0;
    for (size_t i = 0; i < plen; i++) {
        char c = path[i];
        if (c == '?') break;                  /* a query is not part of a file path */
        if (c == '%') {
            int h = i + 2 < plen ? hexval((unsigned char)path[i + 1]) : -1;
            int l = i + 2 < plen ? hexval((unsigned char)path[i + 2]) : -1;
            if (h < 0 || l < 0 || (h == 0 && l == 0))
                return vlm_error_set(err, VLM_E_FORMAT, "invalid file URL");
            c = (char)(h * 16 + l);
            i += 2;
        }
        dec[o++] = c;
    }
    dec[o] = 0;
    if (o == 0 || dec[0] != '/') return vlm_error_set(err, VLM_E_FORMAT, "invalid file URL");
    /* containment first, on the path as written ("." and ".." resolved without the file
       system): a path outside the folder gets the same answer whether or not it exists */
    char lex[PATH_MAX];
    if (lexical_normalize(dec, lex, sizeof lex) || !path_inside(lex, root))
        return vlm_error_set(err, VLM_E_FORBIDDEN,
                             "The file path is not inside the allowed local media path.");
    if (!realpath(dec, real)) {
        if (errno == ENOENT || errno == ENOTDIR)
            return vlm_error_set(err, VLM_E_NOT_FOUND, "local media file not found");
        return vlm_error_set(err, VLM_E_FORBIDDEN, "local media file cannot be accessed");
    }
    if (!path_inside(real, root))   /* again after links: one inside may point outside */
        return vlm_error_set(err, VLM_E_FORBIDDEN,
                             "The file path is not inside the allowed local media path.");
    /* O_NONBLOCK: opening a FIFO must not wait for a writer; O_NOFOLLOW: the resolved path
       must not have become a link since realpath */
    int fd = open(real, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return vlm_error_set(err, VLM_E_FORBIDDEN, "local media file cannot be opened");
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vlm_error_set(err, VLM_E_FORBIDDEN, "local media path is not a regular file");
    }
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return vlm_error_set(err, VLM_E_TOO_LARGE, "image data exceeds the limit of %zu bytes", max_bytes);
    }
    size_t cap = (size_t)st.st_size;
    uint8_t *buf = vlm_malloc(cap + 1);
    if (!buf) { close(fd); return vlm_error_set(err, VLM_E_NOMEM, "out of memory"); }
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got == 0) {
        vlm_free(buf);
        return vlm_error_set(err, VLM_E_FORMAT, "local media file is empty");
    }
    *data = buf;
    *n = got;
    return VLM_OK;
}

/* ---- http(s):// ---- */

struct fetch_state {
    uint8_t *data;
    size_t   len, cap, max;
    int      too_large, encoded;
    struct sockaddr_storage pinned;   /* the address that was checked */
    socklen_t pinned_len;
};

static size_t on_body(char *p, size_t size, size_t nmemb, void *user) {
    struct fetch_state *st = user;
    size_t n = size * nmemb, need;
    if (!vlm_add_ok(st->len, n, &need) || need > st->max) {
        st->too_large = 1;
        return 0;   /* aborts the transfer: the cap holds while reading */
    }
    if (need + 1 > st->cap) {
        size_t cap = st->cap ? st->cap : 65536;
        while (cap < need + 1) cap *= 2;
        if (cap > st->max + 1) cap = st->max + 1;
        uint8_t *d = vlm_realloc(st->data, cap);
        if (!d) return 0;
        st->data = d;
        st->cap = cap;
    }
    memcpy(st->data + st->len, p, n);
    st->len = need;
    return n;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *user) {
    struct fetch_state *st = user;
    size_t n = size * nmemb;
    if (n > 17 && strncasecmp(p, "content-encoding:", 17) == 0) {
        const char *v = p + 17;
        size_t vl = n - 17;
        while (vl && (*v == ' ' || *v == '\t')) { v++; vl--; }
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' ')) vl--;
        if (!(vl == 8 && strncasecmp(v, "identity", 8) == 0)) {
            st->encoded = 1;
            return 0;   /* no decompression: an encoded body is refused, never inflated */
        }
    }
    return n;
}

/* curl may only open a socket to the address that passed the policy check. */
static curl_socket_t on_opensocket(void *user, curlsocktype purpose, struct curl_sockaddr *a) {
    struct fetch_state *st = user;
    (void)purpose;
    if (a->addrlen != st->pinned_len) return CURL_SOCKET_BAD;
    const struct sockaddr *want = (const struct sockaddr *)&st->pinned, *got = &a->addr;
    if (want->sa_family != got->sa_family) return CURL_SOCKET_BAD;
    if (want->sa_family == AF_INET) {
        const struct sockaddr_in *w = (const void *)want, *g = (const void *)got;
        if (w->sin_addr.s_addr != g->sin_addr.s_addr) return CURL_SOCKET_BAD;
    } else if (want->sa_family == AF_INET6) {
        const struct sockaddr_in6 *w = (const void *)want, *g = (const void *)got;
        if (memcmp(&w->sin6_addr, &g->sin6_addr, 16) != 0) return CURL_SOCKET_BAD;
    } else {
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Resolves u->host and checks every address; pins the first one into st. */
static int check_host(const struct vlm_media_policy *p, const struct vlm_url *u,
                      struct fetch_state *st, struct vlm_error *err) {
    if (p->n_domains) {
        int ok = 0;
        for (size_t i = 0; i < p->n_domains && !ok; i++) ok = strcasecmp(p->domains[i], u->host) == 0;
        if (!ok)
            return vlm_error_set(err, VLM_E_FORBIDDEN,
                                 "The URL must be from one of the allowed domains.");
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    if (u->ip_family) hints.ai_flags = AI_NUMERICHOST;
    if (getaddrinfo(u->host, NULL, &hints, &res) != 0 || !res)
        return vlm_error_set(err, VLM_E_FETCH, "cannot resolve the image URL's host");
    int rc = VLM_OK;
    for (struct addrinfo *a = res; a; a = a->ai_next)
        if ((!p->allow_private && !vlm_addr_is_public(a->ai_addr)) || vlm_addr_is_metadata(a->ai_addr))
            rc = vlm_error_set(err, VLM_E_FORBIDDEN,
                               "The image URL resolves to a private or reserved address, which is not allowed.");
    if (rc == VLM_OK) {
        if (res->ai_addrlen > sizeof st->pinned) rc = vlm_error_set(err, VLM_E_FETCH, "bad address");
        else {
            memcpy(&st->pinned, res->ai_addr, res->ai_addrlen);
            st->pinned_len = res->ai_addrlen;
        }
    }
    freeaddrinfo(res);
    return rc;
}

/* One hop: GET u pinned to st->pinned. *status gets the HTTP status, *location a redirect
 * target (vlm_malloc'd) if any. */
static int fetch_once(const struct vlm_url *u, struct fetch_state *st, long timeout_ms,
                      long *status, char **location, struct vlm_error *err) {
    char addr[INET6_ADDRSTRLEN + 2] = "", resolve_line[600];
    const struct sockaddr *sa = (const struct sockaddr *)&st->pinned;
    if (sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, addr, sizeof addr);
    else {
        addr[0] = '[';
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, addr + 1, sizeof addr - 2);
        strncat(addr, "]", sizeof addr - strlen(addr) - 1);
    }
    char *target = vlm_url_format(u);
    if (!target) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    CURL *c = curl_easy_init();
    struct curl_slist *resolve = NULL;
    if (!c) { vlm_free(target); return vlm_error_set(err, VLM_E_NOMEM, "out of memory"); }
    if (!u->ip_family) {
        snprintf(resolve_line, sizeof resolve_line, "%s:%d:%s", u->host, u->port, addr);
        resolve = curl_slist_append(NULL, resolve_line);
        curl_easy_setopt(c, CURLOPT_RESOLVE, resolve);
    }
    curl_easy_setopt(c, CURLOPT_URL, target);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");            /* a proxy would resolve names itself */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)st->max);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "vlm.c/" VLM_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, st);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, st);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, on_opensocket);
    curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, st);
    CURLcode cc = curl_easy_perform(c);
    int rc = VLM_OK;
    *status = 0;
    *location = NULL;
    if (st->too_large || cc == CURLE_FILESIZE_EXCEEDED)
        rc = vlm_error_set(err, VLM_E_TOO_LARGE, "image data exceeds the limit of %zu bytes", st->max);
    else if (st->encoded)
        rc = vlm_error_set(err, VLM_E_FETCH, "the image URL returned an encoded (compressed) body");
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        rc = vlm_error_set(err, VLM_E_FETCH, "timed out fetching the image URL");
    else if (cc != CURLE_OK)
        rc = vlm_error_set(err, VLM_E_FETCH, "failed to fetch the image URL");
    else {
        char *loc = NULL;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
        curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
        if (loc && *status >= 300 && *status < 400) {
            *location = vlm_strdup(loc);
            if (!*location) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        }
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(resolve);
    vlm_free(target);
    return rc;
}

static int load_web(const struct vlm_media_policy *p, const char *url, size_t len,
                    uint8_t **data, size_t *n, struct vlm_error *err) {
    struct vlm_url u;
    int rc = vlm_url_parse(url, len, &u, err);
    if (rc != VLM_OK) return rc;
    long deadline = now_ms() + (p->timeout_ms > 0 ? p->timeout_ms : 5000);
    struct fetch_state st = {0};
    st.max = p->max_bytes;
    for (int hop = 0;; hop++) {
        long status = 0;
        char *loc = NULL;
        long left = deadline - now_ms();
        if (left <= 0) { rc = vlm_error_set(err, VLM_E_FETCH, "timed out fetching the image URL"); break; }
        if ((rc = check_host(p, &u, &st, err)) != VLM_OK) break;
        st.len = 0;
        if ((rc = fetch_once(&u, &st, left, &status, &loc, err)) != VLM_OK) break;
        if (loc) {
            struct vlm_url next;
            if (hop >= p->max_redirects) {
                vlm_free(loc);
                rc = vlm_error_set(err, VLM_E_FETCH, p->max_redirects ? "too many redirects fetching the image URL"
                                                                      : "the image URL redirects, and redirects are disabled");
                break;
            }
            rc = vlm_url_resolve(&u, loc, &next, err);
            vlm_free(loc);
            if (rc != VLM_OK) break;
            if (strcmp(next.scheme, "http") && strcmp(next.scheme, "https")) {
                vlm_url_free(&next);
                rc = vlm_error_set(err, VLM_E_FORBIDDEN, "the image URL redirects to a forbidden scheme");
                break;
            }
            vlm_url_free(&u);
            u = next;
            continue;
        }
        if (status != 200) {
            rc = vlm_error_set(err, VLM_E_FETCH, "fetching the image URL returned HTTP status %ld", status);
            break;
        }
        if (st.len == 0) { rc = vlm_error_set(err, VLM_E_FETCH, "the image URL returned no data"); break; }
        break;
    }
    vlm_url_free(&u);
    if (rc != VLM_OK) { vlm_free(st.data); return rc; }
    *data = st.data;
    *n = st.len;
    return VLM_OK;
}

int vlm_media_load(const struct vlm_media_policy *p, const char *url, size_t len,
                   uint8_t **data, size_t *n, struct vlm_error *err) {
    *data = NULL;
    *n = 0;
    if (len >= 5 && strncasecmp(url, "data:", 5) == 0)
        return vlm_media_load_data_url(url, len, p->max_bytes, data, n, err);
    if (len >= 7 && strncasecmp(url, "file://", 7) == 0) {
        if (!p->local_root)
            return vlm_error_set(err, VLM_E_FORBIDDEN,
                                 "Cannot load local files without `--allowed-local-media-path`.");
        struct vlm_url u;
        int rc = vlm_url_parse(url, len, &u, err);
        if (rc != VLM_OK) return rc;
        rc = vlm_media_load_file(p->local_root, u.path, p->max_bytes, data, n, err);
        vlm_url_free(&u);
        return rc;
    }
    if ((len >= 7 && strncasecmp(url, "http://", 7) == 0) || (len >= 8 && strncasecmp(url, "https://", 8) == 0))
        return load_web(p, url, len, data, n, err);
    return vlm_error_set(err, VLM_E_FORMAT,
                         "Invalid image URL: expected a data:, http(s):// or file:// URL");
}
