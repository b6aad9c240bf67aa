/* scheduler.h — continuous batching over one vlm_ctx: a scheduler thread advances every live
 * sequence with one batched vlm_ctx_decode per step (decode rows first, then prefill chunks
 * in the space left), admits queued sequences up to max_num_seqs and the KV capacity, and
 * hands each sampled token to the sequence's owner through a per-sequence event queue.
 * Callers (HTTP threads) never block the scheduler: they submit, wait on their own queue,
 * and cancel; a cancelled sequence's KV blocks are freed at the next step boundary.
 * Other work that needs the cores (the vision encoder) also runs on the scheduler thread, as
 * jobs between steps (vlm_sched_run), so it never competes with a step for the same cores. */
#ifndef VLM_ENGINE_SCHEDULER_H
#define VLM_ENGINE_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "engine/stop.h"

struct vlm_error;
struct vlm_mllama_span;
struct vlm_sched;
struct vlm_seq;

struct vlm_sched_params {
    int max_num_seqs;     /* sequences decoding together (--max-num-seqs); the rest queue */
    int n_ctx;            /* per-sequence token limit (--max-model-len); 0 = the model's */
    int n_kv_tokens;      /* KV capacity shared by all sequences; 0 = engine default */
    int prefill_chunk;    /* most tokens one step spends on prompts (keeps decode steps short) */
    int n_threads;        /* the context's pool; 0 = all cores */
    int job_budget;       /* job cost (image tokens) run between two steps; the first queued job
                             always runs. 0 = 2048 */
    enum vlm_kv_dtype kv_dtype;   /* the context's KV-cache type (AUTO = float32) */
};
struct vlm_sched_params vlm_sched_default_params(void);

/* What a sequence is asked to do. Everything is copied at submit except embd rows, which must
 * stay valid until on_free runs (the scheduler calls it when the sequence is destroyed). */
struct vlm_image_input;

struct vlm_seq_params {
    const int32_t *ids;             /* (n_ids) prompt token ids */
    size_t         n_ids;
    const float *const *embd;       /* (n_ids) NULL or a d_model row per position (image tokens) */
    /* cross-attention models (Mllama): the prompt's images, given to the sequence's KV slot when
     * it is admitted (again after a preemption); the states stay valid until on_free */
    int            n_cross_images;
    const float *const *cross_states;           /* (n_cross_images) vlm_ctx_encode_image outputs */
    const int     *cross_tiles;                 /* (n_cross_images) valid tiles */
    const struct vlm_mllama_span *cross_spans;  /* (n_cross_images) attending prompt tokens */
    const struct vlm_image_input *const *image;  /* (n_ids) or NULL: the image of each image-token
                                       position (vlm_batch.image); must live until on_free */
    struct vlm_sampling_params sampling;
    const int32_t *eos_ids;  int n_eos;
    int            ignore_eos;
    const int32_t *stop_ids; size_t n_stop_ids;   /* extra ids that end the sequence */
    const int32_t *bias_ids; const float *bias_values; size_t n_bias;  /* added to logits */
    int            max_new_tokens;  /* <= 0: until the context is full */
    int            min_new_tokens;  /* EOS and stop ids are masked before this many */
    void         (*on_free)(void *user);
    void          *user;
};

enum vlm_seq_event_type { VLM_SEQ_TOKEN = 1, VLM_SEQ_ERROR = 2 };

struct vlm_seq_event {
    enum vlm_seq_event_type type;
    struct vlm_token_info   tok;      /* TOKEN: the sampled token and its logprobs */
    enum vlm_finish         finish;   /* TOKEN: non-NONE when this token ended the sequence */
    int                     code;     /* ERROR: a VLM_E_* code */
};

int  vlm_sched_new(const struct vlm_model *m, const struct vlm_sched_params *p,
                   struct vlm_sched **out, struct vlm_error *err);
/* Stops the thread, fails every live and queued sequence with VLM_E_CANCELLED, frees. */
void vlm_sched_free(struct vlm_sched *s);

/* Queues a sequence. *out is the caller's handle: read events with vlm_seq_wait, finish
 * with vlm_seq_release. VLM_E_TOO_LARGE when the prompt alone does not fit the context. */
int  vlm_sched_submit(struct vlm_sched *s, const struct vlm_seq_params *p, struct vlm_seq **out,
                      struct vlm_error *err);

/* Runs fn(user, pool, err) on the scheduler thread between two steps, with the context's
 * thread pool, and waits for it; returns fn's code (VLM_E_CANCELLED if the scheduler stops
 * first). Jobs run in order; those queued together run before the next step while their costs
 * fit job_budget, as vLLM encodes newly scheduled images before their prefill, so requests that
 * arrive together start decoding together. Thread-safe; never call from inside a job. */
struct vlm_pool;
int  vlm_sched_run(struct vlm_sched *s, int (*fn)(void *user, struct vlm_pool *pool, struct vlm_error *err),
                   void *user, int cost, struct vlm_error *err);

/* Takes the next event: 1 with *ev filled, 0 when none came within timeout_ms, -1 when the
 * sequence is over and every event has been taken. Thread-safe against the scheduler. */
int  vlm_seq_wait(struct vlm_seq *q, struct vlm_seq_event *ev, int timeout_ms);
/* Asks the scheduler to drop the sequence and free its KV now (client gone, stop string). */
void vlm_seq_cancel(struct vlm_seq *q);
/* Drops the caller's handle (cancelling the sequence if it still runs). */
void vlm_seq_release(struct vlm_seq *q);
/* Prompt tokens of the sequence (as submitted). */
size_t vlm_seq_n_prompt(const struct vlm_seq *q);

struct vlm_sched_stats {
    int    n_running, n_waiting;
    int    kv_capacity, kv_used;        /* tokens */
    long   steps, tokens_decoded, tokens_prefilled, preemptions, jobs;
    int    n_jobs_waiting;
};
void vlm_sched_get_stats(struct vlm_sched *s, struct vlm_sched_stats *st);
int  vlm_sched_n_ctx(const struct vlm_sched *s);

#endif
