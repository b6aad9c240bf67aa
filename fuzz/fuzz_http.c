/* fuzz_http.c — HTTP/1.x request heads and chunked bodies from the network: the head parser
 * must never read past its input, report a head length inside it, and fill only bounded fields;
 * the chunked decoder, fed the rest in uneven pieces, must never produce more data than it was
 * given nor consume more than it was offered. */
#include "server/http_parse.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct sink {
    size_t total, cap;
};

static int sink(void *ctx, const char *data, size_t len) {
    struct sink *s = ctx;
    (void)data;
    s->total += len;
    return s->total > s->cap;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct vlm_http_head h;
    const char *msg = NULL;
    int r = vlm_http_parse_head((const char *)data, size, &h, &msg);
    if (r > (int)size || !msg) abort();
    if (r > 0) {
        if (strlen(h.method) >= sizeof h.method || strlen(h.target) >= sizeof h.target || h.minor < 0 || h.minor > 1)
            abort();
        if (h.target[0] != '/' && h.target[0] != '*') abort();
    }
    /* the chunked decoder over what follows the head (or all of it), in pieces of varying size */
    size_t off = r > 0 ? (size_t)r : 0, step = size ? (size_t)data[0] % 7 + 1 : 1;
    struct vlm_http_chunked c;
    memset(&c, 0, sizeof c);
    struct sink s = {0, size};
    while (off < size) {
        size_t n = size - off < step ? size - off : step, used = 0;
        int cr = vlm_http_chunked_feed(&c, (const char *)data + off, n, &used, sink, &s);
        if (used > n || s.total > size) abort();
        off += used;
        if (cr != 0) break;
        if (used == 0) abort();   /* no progress on bytes offered: the decoder would spin */
    }
    return 0;
}
