/* alloc.h — the one door for allocation (vlm_malloc & co.), a fault-injecting test mode,
 * and overflow-checked size arithmetic for every size computed from untrusted data. */
#ifndef VLM_UTIL_ALLOC_H
#define VLM_UTIL_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

void *vlm_malloc(size_t n);                 /* NULL on failure or n == 0 overflow paths */
void *vlm_calloc(size_t count, size_t size);/* zeroed; NULL if count*size overflows */
void *vlm_realloc(void *p, size_t n);
void  vlm_free(void *p);                    /* NULL is fine */
char *vlm_strdup(const char *s);
char *vlm_strndup(const char *s, size_t n); /* copies at most n bytes and adds a NUL */
void *vlm_memdup(const void *p, size_t n);

/* Test hook: the nth allocation from now (1-based) and every later one fail; 0 turns
 * failures off. Returns how many allocations happened since the last call. */
uint64_t vlm_alloc_fail_after(uint64_t nth);

/* Overflow-checked arithmetic: true and *out set when the result fits. */
static inline bool vlm_mul_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_mul_overflow(a, b, out);
}
static inline bool vlm_add_ok(size_t a, size_t b, size_t *out) {
    return !__builtin_add_overflow(a, b, out);
}
static inline bool vlm_mul3_ok(size_t a, size_t b, size_t c, size_t *out) {
    size_t t;
    return vlm_mul_ok(a, b, &t) && vlm_mul_ok(t, c, out);
}

/* A growable byte buffer (always NUL-terminated when len > 0 or after vlm_buf_cstr). */
struct vlm_buf {
    char  *data;
    size_t len, cap;
    size_t max;   /* 0 = no cap; appends past max fail (output-size limits) */
};
int  vlm_buf_append(struct vlm_buf *b, const void *p, size_t n);   /* VLM_OK / VLM_E_NOMEM / VLM_E_TOO_LARGE */
int  vlm_buf_appendf(struct vlm_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int  vlm_buf_putc(struct vlm_buf *b, char c);
const char *vlm_buf_cstr(struct vlm_buf *b); /* "" for an empty buffer */
char *vlm_buf_take(struct vlm_buf *b);       /* hands data to the caller (vlm_free); resets b */
void vlm_buf_free(struct vlm_buf *b);

#endif
