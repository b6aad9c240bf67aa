/* perplexity.h — llama-perplexity's measurement over a context (`vlm perplexity`). */
#ifndef VLM_ENGINE_PERPLEXITY_H
#define VLM_ENGINE_PERPLEXITY_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

struct vlm_error;

struct vlm_ppl_result {
    int    n_chunks;     /* chunks run */
    long   n_scored;     /* tokens scored: n_chunks * (n_ctx - n_ctx/2 - 1) */
    double ppl;          /* exp(mean negative log-likelihood) */
    double ppl_err;      /* llama-perplexity's "+/-" */
};

/* Called after each chunk with its index, the chunk count and the perplexity so far (the
 * figure llama-perplexity prints as [i]PPL). */
typedef void (*vlm_ppl_chunk_fn)(int chunk, int n_chunk, double ppl_so_far, void *user);

/* Perplexity of tokens[0..n_tokens) (the text tokenized with BOS, as llama-perplexity does)
 * in chunks of n_ctx tokens (floor(n_tokens / n_ctx) of them; at least two chunks' worth of
 * tokens needed), each chunk decoded alone from position 0 with its first token replaced by
 * bos (bos < 0: kept), scoring the tokens after positions n_ctx/2 .. n_ctx-2. ctx needs
 * sequence 0 free, n_ctx and n_batch_max of at least n_ctx. */
int vlm_perplexity(struct vlm_ctx *ctx, const int32_t *tokens, size_t n_tokens, int n_ctx, int32_t bos,
                   vlm_ppl_chunk_fn on_chunk, void *user, struct vlm_ppl_result *out, struct vlm_error *err);

#endif
