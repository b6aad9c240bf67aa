/* fuzz_safetensors.c — libFuzzer target for the safetensors reader: arbitrary bytes as a whole
 * file (header length, JSON header, offsets, shapes, dtypes); every tensor view handed out must
 * lie inside the input, which the target re-checks by reading each view's bytes. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "formats/safetensors.h"
#include "formats/weights.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct vlm_weights w;
    vlm_weights_init(&w);
    struct vlm_error err;
    if (vlm_safetensors_parse(data, size, "fuzz.safetensors", &w, -1, &err) == VLM_OK) {
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < w.n; i++) {
            const uint8_t *p = w.w[i].t.data;
            if (w.w[i].t.nbytes) sink ^= p[0] ^ p[w.w[i].t.nbytes - 1];   /* ASan flags a view past the input */
        }
        (void)sink;
    }
    vlm_weights_free(&w);
    return 0;
}
