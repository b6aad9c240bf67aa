/* fuzz_webp.c — libFuzzer target for the WEBP decoder entry (vlm_image_decode_as). */
#include "image_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return image_fuzz_one(VLM_IMAGE_WEBP, data, size);
}
