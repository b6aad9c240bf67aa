/* http.c — libmicrohttpd plumbing: thread per connection, body cap enforced as bytes arrive,
 * buffered and streamed responses, client hang-up detection by polling the socket. */
#include "server/http.h"

#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct vlm_http {
    struct MHD_Daemon *d;
    vlm_http_handler   handler;
    void              *app;
    size_t             max_body;
    int                port;
};

struct conn_state {
    struct vlm_buf body;
    int            too_large;
};

static const char too_large_body[] =
    "{\"error\":{\"message\":\"The request body is too large.\",\"type\":\"RequestEntityTooLarge\","
    "\"param\":null,\"code\":413}}";

static enum MHD_Result queue_static(struct MHD_Connection *c, int status, const char *body) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                                             MHD_RESPMEM_PERSISTENT);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Connection", "close");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

struct stream_wrap {
    vlm_http_stream_fn fn;
    void *ctx;
    void (*free_fn)(void *);
};

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
    struct stream_wrap *w = cls;
    (void)pos;
    ssize_t n = w->fn(w->ctx, buf, max);
    if (n == 0) return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0) return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void stream_done(void *cls) {
    struct stream_wrap *w = cls;
    if (w->free_fn) w->free_fn(w->ctx);
    vlm_free(w);
}

static enum MHD_Result send_response(struct MHD_Connection *c, struct vlm_http_response *resp) {
    struct MHD_Response *r;
    if (resp->stream) {
        struct stream_wrap *w = vlm_malloc(sizeof *w);
        if (!w) {
            if (resp->stream_free) resp->stream_free(resp->stream_ctx);
            return MHD_NO;
        }
        w->fn = resp->stream;
        w->ctx = resp->stream_ctx;
        w->free_fn = resp->stream_free;
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, stream_reader, w, stream_done);
        if (!r) { stream_done(w); return MHD_NO; }
        MHD_add_response_header(r, "Cache-Control", "no-cache");
    } else {
        r = MHD_create_response_from_buffer(resp->body_len, resp->body ? resp->body : (void *)"",
                                            MHD_RESPMEM_MUST_COPY);
        vlm_free(resp->body);
        resp->body = NULL;
        if (!r) return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", resp->content_type ? resp->content_type : "application/json");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)(resp->status ? resp->status : 200), r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls) {
    struct vlm_http *s = cls;
    struct conn_state *st = *con_cls;
    (void)version;
    if (!st) {
        /* first call: headers only. A declared length over the cap is refused before any
           byte of the body is read. */
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            unsigned long long n = strtoull(cl, &end, 10);
            if (*end || n > s->max_body) return queue_static(c, 413, too_large_body);
        }
        st = vlm_calloc(1, sizeof *st);
        if (!st) return MHD_NO;
        st->body.max = s->max_body;
        *con_cls = st;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!st->too_large && vlm_buf_append(&st->body, upload, *upload_size) != VLM_OK)
            st->too_large = 1;
        *upload_size = 0;
        if (st->too_large) {
            vlm_buf_free(&st->body);
            return queue_static(c, 413, too_large_body);
        }
        return MHD_YES;
    }
    if (st->too_large) return queue_static(c, 413, too_large_body);
    struct vlm_http_request req = {0};
    const char *q = strchr(url, '?');
    char path[512];
    size_t pl = q ? (size_t)(q - url) : strlen(url);
    if (pl >= sizeof path) pl = sizeof path - 1;
    memcpy(path, url, pl);
    path[pl] = 0;
    req.method = method;
    req.path = path;
    req.authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    req.body = vlm_buf_cstr(&st->body);
    req.body_len = st->body.len;
    req.conn = c;
    struct vlm_http_response resp = {0};
    s->handler(s->app, &req, &resp);
    return send_response(c, &resp);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls; (void)c; (void)toe;
    struct conn_state *st = *con_cls;
    if (st) {
        vlm_buf_free(&st->body);
        vlm_free(st);
        *con_cls = NULL;
    }
}

int vlm_http_client_gone(void *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info((struct MHD_Connection *)conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 1;
    struct pollfd p = {.fd = ci->connect_fd, .events = POLLIN | POLLRDHUP};
    if (poll(&p, 1, 0) <= 0) return 0;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return 1;
    if (p.revents & POLLIN) {   /* readable: EOF reads as 0 bytes */
        char ch;
        ssize_t r = recv(ci->connect_fd, &ch, 1, MSG_PEEK | MSG_DONTWAIT);
        return r == 0;
    }
    return 0;
}

/* libmicrohttpd's own messages (a client that went away mid-response, ...) at debug level. */
static void mhd_logger(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = 0;
    VLM_LOGD("http: %s", msg);
}

int vlm_http_start(const struct vlm_http_config *cfg, vlm_http_handler h, void *app,
                   struct vlm_http **out, struct vlm_error *err) {
    struct vlm_http *s = vlm_calloc(1, sizeof *s);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    s->handler = h;
    s->app = app;
    s->max_body = cfg->max_body;
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    char port[16];
    snprintf(port, sizeof port, "%d", cfg->port);
    const char *host = cfg->host && *cfg->host ? cfg->host : NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res) {
        vlm_free(s);
        return vlm_error_set(err, VLM_E_INVALID, "cannot resolve the listen address '%s'", host ? host : "");
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | (res->ai_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, res->ai_addr,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)(cfg->max_connections > 0 ? cfg->max_connections : 256),
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(cfg->timeout_s > 0 ? cfg->timeout_s : 300),
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, NULL,
                            MHD_OPTION_END);
    freeaddrinfo(res);
    if (!s->d) {
        vlm_free(s);
        return vlm_error_set(err, VLM_E_IO, "cannot listen on %s:%d (address in use?)", host ? host : "*", cfg->port);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    *out = s;
    return VLM_OK;
}

int vlm_http_port(const struct vlm_http *s) { return s->port; }

void vlm_http_stop(struct vlm_http *s) {
    if (!s) return;
    if (s->d) MHD_stop_daemon(s->d);
    vlm_free(s);
}
