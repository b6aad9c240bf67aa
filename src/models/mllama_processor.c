/* mllama_processor.c — Llama 3.2 Vision's processor: the cross-attention spans of the
 * <|image|> tokens (transformers' get_cross_attention_token_mask and its dense form). */
#include "models/mllama_processor.h"

int vlm_mllama_cross_attention_spans(const int32_t *ids, int n, int32_t image_token_id,
                                     struct vlm_mllama_span *spans, int max_spans) {
    int count = 0;
    if (!ids || n <= 0) return 0;
    for (int i = 0; i < n;) {
        if (ids[i] != image_token_id) { i++; continue; }
        /* a group of consecutive image tokens [i, g) all attend from their own token up to
         * the next image token after the group, or to the prompt's end */
        int g = i;
        while (g < n && ids[g] == image_token_id) g++;
        int end = g;
        while (end < n && ids[end] != image_token_id) end++;
        for (int k = i; k < g; k++, count++)
            if (spans && count < max_spans) spans[count] = (struct vlm_mllama_span){k, end};
        i = g;
    }
    return count;
}
