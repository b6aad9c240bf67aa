/* batch.h — one decode step's input rows (tokens of several sequences), the unit of
 * continuous batching; shared by the engine (vlm_ctx_decode) and the families' forward. */
#ifndef VLM_MODELS_BATCH_H
#define VLM_MODELS_BATCH_H

#include <stdint.h>

struct vlm_image_input;

struct vlm_batch {
    int             n_tokens;
    const int32_t  *token;        /* (n_tokens) token ids; ignored for rows with an embd row */
    const float *const *embd;     /* (n_tokens) NULL or a (d_model) row per token; may be NULL */
    const int32_t  *pos;          /* (n_tokens) */
    const int32_t  *seq_id;       /* (n_tokens) in [0, n_seq_max) */
    const int8_t   *want_logits;  /* (n_tokens) or NULL = last row of each sequence */
    /* (n_tokens) or NULL: for a row with an image embedding, the processed image it belongs to
     * (NULL for text rows). Families whose positions follow an image's shape read it (Qwen2-VL's
     * M-RoPE takes grid_thw); the images must live while their sequence does, since a
     * preempted sequence is prefilled again. */
    const struct vlm_image_input *const *image;
};

#endif
