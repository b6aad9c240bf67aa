/* alloc.c — allocation through one door (overridable, fault-injectable) and byte buffers. */
#include "util/alloc.h"
#include "vlm.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *default_malloc(size_t n, void *u) { (void)u; return malloc(n); }
static void *default_realloc(void *p, size_t n, void *u) { (void)u; return realloc(p, n); }
static void  default_free(void *p, void *u) { (void)u; free(p); }

static vlm_malloc_fn  hook_malloc = default_malloc;
static vlm_realloc_fn hook_realloc = default_realloc;
static vlm_free_fn    hook_free = default_free;
static void          *hook_user;

static _Atomic uint64_t alloc_count;
static _Atomic uint64_t fail_at;   /* 0 = never */

void vlm_set_allocator(vlm_malloc_fn m, vlm_realloc_fn r, vlm_free_fn f, void *user) {
    if (m && r && f) {
        hook_malloc = m; hook_realloc = r; hook_free = f; hook_user = user;
    } else {
        hook_malloc = default_malloc; hook_realloc = default_realloc; hook_free = default_free;
        hook_user = NULL;
    }
}

uint64_t vlm_alloc_fail_after(uint64_t nth) {
    uint64_t n = atomic_exchange(&alloc_count, 0);
    atomic_store(&fail_at, nth);
    return n;
}

static int should_fail(void) {
    uint64_t c = atomic_fetch_add(&alloc_count, 1) + 1;
    uint64_t f = atomic_load(&fail_at);
    return f != 0 && c >= f;
}

void *vlm_malloc(size_t n) {
    if (should_fail()) return NULL;
    return hook_malloc(n ? n : 1, hook_user);
}

void *vlm_calloc(size_t count, size_t size) {
    size_t n;
    if (!vlm_mul_ok(count, size, &n)) return NULL;
    void *p = vlm_malloc(n);
    if (p) memset(p, 0, n ? n : 1);
    return p;
}

void *vlm_realloc(void *p, size_t n) {
    if (should_fail()) return NULL;
    return hook_realloc(p, n ? n : 1, hook_user);
}

void vlm_free(void *p) {
    if (p) hook_free(p, hook_user);
}

void *vlm_memdup(const void *p, size_t n) {
    size_t m;
    if (!vlm_add_ok(n, 1, &m)) return NULL;
    char *q = vlm_malloc(m);
    if (!q) return NULL;
    if (n) memcpy(q, p, n);
    q[n] = '\0';
    return q;
}

char *vlm_strndup(const char *s, size_t n) {
    size_t len = strnlen(s, n);
    return vlm_memdup(s, len);
}

char *vlm_strdup(const char *s) { return vlm_memdup(s, strlen(s)); }

static int buf_reserve(struct vlm_buf *b, size_t extra) {
    size_t need;
    if (!vlm_add_ok(b->len, extra, &need) || !vlm_add_ok(need, 1, &need)) return VLM_E_NOMEM;
    if (b->max && need - 1 > b->max) return VLM_E_TOO_LARGE;
    if (need <= b->cap) return VLM_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) { cap = need; break; }
        cap *= 2;
    }
    char *d = vlm_realloc(b->data, cap);
    if (!d) return VLM_E_NOMEM;
    b->data = d;
    b->cap = cap;
    return VLM_OK;
}

int vlm_buf_append(struct vlm_buf *b, const void *p, size_t n) {
    int rc = buf_reserve(b, n);
    if (rc) return rc;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return VLM_OK;
}

int vlm_buf_putc(struct vlm_buf *b, char c) { return vlm_buf_append(b, &c, 1); }

int vlm_buf_appendf(struct vlm_buf *b, const char *fmt, ...) {
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { va_end(ap2); return VLM_E_INVALID; }
    int rc = buf_reserve(b, (size_t)n);
    if (rc) { va_end(ap2); return rc; }
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    b->len += (size_t)n;
    return VLM_OK;
}

const char *vlm_buf_cstr(struct vlm_buf *b) { return b->data ? b->data : ""; }

char *vlm_buf_take(struct vlm_buf *b) {
    char *d = b->data;
    if (!d) d = vlm_memdup("", 0);
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void vlm_buf_free(struct vlm_buf *b) {
    vlm_free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
