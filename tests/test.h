/* test.h — the tiny harness every tests/test_*.c uses: CHECK macros that count and report
 * failures with file:line, and TEST_MAIN's closing line "N passed, N failed". */
#ifndef VLM_TEST_H
#define VLM_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_pass, test_fail;

#define CHECK(cond) do { \
    if (cond) test_pass++; \
    else { test_fail++; fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); } \
} while (0)

#define CHECK_MSG(cond, ...) do { \
    if (cond) test_pass++; \
    else { test_fail++; fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond); \
           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } \
} while (0)

#define CHECK_EQ_INT(a, b) do { \
    long long a_ = (long long)(a), b_ = (long long)(b); \
    if (a_ == b_) test_pass++; \
    else { test_fail++; fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
           __FILE__, __LINE__, #a, #b, a_, b_); } \
} while (0)

#define CHECK_EQ_STR(a, b) do { \
    const char *a_ = (a), *b_ = (b); \
    if (a_ && b_ && strcmp(a_, b_) == 0) test_pass++; \
    else { test_fail++; fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", \
           __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); } \
} while (0)

#define CHECK_NEAR(a, b, tol) do { \
    double a_ = (double)(a), b_ = (double)(b); \
    if (fabs(a_ - b_) <= (tol)) test_pass++; \
    else { test_fail++; fprintf(stderr, "%s:%d: |%s - %s| <= %g failed: %.9g vs %.9g\n", \
           __FILE__, __LINE__, #a, #b, (double)(tol), a_, b_); } \
} while (0)

/* Path of a file under the source tree (tests/fixtures/...), in a static buffer. */
static inline const char *test_path(const char *rel) {
    static char buf[4096];
    const char *root = getenv("VLM_SOURCE_DIR");
#ifdef VLM_SOURCE_DIR
    if (!root) root = VLM_SOURCE_DIR;
#endif
    snprintf(buf, sizeof buf, "%s/%s", root ? root : ".", rel);
    return buf;
}

/* VLM_TEST_QUICK=1 (set for the sanitizer run) asks slow tests for a smaller sample. */
static inline int test_quick(void) {
    const char *q = getenv("VLM_TEST_QUICK");
    return q && *q && *q != '0';
}

#define TEST_MAIN_END() do { \
    printf("%d passed, %d failed\n", test_pass, test_fail); \
    return test_fail ? 1 : 0; \
} while (0)

#endif
