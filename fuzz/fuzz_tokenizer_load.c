/* fuzz_tokenizer_load.c — libFuzzer target for the tokenizer.json loader: arbitrary bytes as
 * tokenizer.json (and, after a NUL byte, as tokenizer_config.json); what loads is then used
 * to encode and decode a fixed text. */
#include <stddef.h>
#include <stdint.h>

#include "tok_fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char text[] = "Hello world! <s> <|im_start|>x 12345 caf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd \xff\n\n  ab";
    struct vlm_tokenizer *t = NULL;
    struct vlm_error err;
    const uint8_t *nul = memchr(data, 0, size);
    size_t jl = nul ? (size_t)(nul - data) : size;
    const char *cfg = nul ? (const char *)nul + 1 : NULL;
    if (vlm_tokenizer_load_mem((const char *)data, jl, cfg, nul ? size - jl - 1 : 0, &t, &err) != VLM_OK) return 0;
    tok_fuzz_check(t, text, sizeof text - 1, VLM_TOK_ADD_SPECIAL | VLM_TOK_PARSE_SPECIAL);
    tok_fuzz_check(t, text, sizeof text - 1, 0);
    vlm_tokenizer_free(t);
    return 0;
}
