/* stop.c — stop conditions: EOS ids, stop strings found in the decoded text (earliest match
 * wins; the text is cut before it), and the max-new-tokens limit. */
#include "engine/stop.h"

#include <string.h>

const char *vlm_finish_reason(enum vlm_finish f) {
    return f == VLM_FINISH_STOP ? "stop" : f == VLM_FINISH_LENGTH ? "length" : NULL;
}

enum vlm_finish vlm_stop_token(const struct vlm_stop *s, int32_t id, int n_generated) {
    if (!s->ignore_eos)
        for (int i = 0; i < s->n_eos; i++)
            if (s->eos_ids[i] == id) return VLM_FINISH_STOP;
    if (s->max_new_tokens > 0 && n_generated >= s->max_new_tokens) return VLM_FINISH_LENGTH;
    return VLM_FINISH_NONE;
}

long vlm_stop_find(const struct vlm_stop *s, const char *text, size_t len, size_t from) {
    long best = -1;
    for (int i = 0; i < s->n_strings; i++) {
        size_t n = strlen(s->strings[i]);
        if (!n || n > len) continue;
        /* a new match must end after `from`: start at from - n + 1 or later */
        size_t start = from >= n ? from - n + 1 : 0;
        const char *hit = memmem(text + start, len - start, s->strings[i], n);
        if (hit && (best < 0 || hit - text < best)) best = hit - text;
    }
    return best;
}

size_t vlm_stop_holdback(const struct vlm_stop *s, const char *text, size_t len) {
    size_t hold = 0;
    for (int i = 0; i < s->n_strings; i++) {
        size_t n = strlen(s->strings[i]);
        /* longest proper prefix of the stop string that ends the text */
        for (size_t k = n > 1 ? n - 1 : 0; k > hold; k--)
            if (k <= len && !memcmp(text + len - k, s->strings[i], k)) { hold = k; break; }
    }
    return hold;
}
