/* image_fixture.h — helpers shared by test_image.c and test_processor.c: reading fixture
 * files, the xz-compressed manifest written by scripts/make_image_fixtures.py, SHA-256. */
#ifndef VLM_TESTS_IMAGE_FIXTURE_H
#define VLM_TESTS_IMAGE_FIXTURE_H

#include "test.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#include <jansson.h>
#include <lzma.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Reads tests/fixtures/image/<name>; NULL on failure. */
static inline uint8_t *fx_read(const char *name, size_t *len) {
    char rel[512];
    char *data = NULL;
    struct vlm_error e = {0, ""};
    snprintf(rel, sizeof rel, "tests/fixtures/image/%s", name);
    if (vlm_read_file(test_path(rel), 64u << 20, &data, len, &e) != VLM_OK) {
        fprintf(stderr, "cannot read %s: %s\n", rel, e.msg);
        return NULL;
    }
    return (uint8_t *)data;
}

/* Decompresses an .xz fixture into a malloc'd buffer. */
static inline uint8_t *fx_read_xz(const char *name, size_t *out_len) {
    size_t n;
    uint8_t *in = fx_read(name, &n);
    if (!in) return NULL;
    size_t cap = 64u << 20, pos = 0, ipos = 0;
    uint8_t *out = malloc(cap);
    uint64_t memlimit = UINT64_MAX;
    if (!out || lzma_stream_buffer_decode(&memlimit, 0, NULL, in, &ipos, n, out, &pos, cap) != LZMA_OK) {
        fprintf(stderr, "cannot decompress %s\n", name);
        free(out);
        out = NULL;
    }
    vlm_free(in);
    *out_len = pos;
    return out;
}

static inline json_t *fx_manifest(void) {
    size_t n;
    uint8_t *t = fx_read_xz("manifest.json.xz", &n);
    if (!t) return NULL;
    json_t *j = json_loadb((const char *)t, n, 0, NULL);
    free(t);
    return j;
}

static inline void fx_sha256_hex(const void *p, size_t n, char hex[65]) {
    unsigned char md[32];
    unsigned int ml = 0;
    EVP_Digest(p, n, md, &ml, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

static inline const char *fx_str(json_t *o, const char *k) {
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}
static inline int fx_int(json_t *o, const char *k) { return (int)json_integer_value(json_object_get(o, k)); }

#endif
