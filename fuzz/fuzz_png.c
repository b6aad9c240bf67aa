/* fuzz_png.c — libFuzzer target for the PNG decoder entry (vlm_image_decode_as). */
#include "image_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    return image_fuzz_one(VLM_IMAGE_PNG, data, size);
}
