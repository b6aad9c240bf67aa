/* http.c — the HTTP/1.1 server of http.h: an acceptor thread that enforces the connection caps
 * before a connection gets a thread, then one thread per connection that reads each request
 * under its deadlines (http_parse.c), runs the handler and writes the response (buffered, or
 * chunked for streams), keep-alive and pipelining included. TLS and CORS are in http_tls.c and
 * http_cors.c. */
#include "server/http.h"
#include "server/http_internal.h"
#include "server/http_parse.h"

#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

void vlm_http_config_default(struct vlm_http_config *c) {
    memset(c, 0, sizeof *c);
    c->host = "0.0.0.0";
    c->port = 8000;
    c->max_body = (size_t)64 << 20;
    c->max_connections = 1024;
    c->max_per_ip = 128;
    c->idle_timeout_s = 60;
    c->head_timeout_s = 20;
    c->body_timeout_s = 120;
}

int64_t vlm_http_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- connection bookkeeping (under s->mu) ---- */

static int count_ip(struct vlm_http *s, const unsigned char *addr) {
    int n = 0;
    for (struct http_conn *c = s->conns; c; c = c->next) n += !memcmp(c->addr, addr, 16);
    return n;
}

static void conn_unlink(struct vlm_http *s, struct http_conn *c) {
    pthread_mutex_lock(&s->mu);
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    s->n_conns--;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* Marks a connection busy (in a handler: never closed under it) or reading. */
static void conn_set_busy(struct http_conn *c, int busy) {
    struct vlm_http *s = c->srv;
    pthread_mutex_lock(&s->mu);
    c->busy = busy;
    s->n_busy += busy ? 1 : -1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

/* ---- socket I/O with deadlines ---- */

/* Reads what is there (at most n bytes), waiting until deadline (ms on the monotonic clock).
 * Returns bytes read, 0 at EOF, -1 on error, -2 at the deadline. */
static ssize_t conn_read(struct http_conn *c, char *buf, size_t n, int64_t deadline) {
    for (;;) {
        if (!c->ssl || !vlm_http_tls_pending(c)) {
            int64_t left = deadline - vlm_http_now_ms();
            if (left <= 0) return -2;
            struct pollfd p = {.fd = c->fd, .events = POLLIN};
            int r = poll(&p, 1, left > 1000 ? 1000 : (int)left);
            if (r < 0 && errno != EINTR) return -1;
            if (r <= 0) continue;
        }
        ssize_t r = c->ssl ? vlm_http_tls_read(c, buf, n) : recv(c->fd, buf, n, MSG_DONTWAIT);
        if (r == -3 || (r < 0 && !c->ssl && (errno == EAGAIN || errno == EINTR))) continue;
        return r < 0 ? -1 : r;
    }
}

/* Writes all n bytes; a peer that takes no byte for 60 s is dropped. 0 or -1. */
int vlm_http_conn_write(struct http_conn *c, const char *buf, size_t n) {
    int64_t deadline = vlm_http_now_ms() + 60000;
    while (n) {
        ssize_t w = c->ssl ? vlm_http_tls_write(c, buf, n) : send(c->fd, buf, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0) {
            buf += w;
            n -= (size_t)w;
            deadline = vlm_http_now_ms() + 60000;
            continue;
        }
        if (w < 0 && w != -3 && (c->ssl || (errno != EAGAIN && errno != EINTR))) return -1;
        int64_t left = deadline - vlm_http_now_ms();
        if (left <= 0) return -1;
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};
        if (poll(&p, 1, left > 1000 ? 1000 : (int)left) < 0 && errno != EINTR) return -1;
    }
    return 0;
}

/* ---- responses ---- */

static const char *reason(int status) {
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 499: return "Client Closed Request";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

static const char *error_type(int status) {
    switch (status) {
    case 400: return "BadRequestError";
    case 404: return "NotFoundError";
    case 408: return "RequestTimeout";
    case 413: return "RequestEntityTooLarge";
    case 414: return "RequestURITooLong";
    case 431: return "RequestHeaderFieldsTooLarge";
    case 501: return "NotImplementedError";
    case 503: return "ServiceUnavailableError";
    case 505: return "HTTPVersionNotSupported";
    default: return "Error";
    }
}

/* The status line and headers; extra (may be "") is more header lines, each ending in CRLF. */
static int write_head(struct http_conn *c, int status, const char *ctype, long long len, int chunked,
                      int keep, const char *extra) {
    char h[2048];
    int n = snprintf(h, sizeof h, "HTTP/1.%d %d %s\r\nServer: vlm\r\n%s%s%s", c->minor, status, reason(status),
                     ctype ? "Content-Type: " : "", ctype ? ctype : "", ctype ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof h) return -1;
    if (chunked) n += snprintf(h + n, sizeof h - (size_t)n, "Transfer-Encoding: chunked\r\nCache-Control: no-cache\r\n");
    else if (len >= 0) n += snprintf(h + n, sizeof h - (size_t)n, "Content-Length: %lld\r\n", len);
    n += snprintf(h + n, sizeof h - (size_t)n, "%s%s\r\n", keep ? (c->minor == 0 ? "Connection: keep-alive\r\n" : "")
                                                           : "Connection: close\r\n", extra);
    if ((size_t)n >= sizeof h) return -1;
    return vlm_http_conn_write(c, h, (size_t)n);
}

/* A JSON error answer in the OpenAI shape, then the connection closes. */
static void send_error(struct http_conn *c, int status, const char *msg) {
    char body[512];
    int n = snprintf(body, sizeof body, "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":%d}}",
                     msg, error_type(status), status);
    if (n < 0 || (size_t)n >= sizeof body) return;
    if (write_head(c, status, "application/json", n, 0, 0, "") == 0) vlm_http_conn_write(c, body, (size_t)n);
}

/* A streamed body: chunked on HTTP/1.1, until close on HTTP/1.0. Returns 0 when it ended
 * cleanly (the connection may be reused). */
static int send_stream(struct http_conn *c, struct vlm_http_response *resp, int keep, const char *cors) {
    int chunked = c->minor == 1, rc = 0;
    if (write_head(c, resp->status ? resp->status : 200, resp->content_type ? resp->content_type : "application/json",
                   -1, chunked, keep && chunked, cors) != 0)
        rc = -1;
    char buf[4096 + 16];
    while (rc == 0) {
        ssize_t n = resp->stream(resp->stream_ctx, buf + 10, 4096);
        if (n < 0) { rc = -1; break; }
        if (n == 0) {
            if (chunked && vlm_http_conn_write(c, "0\r\n\r\n", 5)) rc = -1;
            break;
        }
        if (chunked) {
            char hx[12];
            int hn = snprintf(hx, sizeof hx, "%zx\r\n", (size_t)n);
            memcpy(buf + 10 - hn, hx, (size_t)hn);
            memcpy(buf + 10 + n, "\r\n", 2);
            rc = vlm_http_conn_write(c, buf + 10 - hn, (size_t)hn + (size_t)n + 2);
        } else {
            rc = vlm_http_conn_write(c, buf + 10, (size_t)n);
        }
    }
    if (resp->stream_free) resp->stream_free(resp->stream_ctx);
    return chunked ? rc : -1;
}

/* ---- one request ---- */

struct body_sink {
    struct vlm_buf *b;
};

static int sink_append(void *ctx, const char *data, size_t len) {
    return vlm_buf_append(((struct body_sink *)ctx)->b, data, len) != VLM_OK;
}

/* Reads more bytes into c->in (grows it up to cap). -2 deadline, 0 EOF, -1 error, >0 read. */
static ssize_t fill(struct http_conn *c, size_t cap, int64_t deadline) {
    if (c->in_len == c->in_cap) {
        if (c->in_cap >= cap) return -1;
        size_t nc = c->in_cap ? c->in_cap * 2 : 8192;
        if (nc > cap) nc = cap;
        char *p = vlm_realloc(c->in, nc);
        if (!p) return -1;
        c->in = p;
        c->in_cap = nc;
    }
    ssize_t r = conn_read(c, c->in + c->in_len, c->in_cap - c->in_len, deadline);
    if (r > 0) c->in_len += (size_t)r;
    return r;
}

static void consume(struct http_conn *c, size_t n) {
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

/* Reads the body announced by h into body. 0, or an HTTP status to answer (the connection then
 * closes), or -1 when the connection is gone. */
static int read_body(struct http_conn *c, const struct vlm_http_head *h, struct vlm_buf *body) {
    struct vlm_http *s = c->srv;
    int64_t deadline = vlm_http_now_ms() + (int64_t)s->cfg.body_timeout_s * 1000;
    if (h->content_length > (long long)s->cfg.max_body) return 413;
    if (h->expect_continue && (h->chunked || h->content_length > 0) && c->in_len == 0) {
        char cont[32];
        int n = snprintf(cont, sizeof cont, "HTTP/1.%d 100 Continue\r\n\r\n", c->minor);
        if (vlm_http_conn_write(c, cont, (size_t)n)) return -1;
    }
    if (!h->chunked) {
        size_t want = h->content_length > 0 ? (size_t)h->content_length : 0;
        while (body->len < want) {
            if (c->in_len) {
                size_t take = c->in_len < want - body->len ? c->in_len : want - body->len;
                if (vlm_buf_append(body, c->in, take) != VLM_OK) return 413;
                consume(c, take);
                continue;
            }
            ssize_t r = fill(c, 65536, deadline);
            if (r == -2) return 408;
            if (r <= 0) return -1;
        }
        return 0;
    }
    struct vlm_http_chunked ch = {0};
    struct body_sink sk = {body};
    for (;;) {
        size_t used = 0;
        int r = c->in_len ? vlm_http_chunked_feed(&ch, c->in, c->in_len, &used, sink_append, &sk) : 0;
        consume(c, used);
        if (r == 1) return 0;
        if (r < 0) return -r;
        ssize_t f = fill(c, 65536, deadline);
        if (f == -2) return 408;
        if (f <= 0) return -1;
    }
}

/* Reads one request head. Returns its parse result (> 0 its length), 0 when the connection
 * ended quietly (EOF or idle timeout before a byte), or a negative status to answer. */
static int read_head(struct http_conn *c, struct vlm_http_head *h, const char **msg) {
    struct vlm_http *s = c->srv;
    int64_t idle_end = vlm_http_now_ms() + (int64_t)s->cfg.idle_timeout_s * 1000, head_end = 0;
    for (;;) {
        if (c->in_len) {
            if (!head_end) head_end = vlm_http_now_ms() + (int64_t)s->cfg.head_timeout_s * 1000;
            int r = vlm_http_parse_head(c->in, c->in_len, h, msg);
            if (r != 0) return r;
        }
        ssize_t f = fill(c, VLM_HTTP_MAX_HEAD + 1024, head_end ? head_end : idle_end);
        if (f == -2 && head_end) { *msg = "the request head took too long"; return -408; }
        if (f <= 0) {
            if (f == -1 && c->in_len >= VLM_HTTP_MAX_HEAD) { *msg = "request head too large"; return -431; }
            return 0;
        }
        if (__atomic_load_n(&s->closing, __ATOMIC_SEQ_CST) && !head_end) return 0;
    }
}

/* Splits the target into path (without root_path) and query, in place. */
static void split_target(const struct vlm_http *s, char *target, const char **path, const char **query) {
    char *q = strchr(target, '?');
    *query = "";
    if (q) { *q = 0; *query = q + 1; }
    *path = target;
    const char *rp = s->cfg.root_path;
    size_t rl = rp ? strlen(rp) : 0;
    while (rl && rp[rl - 1] == '/') rl--;
    if (rl && !strncmp(target, rp, rl) && (target[rl] == '/' || target[rl] == 0)) {
        *path = target + rl;
        if (!**path) *path = "/";
    }
}

/* Runs one complete request through the handler and answers it. Returns 1 to keep the
 * connection for another request. */
static int serve_one(struct http_conn *c, struct vlm_http_head *h, struct vlm_buf *body) {
    struct vlm_http *s = c->srv;
    char cors[1024];
    int keep = h->keep_alive && !__atomic_load_n(&s->closing, __ATOMIC_SEQ_CST);
    vlm_http_cors_headers(s, h, cors, sizeof cors);
    if (!strcmp(h->method, "OPTIONS") && h->origin[0] && h->acr_method[0]) {
        int st = vlm_http_cors_preflight(s, h, cors, sizeof cors);
        const char *msg = st == 200 ? "OK" : "Disallowed CORS origin or method";
        if (write_head(c, st, "text/plain; charset=utf-8", (long long)strlen(msg), 0, keep, cors) ||
            vlm_http_conn_write(c, msg, strlen(msg)))
            return 0;
        return keep;
    }
    struct vlm_http_request req = {0};
    split_target(s, h->target, &req.path, &req.query);
    req.method = h->method;
    req.authorization = h->authorization[0] ? h->authorization : NULL;
    req.body = vlm_buf_cstr(body);
    req.body_len = body->len;
    req.conn = c;
    struct vlm_http_response resp = {0};
    s->handler(s->app, &req, &resp);
    int st = resp.status ? resp.status : 200;
    if (resp.stream) return send_stream(c, &resp, keep, cors) == 0 && keep;
    int head_only = !strcmp(h->method, "HEAD");
    int rc = write_head(c, st, resp.content_type ? resp.content_type : "application/json", (long long)resp.body_len,
                        0, keep, cors);
    if (rc == 0 && resp.body_len && !head_only) rc = vlm_http_conn_write(c, resp.body, resp.body_len);
    vlm_free(resp.body);
    return rc == 0 && keep;
}

static void *conn_main(void *arg) {
    struct http_conn *c = arg;
    struct vlm_http *s = c->srv;
    struct vlm_http_head *h = vlm_malloc(sizeof *h);
    if (h && (!s->tls || vlm_http_tls_accept(c, vlm_http_now_ms() + (int64_t)s->cfg.head_timeout_s * 1000) == 0)) {
        for (;;) {
            const char *msg = "";
            int r = read_head(c, h, &msg);
            if (r == 0) break;
            c->minor = r > 0 ? h->minor : 1;
            if (r < 0) { send_error(c, -r, msg); break; }
            consume(c, (size_t)r);
            struct vlm_buf body = {0};
            body.max = s->cfg.max_body;
            int br = read_body(c, h, &body), keep = 0;
            if (br > 0) send_error(c, br, br == 413 ? "The request body is too large." :
                                          br == 408 ? "The request body took too long." : "Malformed request body.");
            else if (br == 0) {   /* busy: the request counts as in progress, stop waits for it */
                conn_set_busy(c, 1);
                keep = serve_one(c, h, &body);
                conn_set_busy(c, 0);
            }
            vlm_buf_free(&body);
            if (!keep) break;
        }
    }
    vlm_free(h);
    vlm_http_tls_close(c);
    conn_unlink(s, c);
    shutdown(c->fd, SHUT_RDWR);
    close(c->fd);
    vlm_free(c->in);
    vlm_free(c);
    return NULL;
}

int vlm_http_client_gone(void *conn) {
    struct http_conn *c = conn;
    struct pollfd p = {.fd = c->fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
    if (p.revents & POLLIN) {   /* readable: EOF reads as 0 bytes */
        char ch;
        return recv(c->fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
    }
    return 0;
}

/* ---- accepting ---- */

static const char busy_503[] =
    "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n"
    "Content-Length: 110\r\n\r\n"
    "{\"error\":{\"message\":\"Too many connections; try again later.\",\"type\":\"ServiceUnavailableError\","
    "\"param\":null,\"code\":503}}";

static void addr_key(const struct sockaddr_storage *ss, unsigned char key[16]) {
    memset(key, 0, 16);
    if (ss->ss_family == AF_INET) {   /* as an IPv4-mapped IPv6 address, so both spellings count once */
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else if (ss->ss_family == AF_INET6) {
        memcpy(key, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
    }
}

/* Refused connections linger for a moment after their 503: closing a socket whose request is
 * still unread makes the kernel send a reset, which can reach the client before the answer.
 * The acceptor drains them until EOF or a short deadline (never blocking); past the cap of
 * lingering sockets, the oldest is closed at once. */
#define LINGER_MAX 256
#define LINGER_MS  1000

struct linger_set {
    int     fd[LINGER_MAX];
    int64_t until[LINGER_MAX];
    int     n;
};

static void linger_add(struct linger_set *l, int fd) {
    if (l->n == LINGER_MAX) {
        close(l->fd[0]);
        memmove(l->fd, l->fd + 1, sizeof l->fd[0] * (LINGER_MAX - 1));
        memmove(l->until, l->until + 1, sizeof l->until[0] * (LINGER_MAX - 1));
        l->n--;
    }
    shutdown(fd, SHUT_WR);
    l->fd[l->n] = fd;
    l->until[l->n++] = vlm_http_now_ms() + LINGER_MS;
}

/* Drains what arrived on lingering sockets; closes those at EOF or past their deadline. */
static void linger_service(struct linger_set *l) {
    int64_t now = vlm_http_now_ms();
    for (int i = 0; i < l->n;) {
        char buf[4096];
        ssize_t r;
        while ((r = recv(l->fd[i], buf, sizeof buf, MSG_DONTWAIT)) > 0) {}
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) || now >= l->until[i]) {
            close(l->fd[i]);
            l->fd[i] = l->fd[--l->n];
            l->until[i] = l->until[l->n];
        } else {
            i++;
        }
    }
}

static void accept_one(struct vlm_http *s, int lfd, struct linger_set *lg) {
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno == EMFILE || errno == ENFILE) usleep(10000);   /* out of descriptors: back off */
        return;
    }
    unsigned char key[16];
    addr_key(&ss, key);
    pthread_mutex_lock(&s->mu);
    int over = s->n_conns >= s->cfg.max_connections || count_ip(s, key) >= s->cfg.max_per_ip ||
               __atomic_load_n(&s->closing, __ATOMIC_SEQ_CST);
    struct http_conn *c = over ? NULL : vlm_calloc(1, sizeof *c);
    if (c) {
        c->srv = s;
        c->fd = fd;
        memcpy(c->addr, key, 16);
        c->next = s->conns;
        if (s->conns) s->conns->prev = c;
        s->conns = c;
        s->n_conns++;
    }
    pthread_mutex_unlock(&s->mu);
    if (!c) {   /* refused before a thread is spent: a short answer, never blocking */
        if (!s->tls) {
            (void)!send(fd, busy_503, sizeof busy_503 - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            linger_add(lg, fd);
        } else {
            close(fd);
        }
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    pthread_t t;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    if (pthread_create(&t, &at, conn_main, c) != 0) {
        conn_unlink(s, c);
        close(fd);
        vlm_free(c);
    }
    pthread_attr_destroy(&at);
}

static void *acceptor_main(void *arg) {
    struct vlm_http *s = arg;
    struct pollfd p[2 + LINGER_MAX] = {{.fd = s->lfd, .events = POLLIN}, {.fd = s->wake[0], .events = POLLIN}};
    struct linger_set *lg = vlm_calloc(1, sizeof *lg);
    struct linger_set none = {.n = 0};
    if (!lg) lg = &none;    /* out of memory: refused sockets close at once (LINGER_MAX 0 below) */
    for (;;) {
        for (int i = 0; i < lg->n; i++) p[2 + i] = (struct pollfd){.fd = lg->fd[i], .events = POLLIN};
        int r = poll(p, 2 + (nfds_t)lg->n, lg->n ? 100 : -1);
        if (r < 0 && errno != EINTR) break;
        if (p[1].revents) break;
        if (lg->n) linger_service(lg);
        if (p[0].revents & POLLIN) {
            if (lg == &none) {
                struct linger_set tmp = {.n = 0};
                accept_one(s, s->lfd, &tmp);
                for (int i = 0; i < tmp.n; i++) close(tmp.fd[i]);
            } else {
                accept_one(s, s->lfd, lg);
            }
        }
    }
    for (int i = 0; i < lg->n; i++) close(lg->fd[i]);
    if (lg != &none) vlm_free(lg);
    return NULL;
}

/* Binds host:port; "::" (or any IPv6 wildcard) listens dual-stack. */
static int listen_on(struct vlm_http *s, const struct vlm_http_config *cfg, struct vlm_error *err) {
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    const char *host = cfg->host && *cfg->host ? cfg->host : NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return vlm_error_set(err, VLM_E_INVALID, "cannot resolve the listen address '%s'", host ? host : "");
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, zero = 0;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (res->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    int ok = fd >= 0 && bind(fd, res->ai_addr, res->ai_addrlen) == 0 && listen(fd, 1024) == 0;
    freeaddrinfo(res);
    if (!ok) {
        if (fd >= 0) close(fd);
        return vlm_error_set(err, VLM_E_IO, "cannot listen on %s:%d (address in use?)", host ? host : "*", cfg->port);
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    s->lfd = fd;
    return VLM_OK;
}

int vlm_http_start(const struct vlm_http_config *cfg, vlm_http_handler h, void *app,
                   struct vlm_http **out, struct vlm_error *err) {
    struct vlm_http *s = vlm_calloc(1, sizeof *s);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    s->cfg = *cfg;
    if (s->cfg.max_connections <= 0) s->cfg.max_connections = 1024;
    if (s->cfg.max_per_ip <= 0) s->cfg.max_per_ip = 128;
    if (s->cfg.idle_timeout_s <= 0) s->cfg.idle_timeout_s = 60;
    if (s->cfg.head_timeout_s <= 0) s->cfg.head_timeout_s = 20;
    if (s->cfg.body_timeout_s <= 0) s->cfg.body_timeout_s = 120;
    s->handler = h;
    s->app = app;
    s->lfd = s->wake[0] = s->wake[1] = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    int rc = vlm_http_tls_init(s, err);
    if (rc == VLM_OK) rc = listen_on(s, cfg, err);
    if (rc == VLM_OK && pipe2(s->wake, O_CLOEXEC) != 0) rc = vlm_error_set(err, VLM_E_IO, "cannot create a pipe");
    if (rc == VLM_OK && pthread_create(&s->acceptor, NULL, acceptor_main, s) != 0)
        rc = vlm_error_set(err, VLM_E_IO, "cannot start the listener thread");
    if (rc != VLM_OK) {
        if (s->lfd >= 0) close(s->lfd);
        if (s->wake[0] >= 0) { close(s->wake[0]); close(s->wake[1]); }
        vlm_http_tls_free(s);
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        vlm_free(s);
        return rc;
    }
    s->accepting = 1;
    *out = s;
    return VLM_OK;
}

int vlm_http_port(const struct vlm_http *s) { return s->port; }

/* Shuts the sockets of connections that are not running a handler (idle or reading). */
static void close_idle(struct vlm_http *s) {
    pthread_mutex_lock(&s->mu);
    for (struct http_conn *c = s->conns; c; c = c->next)
        if (!c->busy) shutdown(c->fd, SHUT_RDWR);
    pthread_mutex_unlock(&s->mu);
}

void vlm_http_stop_accepting(struct vlm_http *s) {
    if (!s || !s->accepting) return;
    s->accepting = 0;
    __atomic_store_n(&s->closing, 1, __ATOMIC_SEQ_CST);
    (void)!write(s->wake[1], "x", 1);
    pthread_join(s->acceptor, NULL);
    close(s->lfd);
    s->lfd = -1;
    close_idle(s);
}

int vlm_http_drain(struct vlm_http *s, int timeout_ms) {
    int64_t end = vlm_http_now_ms() + timeout_ms;
    pthread_mutex_lock(&s->mu);
    while (s->n_busy > 0 && vlm_http_now_ms() < end) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    int n = s->n_busy;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void vlm_http_stop(struct vlm_http *s) {
    if (!s) return;
    vlm_http_stop_accepting(s);
    pthread_mutex_lock(&s->mu);
    while (s->n_conns > 0) {   /* handlers end once the application says stop; the rest are shut */
        for (struct http_conn *c = s->conns; c; c = c->next)
            if (!c->busy) shutdown(c->fd, SHUT_RDWR);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 100 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    close(s->wake[0]);
    close(s->wake[1]);
    vlm_http_tls_free(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    vlm_free(s);
}
