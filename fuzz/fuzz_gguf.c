/* fuzz_gguf.c — libFuzzer target for the GGUF reader and what reads its metadata: arbitrary
 * bytes as a whole file; on success every tensor view and string array is walked (ASan flags
 * any byte outside the input), the Idefics3 name map is applied (Q/K un-permutation included),
 * the Gemma 3 config is built from the metadata and the tokenizer too. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "formats/gguf.h"
#include "formats/weights.h"
#include "models/gemma3_gguf.h"
#include "models/idefics3_gguf.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    struct vlm_gguf g;
    struct vlm_error err;
    if (vlm_gguf_parse(data, size, "fuzz.gguf", &g, &err) != VLM_OK) return 0;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < g.n_tensors; i++)
        if (g.t[i].nbytes) sink ^= g.t[i].data[0] ^ g.t[i].data[g.t[i].nbytes - 1];
    for (size_t i = 0; i < g.n_kv; i++) {
        const struct vlm_gguf_kv *kv = &g.kv[i];
        if (kv->type != VLM_GGUF_ARRAY) continue;
        if (kv->arr_type == VLM_GGUF_STRING) {
            size_t pos = kv->offset;
            for (uint64_t k = 0; k < kv->n; k++) {
                const char *s;
                size_t len;
                vlm_gguf_arr_str(&g, &pos, &s, &len);
                if (len) sink ^= (uint8_t)s[len - 1];
            }
        } else if (kv->n) {
            sink ^= (uint8_t)(vlm_gguf_arr_num(kv, kv->n - 1) > 0);
        }
    }
    struct vlm_weights w;
    vlm_weights_init(&w);
    int nh = 1, nkv = 1;
    if (vlm_gguf_idefics3.heads(&g, &nh, &nkv, &err) == VLM_OK) {
        vlm_gguf_add_tensors(&w, &g, -1, vlm_gguf_idefics3.text_names, nh, nkv, NULL, &err);
        vlm_gguf_add_tensors(&w, &g, -1, vlm_gguf_idefics3.vision_names, nh, nkv, NULL, &err);
    }
    vlm_weights_free(&w);
    json_t *cfg = json_object();
    if (cfg) vlm_gguf_gemma3_text_config(&g, cfg, &err);
    json_decref(cfg);
    struct vlm_tokenizer *t = NULL;
    if (vlm_tokenizer_from_gguf(&g, &t, &err) == VLM_OK) {
        int32_t *ids = NULL;
        size_t n = 0;
        if (vlm_tokenize(t, "Hello 123 <image>", 17, VLM_TOK_ADD_SPECIAL | VLM_TOK_PARSE_SPECIAL, &ids, &n, &err) == VLM_OK)
            vlm_free(ids);
        vlm_tokenizer_free(t);
    }
    (void)sink;
    vlm_gguf_free(&g);
    return 0;
}
