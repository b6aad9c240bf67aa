/* http.h — the HTTP/1.1 layer (own server: one thread per connection, optional TLS through
 * OpenSSL): routes complete requests to one handler; caps connections in total and per client
 * address; gives each request head and body a deadline of its own (slow senders are cut, not only
 * idle ones); answers every malformed request with the OpenAI-style JSON error at once; caps
 * request bodies as they arrive (413 before buffering them whole); streams responses (SSE,
 * chunked) through a pull callback; applies CORS as vLLM's server does; tells a handler at once
 * when its client has gone away; and shuts down gracefully (stop accepting, drain, stop). */
#ifndef VLM_SERVER_HTTP_H
#define VLM_SERVER_HTTP_H

#include <stddef.h>
#include <sys/types.h>

struct vlm_error;
struct vlm_http;

struct vlm_http_config {
    const char *host;            /* address to bind ("0.0.0.0", "127.0.0.1", "::" = dual-stack) */
    int         port;            /* 0 = any free port */
    size_t      max_body;        /* request body cap in bytes */
    int         max_connections; /* concurrent connections in total (default 1024) */
    int         max_per_ip;      /* concurrent connections from one client address (default 128) */
    int         idle_timeout_s;  /* wait for the first byte of a request (keep-alive; default 60) */
    int         head_timeout_s;  /* whole request head, from its first byte (default 20) */
    int         body_timeout_s;  /* whole request body, from the end of the head (default 120) */
    const char *tls_cert;        /* PEM certificate chain file: serve HTTPS; NULL = plain HTTP */
    const char *tls_key;         /* PEM private key file */
    const char *tls_ca;          /* CA file for client certificates; NULL = none */
    int         tls_verify;      /* 0 none, 1 ask for a client certificate, 2 require one */
    const char *const *cors_origins;  /* allowed origins ("*" = any); NULL/0 = ["*"] */
    int         n_cors_origins;
    const char *const *cors_methods;  /* allowed methods ("*" = any); NULL/0 = ["*"] */
    int         n_cors_methods;
    const char *const *cors_headers;  /* allowed request headers ("*" = any); NULL/0 = ["*"] */
    int         n_cors_headers;
    int         cors_credentials;     /* Access-Control-Allow-Credentials: true */
    const char *root_path;       /* a prefix a proxy may leave on paths (vLLM's --root-path); stripped */
};
void vlm_http_config_default(struct vlm_http_config *c);

struct vlm_http_request {
    const char *method;          /* "GET", "POST", ... */
    const char *path;            /* without the query (and without root_path) */
    const char *query;           /* after '?', "" when none */
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
/* Graceful shutdown, step 1: stops accepting connections and closes idle keep-alive ones;
 * requests in progress go on (their connections close after their response). */
void vlm_http_stop_accepting(struct vlm_http *s);
/* Step 2: waits until no request is in progress or timeout_ms passed; returns how many are
 * still in progress. */
int  vlm_http_drain(struct vlm_http *s, int timeout_ms);
/* Stops accepting (if not yet), closes every connection that is not running a handler, waits
 * for the handlers (they must end: the application tells them) and frees the server. */
void vlm_http_stop(struct vlm_http *s);
/* The port actually bound (useful with port 0). */
int  vlm_http_port(const struct vlm_http *s);

/* 1 when the request's client has closed its connection (peer hang-up seen on the socket).
 * Cheap (one poll with zero timeout); call it while waiting. */
int vlm_http_client_gone(void *conn);

#endif
