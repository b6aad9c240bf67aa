/* tok_fuzz.h — shared by the tokenizer fuzz targets: encode, decode and stream-decode a text
 * with a loaded tokenizer and trap if the results disagree or an id is out of range. */
#ifndef VLM_FUZZ_TOK_FUZZ_H
#define VLM_FUZZ_TOK_FUZZ_H

#include <string.h>

#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"

static void tok_fuzz_check(const struct vlm_tokenizer *t, const char *text, size_t len, int flags) {
    struct vlm_error err;
    int32_t *ids = NULL;
    size_t n = 0;
    if (vlm_tokenize(t, text, len, flags, &ids, &n, &err) != VLM_OK) return;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || (size_t)ids[i] >= vlm_tokenizer_vocab_size(t)) __builtin_trap();
    char *full = NULL;
    size_t full_len = 0;
    int skip = flags & 1;
    if (vlm_detokenize(t, ids, n, skip, &full, &full_len, &err) == VLM_OK) {
        struct vlm_detok *d = NULL;
        struct vlm_buf all = {0};
        int ok = vlm_detok_new(t, skip, &d) == VLM_OK;
        for (size_t i = 0; ok && i <= n; i++) {
            char *s = NULL;
            size_t l = 0;
            ok = (i < n ? vlm_detok_push(d, ids[i], &s, &l, &err) : vlm_detok_flush(d, &s, &l, &err)) == VLM_OK;
            if (ok && vlm_buf_append(&all, s, l)) ok = 0;
            vlm_free(s);
        }
        if (ok && (all.len != full_len || (full_len && memcmp(all.data, full, full_len)))) __builtin_trap();
        vlm_buf_free(&all);
        vlm_detok_free(d);
    }
    vlm_free(full);
    vlm_free(ids);
}

#endif
