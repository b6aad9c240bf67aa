/* fuzz_dataurl.c — data: URLs and strict base64: decode must never read or write out of
 * bounds, must honour the cap, and a successful decode must round-trip through the encoder. */
#include "server/media.h"
#include "util/alloc.h"
#include "util/base64.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *out = NULL;
    size_t n = 0;
    size_t cap = size ? (size_t)data[0] * 64 : 0;
    if (vlm_media_load_data_url((const char *)data, size, cap, &out, &n, NULL) == 0) {
        if (n > cap) abort();
        vlm_free(out);
    }
    out = NULL;
    if (vlm_base64_decode((const char *)data, size, size, &out, &n, NULL) == 0) {
        char *enc = NULL;
        size_t el = 0;
        if (vlm_base64_encode(out, n, &enc, &el, NULL) == 0) {
            /* strict decoding accepts only canonical text except for the unused low bits */
            if (el != size) abort();
            vlm_free(enc);
        }
        vlm_free(out);
    }
    return 0;
}
