/* test_base64.c — strict base64 (padding, alphabet, caps before decoding) and SHA-256 digests. */
#include "test.h"
#include "util/alloc.h"
#include "util/base64.h"
#include "util/error.h"
#include "util/sha256.h"

static int dec(const char *s, size_t cap, char *out, size_t outsz) {
    struct vlm_error e;
    uint8_t *b = NULL;
    size_t n = 0;
    int rc = vlm_base64_decode(s, strlen(s), cap, &b, &n, &e);
    if (rc == VLM_OK && out) {
        size_t k = n < outsz - 1 ? n : outsz - 1;
        memcpy(out, b, k);
        out[k] = 0;
    }
    vlm_free(b);
    return rc;
}

static void test_decode(void) {
    char o[64];
    CHECK_EQ_INT(dec("", 100, o, sizeof o), VLM_OK);
    CHECK_EQ_STR(o, "");
    CHECK_EQ_INT(dec("Zg==", 100, o, sizeof o), VLM_OK);
    CHECK_EQ_STR(o, "f");
    CHECK_EQ_INT(dec("Zm8=", 100, o, sizeof o), VLM_OK);
    CHECK_EQ_STR(o, "fo");
    CHECK_EQ_INT(dec("Zm9vYmFy", 100, o, sizeof o), VLM_OK);
    CHECK_EQ_STR(o, "foobar");
    CHECK_EQ_INT(dec("+/+/", 100, NULL, 0), VLM_OK);
    /* malformed */
    CHECK_EQ_INT(dec("Zg=", 100, o, sizeof o), VLM_E_FORMAT);       /* length */
    CHECK_EQ_INT(dec("Zg", 100, o, sizeof o), VLM_E_FORMAT);        /* missing padding */
    CHECK_EQ_INT(dec("Z===", 100, o, sizeof o), VLM_E_FORMAT);      /* too much padding */
    CHECK_EQ_INT(dec("Zg==Zg==", 100, o, sizeof o), VLM_E_FORMAT);  /* padding mid-text */
    CHECK_EQ_INT(dec("Z=g=", 100, o, sizeof o), VLM_E_FORMAT);      /* data after '=' */
    CHECK_EQ_INT(dec("Zm9v YmFy", 100, o, sizeof o), VLM_E_FORMAT); /* whitespace */
    CHECK_EQ_INT(dec("Zm9v\nYmFy", 100, o, sizeof o), VLM_E_FORMAT);
    CHECK_EQ_INT(dec("Zm9-", 100, o, sizeof o), VLM_E_FORMAT);      /* url-safe alphabet */
    CHECK_EQ_INT(dec("Zm9_", 100, o, sizeof o), VLM_E_FORMAT);
    CHECK_EQ_INT(dec("Zm9\x80", 100, o, sizeof o), VLM_E_FORMAT);
    /* the cap is checked from the length, before decoding: an invalid body over the cap is
       TOO_LARGE, so no work is done on it */
    CHECK_EQ_INT(dec("Zm9vYmFy", 5, o, sizeof o), VLM_E_TOO_LARGE);
    CHECK_EQ_INT(dec("Zm9vYmFy", 6, o, sizeof o), VLM_OK);
    CHECK_EQ_INT(dec("!!!!!!!!", 5, o, sizeof o), VLM_E_TOO_LARGE);
    struct vlm_error e;
    uint8_t *b;
    size_t n;
    CHECK_EQ_INT(vlm_base64_decode("a\x01" "bc", 4, 10, &b, &n, &e), VLM_E_FORMAT);
    CHECK(strstr(e.msg, "\x01") == NULL);
    CHECK(b == NULL);
    /* allocation failure is an error, not a crash */
    vlm_alloc_fail_after(1);
    CHECK_EQ_INT(dec("Zm9vYmFy", 100, o, sizeof o), VLM_E_NOMEM);
    vlm_alloc_fail_after(0);
}

static void test_roundtrip(void) {
    uint8_t data[256];
    for (int i = 0; i < 256; i++) data[i] = (uint8_t)(i * 37 + 11);
    for (size_t len = 0; len <= 256; len += 1 + len / 7) {
        char *s;
        size_t sl;
        CHECK_EQ_INT(vlm_base64_encode(data, len, &s, &sl, NULL), VLM_OK);
        CHECK_EQ_INT(sl, (len + 2) / 3 * 4);
        CHECK_EQ_INT(vlm_base64_decoded_size(s, sl), len);
        uint8_t *b;
        size_t n;
        CHECK_EQ_INT(vlm_base64_decode(s, sl, len, &b, &n, NULL), VLM_OK);
        CHECK(n == len && (len == 0 || memcmp(b, data, len) == 0));
        vlm_free(b);
        vlm_free(s);
    }
}

static void test_sha256(void) {
    uint8_t d[VLM_SHA256_LEN];
    char hex[65];
    CHECK_EQ_INT(vlm_sha256("", 0, d), VLM_OK);
    vlm_sha256_hex(d, hex);
    CHECK_EQ_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK_EQ_INT(vlm_sha256("abc", 3, d), VLM_OK);
    vlm_sha256_hex(d, hex);
    CHECK_EQ_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

int main(void) {
    test_decode();
    test_roundtrip();
    test_sha256();
    TEST_MAIN_END();
}
