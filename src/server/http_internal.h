/* http_internal.h — what http.c shares with http_tls.c (OpenSSL) and http_cors.c: the server
 * and connection structs and the I/O helpers. Not part of the server layer's interface. */
#ifndef VLM_SERVER_HTTP_INTERNAL_H
#define VLM_SERVER_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <sys/types.h>

#include "server/http.h"

struct vlm_http_head;

struct http_conn {
    struct vlm_http  *srv;
    int               fd;
    void             *ssl;           /* SSL * when serving TLS */
    unsigned char     addr[16];      /* client address (IPv4 as IPv4-mapped IPv6) */
    int               busy;          /* running a handler (under srv->mu) */
    int               minor;         /* HTTP/1.minor of the current request */
    char             *in;            /* bytes read and not yet used (pipelined requests stay here) */
    size_t            in_len, in_cap;
    struct http_conn *prev, *next;
};

struct vlm_http {
    struct vlm_http_config cfg;
    vlm_http_handler  handler;
    void             *app;
    int               lfd, port, wake[2], accepting, closing;
    pthread_t         acceptor;
    pthread_mutex_t   mu;
    pthread_cond_t    cv;
    struct http_conn *conns;         /* every open connection (under mu) */
    int               n_conns, n_busy;
    void             *tls;           /* SSL_CTX * or NULL */
};

int64_t vlm_http_now_ms(void);
int     vlm_http_conn_write(struct http_conn *c, const char *buf, size_t n);

/* http_tls.c: the context from cfg (no-op without a certificate), the handshake within a
 * deadline, reads/writes (-3: retry after poll, -1 error, 0 EOF) and teardown. */
int     vlm_http_tls_init(struct vlm_http *s, struct vlm_error *err);
void    vlm_http_tls_free(struct vlm_http *s);
int     vlm_http_tls_accept(struct http_conn *c, int64_t deadline);
int     vlm_http_tls_pending(struct http_conn *c);
ssize_t vlm_http_tls_read(struct http_conn *c, char *buf, size_t n);
ssize_t vlm_http_tls_write(struct http_conn *c, const char *buf, size_t n);
void    vlm_http_tls_close(struct http_conn *c);

/* http_cors.c: the CORS headers of an answer to h (header lines, "" when none apply), and the
 * status of a preflight (200 allowed, 400 not) with its headers. */
void vlm_http_cors_headers(const struct vlm_http *s, const struct vlm_http_head *h, char *out, size_t cap);
int  vlm_http_cors_preflight(const struct vlm_http *s, const struct vlm_http_head *h, char *out, size_t cap);

#endif
