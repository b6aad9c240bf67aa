/* http.h — the HTTP layer on libmicrohttpd (one thread per connection): routes complete
 * requests to one handler, caps request bodies while they arrive (413 before buffering them
 * whole), streams responses (SSE) through a pull callback, and tells a handler at once when
 * its client has gone away so the sequence can be cancelled. */
#ifndef VLM_SERVER_HTTP_H
#define VLM_SERVER_HTTP_H

#include <stddef.h>
#include <sys/types.h>

struct vlm_error;
struct vlm_http;

struct vlm_http_config {
    const char *host;            /* address to bind ("0.0.0.0", "127.0.0.1", "::") */
    int         port;
    size_t      max_body;        /* request body cap in bytes */
    int         max_connections; /* concurrent connections (threads) */
    int         timeout_s;       /* idle connection timeout */
};

struct vlm_http_request {
    const char *method;          /* "GET", "POST", ... */
    const char *path;            /* without the query */
    const char *authorization;   /* the Authorization header or NULL */
    const char *body;            /* NUL-terminated; "" when none */
    size_t      body_len;
    void       *conn;            /* for vlm_http_client_gone */
};

/* Pull callback of a streamed body: writes up to max bytes into buf and returns how many
 * (blocking until some are ready), or 0 at the end, or -1 to abort (client gone, error). */
typedef ssize_t (*vlm_http_stream_fn)(void *ctx, char *buf, size_t max);

struct vlm_http_response {
    int         status;
    const char *content_type;    /* default "application/json" */
    char       *body;            /* vlm_malloc'd; the layer frees it */
    size_t      body_len;
    vlm_http_stream_fn stream;   /* when set, the body is streamed (SSE) instead */
    void       *stream_ctx;
    void      (*stream_free)(void *ctx);  /* called once when the response is done or dropped */
};

/* The application's handler: runs on the connection's own thread and may block (fetching
 * media, waiting for generation); it must fill resp. */
typedef void (*vlm_http_handler)(void *app, const struct vlm_http_request *req,
                                 struct vlm_http_response *resp);

int  vlm_http_start(const struct vlm_http_config *cfg, vlm_http_handler h, void *app,
                    struct vlm_http **out, struct vlm_error *err);
/* Stops accepting, closes connections and frees the server. */
void vlm_http_stop(struct vlm_http *s);
/* The port actually bound (useful with port 0). */
int  vlm_http_port(const struct vlm_http *s);

/* 1 when the request's client has closed its connection (peer hang-up seen on the socket).
 * Cheap (one poll with zero timeout); call it while waiting. */
int vlm_http_client_gone(void *conn);

#endif
