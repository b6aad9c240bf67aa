/* fuzz_template.c — libFuzzer target for the chat-template parser and renderer: arbitrary
 * template text, rendered against a fixed conversation under tight limits. */
#include "text/chat_template.h"
#include "util/alloc.h"
#include "util/error.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static const char *const context_json =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"You are helpful.\"},"
    "{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\", \"text\": \"What is this? \\u00e9\"}]},"
    "{\"role\": \"assistant\", \"content\": \"<think>\\nhm\\n</think>\\n\\nA cat.\", \"tool_calls\": "
    "[{\"function\": {\"name\": \"f\", \"arguments\": {\"a\": 1, \"b\": [true, null, 2.5]}}}]},"
    "{\"role\": \"user\", \"content\": \"  thanks  \"}],"
    " \"add_generation_prompt\": true, \"tools\": null, \"documents\": null,"
    " \"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"date_string\": \"26 Jul 2024\"}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static json_t *ctx;
    if (!ctx) ctx = json_loads(context_json, 0, NULL);
    struct vlm_template *t;
    struct vlm_error err;
    if (vlm_template_parse((const char *)data, size, &t, &err) != VLM_OK) return 0;
    struct vlm_template_limits lim = vlm_template_default_limits();
    lim.max_steps = 200000;
    lim.max_depth = 32;
    lim.max_output = 1 << 20;
    lim.max_memory = 64u << 20;
    lim.max_millis = 2000;
    char *out = NULL;
    size_t len = 0;
    if (vlm_template_render(t, ctx, &lim, &out, &len, &err) == VLM_OK) {
        if (strlen(out) > len) __builtin_trap();   /* the length covers the whole text */
        vlm_free(out);
    }
    vlm_template_free(t);
    return 0;
}
