/* fuzz_image.c — libFuzzer target for vlm_image_decode: format sniffing + every decoder. */
#include "image_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return image_fuzz_one(VLM_IMAGE_UNKNOWN, data, size);
}
