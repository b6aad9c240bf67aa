/* http_parse.h — HTTP/1.x request heads and chunked bodies from untrusted bytes: pure functions
 * over buffers (no sockets), strict where leniency enables request smuggling (Content-Length
 * together with Transfer-Encoding, differing duplicate lengths, obsolete line folding), with
 * caps on every size. http.c drives them; fuzz/fuzz_http.c feeds them random bytes. */
#ifndef VLM_SERVER_HTTP_PARSE_H
#define VLM_SERVER_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define VLM_HTTP_MAX_HEAD    32768   /* request line + headers */
#define VLM_HTTP_MAX_HEADERS 100

/* The parts of a request head the server uses; strings are NUL-terminated copies. */
struct vlm_http_head {
    char method[16];
    char target[2048];          /* the request target as sent (origin-form: path + query) */
    int  minor;                 /* HTTP/1.minor: 0 or 1 */
    int  keep_alive;            /* the connection may carry another request after this one */
    int  chunked;               /* Transfer-Encoding: chunked */
    long long content_length;   /* -1 when absent */
    int  expect_continue;       /* Expect: 100-continue */
    char authorization[4096];
    char origin[512];
    char acr_method[64];        /* Access-Control-Request-Method (CORS preflight) */
    char acr_headers[1024];     /* Access-Control-Request-Headers */
};

/* Parses the head at the start of buf (len bytes). Returns the head's length in bytes (through
 * the blank line) when complete, 0 when more bytes are needed, or a negative HTTP status for a
 * request that must be refused: -400 malformed, -431 head too large, -501 a transfer coding other
 * than chunked, -505 an HTTP version other than 1.0/1.1. msg (when not NULL) gets a short reason
 * fit for a client (static storage). */
int vlm_http_parse_head(const char *buf, size_t len, struct vlm_http_head *h, const char **msg);

/* Incremental decoder of a chunked body. */
struct vlm_http_chunked {
    int      state;     /* internal */
    uint64_t left;      /* bytes left in the current chunk */
    size_t   line;      /* bytes of the current size/trailer line seen (capped) */
    int      digits;    /* hex digits of the size seen */
};
/* Feeds n bytes; data bytes are passed to sink (which returns 0, or non-zero to stop with
 * -413). Sets *used to the bytes consumed. Returns 1 when the body (and its trailers) ended,
 * 0 when more bytes are needed, -400 for a malformed encoding, -413 when sink refused. */
int vlm_http_chunked_feed(struct vlm_http_chunked *c, const char *in, size_t n, size_t *used,
                          int (*sink)(void *ctx, const char *data, size_t len), void *ctx);

#endif
