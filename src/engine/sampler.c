/* sampler.c — next-token choice: penalties (repetition as transformers/vLLM apply it to prompt
 * and output tokens; presence and frequency as OpenAI/vLLM on output tokens), then greedy, or
 * temperature -> top-k -> top-p -> min-p (transformers' warper order) and a draw from a seeded
 * splitmix64 stream. Log-probabilities are of the raw logits. */
#include "engine/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/alloc.h"
#include "util/error.h"

struct vlm_sampler {
    struct vlm_sampling_params p;
    int       n_vocab;
    uint64_t  rng;
    int32_t  *count;      /* (n_vocab) times generated */
    uint8_t  *seen;       /* (n_vocab) in the prompt or generated: the repetition penalty's set */
    struct cand { float logit; int32_t id; } *cand;   /* (n_vocab) */
    float    *work;       /* (n_vocab) penalized logits */
};

struct vlm_sampling_params vlm_sampling_default_params(void) {
    struct vlm_sampling_params p;
    memset(&p, 0, sizeof p);
    p.top_p = 1.0f;
    p.repetition_penalty = 1.0f;
    return p;
}

int vlm_sampling_params_check(const struct vlm_sampling_params *p, struct vlm_error *err) {
    if (!(p->temperature >= 0 && isfinite(p->temperature)))
        return vlm_error_set(err, VLM_E_INVALID, "temperature must be a finite number >= 0");
    if (!(p->top_p > 0 && p->top_p <= 1)) return vlm_error_set(err, VLM_E_INVALID, "top_p must be in (0, 1]");
    if (!(p->min_p >= 0 && p->min_p <= 1)) return vlm_error_set(err, VLM_E_INVALID, "min_p must be in [0, 1]");
    if (!(p->repetition_penalty > 0 && isfinite(p->repetition_penalty)))
        return vlm_error_set(err, VLM_E_INVALID, "repetition_penalty must be > 0");
    if (!(fabsf(p->presence_penalty) <= 2)) return vlm_error_set(err, VLM_E_INVALID, "presence_penalty must be in [-2, 2]");
    if (!(fabsf(p->frequency_penalty) <= 2)) return vlm_error_set(err, VLM_E_INVALID, "frequency_penalty must be in [-2, 2]");
    if (p->top_k < -1) return vlm_error_set(err, VLM_E_INVALID, "top_k must be -1, 0 or positive");
    if (p->n_top_logprobs < 0 || p->n_top_logprobs > VLM_MAX_TOP_LOGPROBS)
        return vlm_error_set(err, VLM_E_INVALID, "top_logprobs must be in [0, %d]", VLM_MAX_TOP_LOGPROBS);
    return VLM_OK;
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return (double)(splitmix64(s) >> 11) * (1.0 / 9007199254740992.0); }

int vlm_sampler_new(const struct vlm_sampling_params *p, int n_vocab, const int32_t *prompt,
                    size_t n_prompt, struct vlm_sampler **out, struct vlm_error *err) {
    *out = NULL;
    int rc = vlm_sampling_params_check(p, err);
    if (rc != VLM_OK) return rc;
    if (n_vocab <= 0) return vlm_error_set(err, VLM_E_INVALID, "empty vocabulary");
    struct vlm_sampler *s = vlm_calloc(1, sizeof *s);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    s->p = *p;
    s->n_vocab = n_vocab;
    s->count = vlm_calloc((size_t)n_vocab, sizeof *s->count);
    s->seen = vlm_calloc((size_t)n_vocab, 1);
    s->cand = vlm_malloc(sizeof *s->cand * (size_t)n_vocab);
    s->work = vlm_malloc(sizeof(float) * (size_t)n_vocab);
    if (!s->count || !s->seen || !s->cand || !s->work) {
        vlm_sampler_free(s);
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; prompt && i < n_prompt; i++)
        if (prompt[i] >= 0 && prompt[i] < n_vocab) s->seen[prompt[i]] = 1;
    if (p->has_seed) s->rng = p->seed;
    else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)(uintptr_t)s;
    }
    *out = s;
    return VLM_OK;
}

void vlm_sampler_free(struct vlm_sampler *s) {
    if (!s) return;
    vlm_free(s->count);
    vlm_free(s->seen);
    vlm_free(s->cand);
    vlm_free(s->work);
    vlm_free(s);
}

int32_t vlm_argmax(const float *x, int n) {
    int32_t best = 0;
    float bv = -INFINITY;
    for (int i = 0; i < n; i++)
        if (x[i] > bv) { bv = x[i]; best = i; }
    return best;
}

static int cmp_cand_desc(const void *a, const void *b) {
    const struct cand *x = a, *y = b;
    if (x->logit != y->logit) return x->logit > y->logit ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Raw log-softmax facts: the log of the normalizer; and the n best (id, logprob). */
static double log_normalizer(const float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) if (x[i] > mx) mx = x[i];
    double sum = 0;
    for (int i = 0; i < n; i++) sum += exp((double)x[i] - mx);
    return mx + log(sum);
}

static void top_n(const float *x, int n, int k, double lz, struct vlm_token_info *info) {
    info->n_top = 0;
    for (int i = 0; i < n; i++) {
        int j = info->n_top;
        if (j == k && !(x[i] > (float)(info->top_logprob[k - 1] + lz))) continue;
        if (j < k) info->n_top++;
        else j = k - 1;
        while (j > 0 && x[i] > (float)(info->top_logprob[j - 1] + lz)) {
            info->top_id[j] = info->top_id[j - 1];
            info->top_logprob[j] = info->top_logprob[j - 1];
            j--;
        }
        info->top_id[j] = i;
        info->top_logprob[j] = (float)((double)x[i] - lz);
    }
}

static void penalize(struct vlm_sampler *s, float *x) {
    const struct vlm_sampling_params *p = &s->p;
    if (p->repetition_penalty != 1.0f)
        for (int i = 0; i < s->n_vocab; i++)
            if (s->seen[i]) x[i] = x[i] > 0 ? x[i] / p->repetition_penalty : x[i] * p->repetition_penalty;
    if (p->presence_penalty != 0 || p->frequency_penalty != 0)
        for (int i = 0; i < s->n_vocab; i++)
            if (s->count[i]) x[i] -= p->presence_penalty + p->frequency_penalty * (float)s->count[i];
}

/* Draws from the filtered distribution over the candidates (sorted descending when filters
 * needed it). */
static int32_t draw(struct vlm_sampler *s, float *x) {
    const struct vlm_sampling_params *p = &s->p;
    int n = 0;
    for (int i = 0; i < s->n_vocab; i++)
        if (isfinite(x[i])) { s->cand[n].logit = x[i] / p->temperature; s->cand[n].id = i; n++; }
    if (n == 0) return vlm_argmax(x, s->n_vocab);
    int need_sort = (p->top_k > 0 && p->top_k < n) || p->top_p < 1.0f || p->min_p > 0;
    if (need_sort) qsort(s->cand, (size_t)n, sizeof *s->cand, cmp_cand_desc);
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) if (s->cand[i].logit > mx) mx = s->cand[i].logit;
    double sum = 0;
    for (int i = 0; i < n; i++) { s->cand[i].logit = (float)exp((double)s->cand[i].logit - mx); sum += s->cand[i].logit; }
    if (p->top_p < 1.0f) {   /* smallest prefix whose mass reaches top_p (at least one token) */
        double acc = 0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            acc += s->cand[i].logit / sum;
            if (acc >= p->top_p) { keep = i + 1; break; }
        }
        n = keep;
    }
    if (p->min_p > 0) {   /* drop tokens below min_p times the top probability */
        float thr = s->cand[0].logit * p->min_p;
        int keep = 1;
        while (keep < n && s->cand[keep].logit >= thr) keep++;
        n = keep;
    }
    sum = 0;
    for (int i = 0; i < n; i++) sum += s->cand[i].logit;
    double u = uniform01(&s->rng) * sum, acc = 0;
    for (int i = 0; i < n; i++) {
        acc += s->cand[i].logit;
        if (u < acc) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}

int vlm_sampler_sample(struct vlm_sampler *s, float *logits, struct vlm_token_info *info) {
    double lz = log_normalizer(logits, s->n_vocab);
    struct vlm_token_info ti;
    memset(&ti, 0, sizeof ti);
    if (s->p.n_top_logprobs > 0) top_n(logits, s->n_vocab, s->p.n_top_logprobs, lz, &ti);
    const struct vlm_sampling_params *p = &s->p;
    float *x = logits;   /* penalties go to a copy: the reported logprob is of the raw logits */
    if (p->repetition_penalty != 1.0f || p->presence_penalty != 0 || p->frequency_penalty != 0) {
        memcpy(s->work, logits, sizeof(float) * (size_t)s->n_vocab);
        x = s->work;
        penalize(s, x);
    }
    int32_t id = p->temperature < 1e-5f ? vlm_argmax(x, s->n_vocab) : draw(s, x);
    ti.id = id;
    ti.logprob = (float)((double)logits[id] - lz);
    if (info) *info = ti;
    s->count[id]++;
    s->seen[id] = 1;
    return VLM_OK;
}
