/* test_util.c — errors, allocation (including injected failures), checked sizes, buffers, files. */
#include "test.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <stdint.h>

static void test_errors(void) {
    struct vlm_error e;
    vlm_error_clear(&e);
    CHECK_EQ_INT(e.code, VLM_OK);
    int rc = vlm_error_set(&e, VLM_E_FORMAT, "bad byte at offset %d", 7);
    CHECK_EQ_INT(rc, VLM_E_FORMAT);
    CHECK_EQ_STR(e.msg, "bad byte at offset 7");
    CHECK_EQ_STR(vlm_last_error(), "bad byte at offset 7");
    vlm_error_prefix(&e, "%s", "model.safetensors");
    CHECK_EQ_STR(e.msg, "model.safetensors: bad byte at offset 7");
    CHECK_EQ_STR(vlm_strerror(VLM_E_NOMEM), "VLM_E_NOMEM");
    CHECK_EQ_STR(vlm_strerror(12345), "VLM_E_UNKNOWN");
    CHECK(vlm_error_set(NULL, VLM_E_IO, "x") == VLM_E_IO);
}

static void test_checked(void) {
    size_t out;
    CHECK(vlm_mul_ok(1000, 1000, &out) && out == 1000000);
    CHECK(!vlm_mul_ok(SIZE_MAX / 2, 3, &out));
    CHECK(!vlm_add_ok(SIZE_MAX, 1, &out));
    CHECK(!vlm_mul3_ok(65535, 65535, SIZE_MAX / 1000, &out));
    CHECK(vlm_calloc(SIZE_MAX / 2, 4) == NULL);
}

static void test_fail_injection(void) {
    vlm_alloc_fail_after(2);
    void *a = vlm_malloc(10);
    void *b = vlm_malloc(10);
    CHECK(a != NULL);
    CHECK(b == NULL);
    vlm_alloc_fail_after(0);
    void *c = vlm_malloc(10);
    CHECK(c != NULL);
    vlm_free(a);
    vlm_free(c);
}

static void test_buf(void) {
    struct vlm_buf b = {0};
    CHECK_EQ_STR(vlm_buf_cstr(&b), "");
    for (int i = 0; i < 1000; i++) CHECK(vlm_buf_appendf(&b, "%d,", i) == VLM_OK);
    CHECK(strncmp(b.data, "0,1,2,", 6) == 0);
    CHECK_EQ_INT(b.len, strlen(b.data));
    vlm_buf_free(&b);
    struct vlm_buf capped = {.max = 4};
    CHECK(vlm_buf_append(&capped, "abcd", 4) == VLM_OK);
    CHECK(vlm_buf_putc(&capped, 'e') == VLM_E_TOO_LARGE);
    char *s = vlm_buf_take(&capped);
    CHECK_EQ_STR(s, "abcd");
    vlm_free(s);
}

static void test_files(void) {
    struct vlm_error e;
    char *data;
    size_t len;
    CHECK(vlm_read_file(test_path("CMakeLists.txt"), 1 << 20, &data, &len, &e) == VLM_OK);
    CHECK(len > 100 && strstr(data, "project(vlm ") != NULL);
    vlm_free(data);
    CHECK(vlm_read_file(test_path("CMakeLists.txt"), 10, &data, &len, &e) == VLM_E_TOO_LARGE);
    CHECK(strstr(e.msg, "CMakeLists.txt") != NULL);
    CHECK(vlm_read_file(test_path("tests"), 1 << 20, &data, &len, &e) == VLM_E_IO);
    CHECK(vlm_read_file("/nonexistent/x", 10, &data, &len, &e) == VLM_E_IO);
    CHECK(vlm_read_file("/dev/zero", 1 << 20, &data, &len, &e) == VLM_E_IO);
    struct vlm_mmap m;
    CHECK(vlm_mmap_file(test_path("CMakeLists.txt"), &m, &e) == VLM_OK && m.size > 100);
    vlm_munmap(&m);
    char *p = vlm_path_join("a/b", "c.json");
    CHECK_EQ_STR(p, "a/b/c.json");
    vlm_free(p);
    p = vlm_path_join("a/b/", "c.json");
    CHECK_EQ_STR(p, "a/b/c.json");
    vlm_free(p);
}

int main(void) {
    test_errors();
    test_checked();
    test_fail_injection();
    test_buf();
    test_files();
    TEST_MAIN_END();
}
