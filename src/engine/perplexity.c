/* perplexity.c — perplexity of a token stream as llama.cpp's llama-perplexity computes it
 * (tools/perplexity/perplexity.cpp, default mode): the tokens cut into chunks of n_ctx, each
 * chunk run from an empty cache with its first token replaced by BOS, and only the second
 * half scored: the logits at positions n_ctx/2 .. n_ctx-2 predict the tokens after them. */
#include "engine/perplexity.h"

#include <math.h>
#include <string.h>

#include "models/batch.h"
#include "util/alloc.h"
#include "util/error.h"

/* -log softmax(logits)[tok], as llama-perplexity: f32 max and exp, a double sum. */
static double nll_of(const float *logits, int n_vocab, int32_t tok) {
    float mx = logits[0];
    for (int i = 1; i < n_vocab; i++) mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += expf(logits[i] - mx);
    return -((double)(logits[tok] - mx) - log(sum));
}

int vlm_perplexity(struct vlm_ctx *ctx, const int32_t *tokens, size_t n_tokens, int n_ctx, int32_t bos,
                   vlm_ppl_chunk_fn on_chunk, void *user, struct vlm_ppl_result *out, struct vlm_error *err) {
    memset(out, 0, sizeof *out);
    const struct vlm_model_info *mi = vlm_model_get_info(vlm_ctx_model(ctx));
    if (n_ctx < 4 || n_ctx > vlm_ctx_n_ctx(ctx))
        return vlm_error_set(err, VLM_E_INVALID, "perplexity: a context of %d tokens (the context allows 4 to %d)", n_ctx, vlm_ctx_n_ctx(ctx));
    if (n_tokens < 2 * (size_t)n_ctx)
        return vlm_error_set(err, VLM_E_INVALID, "perplexity: the text tokenizes to %zu tokens; a context of %d needs at least %d",
                             n_tokens, n_ctx, 2 * n_ctx);
    for (size_t i = 0; i < n_tokens; i++)
        if (tokens[i] < 0 || tokens[i] >= mi->n_vocab)
            return vlm_error_set(err, VLM_E_INVALID, "perplexity: token %zu (id %d) is outside the vocabulary", i, (int)tokens[i]);
    int n_chunk = (int)(n_tokens / (size_t)n_ctx), first = n_ctx / 2, rc = VLM_OK;
    int32_t *tok = vlm_malloc(sizeof(int32_t) * (size_t)n_ctx), *pos = vlm_malloc(sizeof(int32_t) * (size_t)n_ctx);
    int32_t *seq = vlm_calloc((size_t)n_ctx, sizeof(int32_t));
    int8_t *want = vlm_malloc((size_t)n_ctx);
    if (!tok || !pos || !seq || !want) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    double nll = 0.0, nll2 = 0.0;
    long count = 0;
    for (int c = 0; c < n_chunk && rc == VLM_OK; c++) {
        const int32_t *src = tokens + (size_t)c * n_ctx;
        memcpy(tok, src, sizeof(int32_t) * (size_t)n_ctx);
        if (bos >= 0) tok[0] = bos;
        for (int k = 0; k < n_ctx; k++) {
            pos[k] = k;
            want[k] = (int8_t)(k >= first && k < n_ctx - 1);
        }
        vlm_ctx_seq_clear(ctx, 0);
        struct vlm_batch b = {n_ctx, tok, NULL, pos, seq, want, NULL};
        if ((rc = vlm_ctx_decode(ctx, &b, err)) != VLM_OK) break;
        for (int k = first; k < n_ctx - 1; k++) {
            double v = nll_of(vlm_ctx_logits(ctx, k - first), mi->n_vocab, src[k + 1]);
            nll += v;
            nll2 += v * v;
            count++;
        }
        out->n_chunks = c + 1;
        if (on_chunk) on_chunk(c, n_chunk, exp(nll / (double)count), user);
    }
    vlm_ctx_seq_clear(ctx, 0);
    vlm_free(tok);
    vlm_free(pos);
    vlm_free(seq);
    vlm_free(want);
    if (rc != VLM_OK) return rc;
    /* llama-perplexity's final estimate and its error bar (from the variance of the NLLs). */
    double mean = nll / (double)count, var = nll2 / (double)count - mean * mean;
    out->n_scored = count;
    out->ppl = exp(mean);
    out->ppl_err = var > 0 && count > 1 ? out->ppl * sqrt(var / (double)(count - 1)) : 0.0;
    return VLM_OK;
}
