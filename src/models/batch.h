/* batch.h — one decode step's input rows (tokens of several sequences), the unit of
 * continuous batching; shared by the engine (vlm_ctx_decode) and the families' forward. */
#ifndef VLM_MODELS_BATCH_H
#define VLM_MODELS_BATCH_H

#include <stdint.h>

struct vlm_batch {
    int             n_tokens;
    const int32_t  *token;        /* (n_tokens) token ids; ignored for rows with an embd row */
    const float *const *embd;     /* (n_tokens) NULL or a (d_model) row per token; may be NULL */
    const int32_t  *pos;          /* (n_tokens) */
    const int32_t  *seq_id;       /* (n_tokens) in [0, n_seq_max) */
    const int8_t   *want_logits;  /* (n_tokens) or NULL = last row of each sequence */
};

#endif
