/* test_gguf_write.c — the GGUF writer round-tripped through our hardened reader: every
 * metadata value type and array kind, tensors of every dtype at the declared alignment with
 * zero padding, data streamed in odd-sized pieces; misuse (duplicate keys, short or extra data,
 * bad alignment) refused with no file left behind. */
#include <stdint.h>
#include <unistd.h>

#include "test.h"

#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "tensor/quant.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

static char path[256];

static const enum vlm_dtype types[] = {VLM_DT_F32, VLM_DT_F16, VLM_DT_BF16, VLM_DT_Q8_0, VLM_DT_Q4_0,
                                       VLM_DT_Q4_1, VLM_DT_Q5_0, VLM_DT_Q5_1, VLM_DT_Q4_K, VLM_DT_Q5_K,
                                       VLM_DT_Q6_K};
#define NT (sizeof types / sizeof types[0])

/* Tensor i: 3 rows of 256 (one row of 512 for F32, 2-D x 1 for a 3-D shape), bytes a pattern of i. */
static void shape_of(size_t i, int *nd, int64_t ne[4]) {
    *nd = i % 3 == 0 ? 3 : 2;
    ne[0] = i == 0 ? 512 : 256;
    ne[1] = 3;
    ne[2] = 1;
    ne[3] = 1;
}

static size_t bytes_of(size_t i) {
    int nd;
    int64_t ne[4];
    shape_of(i, &nd, ne);
    return vlm_dtype_row_bytes(types[i], ne[0]) * (size_t)ne[1];
}

static uint8_t pat(size_t i, size_t k) { return (uint8_t)(k * 31 + i * 7 + 1); }

static int write_file(uint32_t align, size_t piece) {
    struct vlm_gguf_writer *w;
    struct vlm_error err;
    int rc = vlm_gguf_writer_open(path, &w, &err);
    if (rc != VLM_OK) return rc;
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    int64_t i64 = -5000000000LL;
    uint64_t u64 = 18000000000000000000ULL;
    double f64 = 3.141592653589793;
    int32_t iarr[5] = {-1, 2, -3, 4, 2147483647};
    float farr[3] = {0.5f, -1.25f, 1e30f};
    uint8_t barr[4] = {1, 0, 1, 1};
    const char *sarr[4] = {"a", "", "\xc4\xa0token", "<|im_start|>"};
    if (align != 32) rc = vlm_gguf_write_u32(w, "general.alignment", align, &err);
    if (!rc) rc = vlm_gguf_write_cstr(w, "general.architecture", "llama", &err);
    if (!rc) rc = vlm_gguf_write_kv(w, "t.u8", VLM_GGUF_U8, &u8, &err);
    if (!rc) rc = vlm_gguf_write_kv(w, "t.i8", VLM_GGUF_I8, &i8, &err);
    if (!rc) rc = vlm_gguf_write_kv(w, "t.u16", VLM_GGUF_U16, &u16, &err);
    if (!rc) rc = vlm_gguf_write_kv(w, "t.i16", VLM_GGUF_I16, &i16, &err);
    if (!rc) rc = vlm_gguf_write_u32(w, "t.u32", 4000000000u, &err);
    if (!rc) rc = vlm_gguf_write_i32(w, "t.i32", -2000000000, &err);
    if (!rc) rc = vlm_gguf_write_f32(w, "t.f32", 1e-5f, &err);
    if (!rc) rc = vlm_gguf_write_bool(w, "t.bool", 1, &err);
    if (!rc) rc = vlm_gguf_write_kv(w, "t.u64", VLM_GGUF_U64, &u64, &err);
    if (!rc) rc = vlm_gguf_write_kv(w, "t.i64", VLM_GGUF_I64, &i64, &err);
    if (!rc) rc = vlm_gguf_write_kv(w, "t.f64", VLM_GGUF_F64, &f64, &err);
    if (!rc) rc = vlm_gguf_write_str(w, "t.str", "hello\0world", 11, &err);
    if (!rc) rc = vlm_gguf_write_arr(w, "t.arr_i32", VLM_GGUF_I32, iarr, 5, &err);
    if (!rc) rc = vlm_gguf_write_arr(w, "t.arr_f32", VLM_GGUF_F32, farr, 3, &err);
    if (!rc) rc = vlm_gguf_write_arr(w, "t.arr_bool", VLM_GGUF_BOOL, barr, 4, &err);
    if (!rc) rc = vlm_gguf_write_arr(w, "t.arr_empty", VLM_GGUF_U8, NULL, 0, &err);
    if (!rc) rc = vlm_gguf_write_arr_str(w, "t.arr_str", sarr, NULL, 4, &err);
    for (size_t i = 0; !rc && i < NT; i++) {
        int nd;
        int64_t ne[4];
        char name[32];
        shape_of(i, &nd, ne);
        snprintf(name, sizeof name, "blk.%zu.w", i);
        rc = vlm_gguf_write_tensor_info(w, name, types[i], nd, ne, &err);
    }
    if (!rc) rc = vlm_gguf_writer_begin_data(w, &err);
    for (size_t i = 0; !rc && i < NT; i++) {
        size_t n = bytes_of(i);
        uint8_t *b = vlm_malloc(n);
        for (size_t k = 0; k < n; k++) b[k] = pat(i, k);
        for (size_t k = 0; !rc && k < n; k += piece) rc = vlm_gguf_writer_data(w, b + k, n - k < piece ? n - k : piece, &err);
        vlm_free(b);
    }
    if (!rc) rc = vlm_gguf_writer_finish(w, &err);
    if (rc) fprintf(stderr, "write: %s\n", err.msg);
    vlm_gguf_writer_free(w);
    return rc;
}

static void check_file(uint32_t align) {
    struct vlm_mmap m;
    struct vlm_error err;
    struct vlm_gguf g;
    CHECK(vlm_mmap_file(path, &m, &err) == VLM_OK);
    int rc = vlm_gguf_parse(m.data, m.size, path, &g, &err);
    CHECK_MSG(rc == VLM_OK, "%s", err.msg);
    if (rc != VLM_OK) {
        vlm_munmap(&m);
        return;
    }
    CHECK_EQ_INT(g.version, 3);
    CHECK_EQ_INT(g.alignment, align);
    CHECK_EQ_INT(g.data_offset % align, 0);
    CHECK_EQ_STR(g.arch, "llama");
    long long v;
    double d;
    int b;
    CHECK(vlm_gguf_get_int(&g, "t.u8", 0, 0, 1000, &v, &err) == VLM_OK && v == 200);
    CHECK(vlm_gguf_get_int(&g, "t.i8", 0, -1000, 1000, &v, &err) == VLM_OK && v == -100);
    CHECK(vlm_gguf_get_int(&g, "t.u16", 0, 0, 100000, &v, &err) == VLM_OK && v == 60000);
    CHECK(vlm_gguf_get_int(&g, "t.i16", 0, -100000, 0, &v, &err) == VLM_OK && v == -30000);
    CHECK(vlm_gguf_get_int(&g, "t.u32", 0, 0, 5000000000LL, &v, &err) == VLM_OK && v == 4000000000LL);
    CHECK(vlm_gguf_get_int(&g, "t.i32", 0, -3000000000LL, 0, &v, &err) == VLM_OK && v == -2000000000LL);
    CHECK(vlm_gguf_get_int(&g, "t.i64", 0, -6000000000LL, 0, &v, &err) == VLM_OK && v == -5000000000LL);
    CHECK(vlm_gguf_find(&g, "t.u64") && vlm_gguf_find(&g, "t.u64")->v.u == 18000000000000000000ULL);
    CHECK(vlm_gguf_get_num(&g, "t.f32", 0, 0, 1, &d, &err) == VLM_OK && d == (double)1e-5f);
    CHECK(vlm_gguf_get_num(&g, "t.f64", 0, 0, 10, &d, &err) == VLM_OK && d == 3.141592653589793);
    CHECK(vlm_gguf_get_bool(&g, "t.bool", 0, &b, &err) == VLM_OK && b == 1);
    const struct vlm_gguf_kv *s = vlm_gguf_find(&g, "t.str");
    CHECK(s && s->type == VLM_GGUF_STRING && s->n == 11 && !memcmp(s->str, "hello\0world", 11));
    const struct vlm_gguf_kv *a = NULL;
    CHECK(vlm_gguf_get_arr(&g, "t.arr_i32", VLM_GGUF_I64, &a, &err) == VLM_OK && a && a->n == 5);
    if (a) CHECK(vlm_gguf_arr_int(a, 0) == -1 && vlm_gguf_arr_int(a, 4) == 2147483647);
    CHECK(vlm_gguf_get_arr(&g, "t.arr_f32", VLM_GGUF_F64, &a, &err) == VLM_OK && a && a->n == 3);
    if (a) CHECK(vlm_gguf_arr_num(a, 1) == -1.25 && vlm_gguf_arr_num(a, 2) == (double)1e30f);
    a = vlm_gguf_find(&g, "t.arr_bool");
    CHECK(a && a->arr_type == VLM_GGUF_BOOL && a->n == 4 && a->arr[0] == 1 && a->arr[1] == 0);
    a = vlm_gguf_find(&g, "t.arr_empty");
    CHECK(a && a->arr_type == VLM_GGUF_U8 && a->n == 0);
    a = vlm_gguf_find(&g, "t.arr_str");
    CHECK(a && a->arr_type == VLM_GGUF_STRING && a->n == 4);
    if (a) {
        size_t pos = a->offset, len;
        const char *str;
        const char *want[4] = {"a", "", "\xc4\xa0token", "<|im_start|>"};
        for (int i = 0; i < 4; i++) {
            vlm_gguf_arr_str(&g, &pos, &str, &len);
            CHECK(len == strlen(want[i]) && !memcmp(str, want[i], len));
        }
    }
    CHECK_EQ_INT(g.n_tensors, NT);
    for (size_t i = 0; i < NT && i < g.n_tensors; i++) {
        const struct vlm_gguf_tensor *t = &g.t[i];
        int nd;
        int64_t ne[4];
        shape_of(i, &nd, ne);
        CHECK_EQ_INT(t->dtype, types[i]);
        CHECK_EQ_INT(t->n_dims, nd);
        CHECK(t->ne[0] == ne[0] && t->ne[1] == ne[1]);
        CHECK_EQ_INT(t->offset % align, 0);
        CHECK_EQ_INT(t->nbytes, bytes_of(i));
        int ok = 1;
        for (size_t k = 0; k < t->nbytes; k++) ok &= t->data[k] == pat(i, k);
        CHECK_MSG(ok, "tensor %zu bytes", i);
        /* padding after each tensor is zero */
        size_t end = g.data_offset + t->offset + t->nbytes;
        size_t next = i + 1 < g.n_tensors ? g.data_offset + g.t[i + 1].offset : end;
        for (size_t k = end; k < next; k++) ok &= m.data[k] == 0;
        CHECK_MSG(ok, "padding after tensor %zu", i);
    }
    vlm_gguf_free(&g);
    vlm_munmap(&m);
}

static void check_misuse(void) {
    struct vlm_gguf_writer *w;
    struct vlm_error err;
    int64_t ne[2] = {32, 2};
    uint8_t buf[200] = {0};
    remove(path);
    CHECK(vlm_gguf_writer_open(path, &w, &err) == VLM_OK);
    CHECK(vlm_gguf_write_u32(w, "a", 1, &err) == VLM_OK);
    CHECK(vlm_gguf_write_u32(w, "a", 2, &err) == VLM_E_INVALID);
    CHECK(vlm_gguf_write_u32(w, "", 2, &err) == VLM_E_INVALID);
    CHECK(vlm_gguf_write_u32(w, "general.alignment", 48, &err) == VLM_E_INVALID);
    CHECK(vlm_gguf_write_tensor_info(w, "x", VLM_DT_Q4_K, 2, ne, &err) == VLM_E_INVALID);   /* 32 % 256 */
    CHECK(vlm_gguf_write_tensor_info(w, "x", VLM_DT_Q8_0, 2, ne, &err) == VLM_OK);
    CHECK(vlm_gguf_write_tensor_info(w, "x", VLM_DT_Q8_0, 2, ne, &err) == VLM_E_INVALID);
    CHECK(vlm_gguf_write_u32(w, "general.alignment", 64, &err) == VLM_E_INVALID);          /* after a tensor */
    CHECK(vlm_gguf_writer_begin_data(w, &err) == VLM_OK);
    CHECK(vlm_gguf_write_u32(w, "b", 1, &err) == VLM_E_INVALID);
    CHECK(vlm_gguf_writer_data(w, buf, 60, &err) == VLM_OK);
    CHECK(vlm_gguf_writer_finish(w, &err) == VLM_E_INVALID);   /* 60 of 68 bytes */
    CHECK(strstr(err.msg, "60 of its 68") != NULL);
    vlm_gguf_writer_free(w);
    CHECK(!vlm_file_exists(path));
    char tmp[300];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    CHECK(!vlm_file_exists(tmp));
    CHECK(vlm_gguf_writer_open(path, &w, &err) == VLM_OK);
    CHECK(vlm_gguf_write_tensor_info(w, "x", VLM_DT_Q8_0, 2, ne, &err) == VLM_OK);
    CHECK(vlm_gguf_writer_begin_data(w, &err) == VLM_OK);
    CHECK(vlm_gguf_writer_data(w, buf, 69, &err) == VLM_E_INVALID);
    vlm_gguf_writer_free(w);
    CHECK(!vlm_file_exists(path));
    CHECK(vlm_gguf_writer_open("/nonexistent-dir/x.gguf", &w, &err) == VLM_E_IO);
}

int main(void) {
    snprintf(path, sizeof path, "/tmp/vlm-test-gguf-write-%d.gguf", (int)getpid());
    const uint32_t aligns[] = {32, 1, 64, 4096};
    const size_t pieces[] = {1 << 20, 1, 7, 4096};
    for (int i = 0; i < 4; i++) {
        CHECK(write_file(aligns[i], pieces[i]) == VLM_OK);
        check_file(aligns[i]);
    }
    check_misuse();
    remove(path);
    printf("%d passed, %d failed\n", test_pass, test_fail);
    return test_fail != 0;
}
