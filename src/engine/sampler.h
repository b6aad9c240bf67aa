/* sampler.h — turning logits into the next token: greedy, or temperature / top-k / top-p /
 * min-p sampling with repetition, presence and frequency penalties and a seed, as vLLM and
 * transformers define them; plus log-probabilities of the chosen and the top tokens. */
#ifndef VLM_ENGINE_SAMPLER_H
#define VLM_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

struct vlm_error;

struct vlm_sampling_params {
    float    temperature;        /* 0 = greedy (argmax) */
    int      top_k;              /* <= 0: off */
    float    top_p;              /* 1: off */
    float    min_p;              /* 0: off */
    float    repetition_penalty; /* 1: off; on prompt + generated tokens (HF/vLLM) */
    float    presence_penalty;   /* 0: off; on generated tokens (OpenAI/vLLM) */
    float    frequency_penalty;  /* 0: off; on generated tokens */
    uint64_t seed;               /* with has_seed: reproducible; else from the clock */
    int      has_seed;
    int      n_top_logprobs;     /* 0..VLM_MAX_TOP_LOGPROBS alternatives to report */
};
#define VLM_MAX_TOP_LOGPROBS 20

/* Defaults: greedy, every filter off. */
struct vlm_sampling_params vlm_sampling_default_params(void);
/* Checks ranges (temperature >= 0 and finite, 0 < top_p <= 1, 0 <= min_p <= 1,
 * repetition_penalty > 0, |presence|,|frequency| <= 2, n_top_logprobs in range). */
int vlm_sampling_params_check(const struct vlm_sampling_params *p, struct vlm_error *err);

/* What one sampling step reports. Log-probabilities are of the model's raw distribution
 * (log_softmax of the logits before penalties and filters), as vLLM reports them. */
struct vlm_token_info {
    int32_t id;
    float   logprob;
    int     n_top;
    int32_t top_id[VLM_MAX_TOP_LOGPROBS];
    float   top_logprob[VLM_MAX_TOP_LOGPROBS];
};

struct vlm_sampler;

/* A sampler for one sequence over a vocabulary of n_vocab; prompt (may be NULL) seeds the
 * repetition penalty's token set. */
int  vlm_sampler_new(const struct vlm_sampling_params *p, int n_vocab, const int32_t *prompt,
                     size_t n_prompt, struct vlm_sampler **out, struct vlm_error *err);
void vlm_sampler_free(struct vlm_sampler *s);

/* Picks the next token from logits (n_vocab, modified in place), records it as generated
 * (penalties see it from the next step on) and fills *info. */
int vlm_sampler_sample(struct vlm_sampler *s, float *logits, struct vlm_token_info *info);

/* Greedy pick: the lowest index of the largest finite logit. */
int32_t vlm_argmax(const float *logits, int n);

#endif
