/* image_fuzz.h — the body every image fuzz target shares: decode with small caps (so the
 * fuzzer explores parsing, not huge allocations) and check the result's invariants. */
#ifndef VLM_FUZZ_IMAGE_FUZZ_H
#define VLM_FUZZ_IMAGE_FUZZ_H

#include "image/image.h"
#include "util/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline int image_fuzz_one(enum vlm_image_format fmt, const uint8_t *data, size_t size) {
    struct vlm_image_limits l = vlm_image_default_limits();
    struct vlm_image img;
    struct vlm_error err = {0, ""};
    l.max_pixels = 1u << 22;
    l.max_frames = 64;
    l.max_jpeg_scans = 64;
    l.alpha_mode = size & 1 ? VLM_ALPHA_DROP : VLM_ALPHA_COMPOSITE;
    int rc = fmt == VLM_IMAGE_UNKNOWN ? vlm_image_decode(data, size, &l, &img, &err)
                                      : vlm_image_decode_as(fmt, data, size, &l, &img, &err);
    if (rc == VLM_OK) {
        /* Touch every byte so ASan sees any short buffer; sizes must be sane. */
        if (img.width < 1 || img.height < 1 || (uint64_t)img.width * img.height > l.max_pixels) abort();
        volatile unsigned sum = 0;
        for (size_t i = 0, n = (size_t)img.width * img.height * 3; i < n; i++) sum += img.rgb[i];
        (void)sum;
    } else if (img.rgb || err.msg[0] == 0) {
        abort();
    }
    vlm_image_free(&img);
    return 0;
}

#endif
