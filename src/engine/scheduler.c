/* scheduler.c — the continuous-batching loop. Each sequence keeps all its ids (prompt, then
 * generated) and how many of them are in the KV cache (n_past); a step feeds every running
 * sequence its next ids: one for a decoding sequence, a chunk for one still prefilling.
 * Decode rows go first so a long prompt never stalls the others for more than one chunk.
 * When the KV pool runs out, the newest sequence is preempted (its KV cleared, its ids kept)
 * and re-prefilled later, as vLLM's recompute preemption does. */
#include "engine/scheduler.h"
#include "models/mllama_processor.h"

#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

struct vlm_seq {
    struct vlm_sched   *s;
    int32_t            *ids;           /* (n_len) prompt then generated ids; cap entries */
    size_t              n_len, cap, n_prompt, n_past;
    const float       **embd;          /* (n_prompt) or NULL */
    int                 n_img, attached;   /* cross-attention images; given to the current slot */
    const float       **img_states;
    int                *img_tiles;
    struct vlm_mllama_span *img_spans;
    const struct vlm_image_input **image;   /* (n_prompt) or NULL */
    struct vlm_sampler *sampler;
    int32_t            *eos, *stop_ids, *bias_ids;
    float              *bias_values;
    int                 n_eos, ignore_eos;
    size_t              n_stop_ids, n_bias;
    int                 max_new, min_new, n_gen;
    void              (*on_free)(void *);
    void               *user;
    int                 slot;          /* KV slot while running, else -1 */
    long                admit_order;
    struct vlm_seq     *next;          /* waiting list */
    /* shared with the owner, under s->mu */
    struct vlm_seq_event *ev;
    size_t              ev_n, ev_cap, ev_read;
    int                 finished, refs;
    atomic_int          cancelled;     /* also read by build_batch outside the lock */
    pthread_cond_t      cv;
};

struct sched_job {
    int               (*fn)(void *user, struct vlm_pool *pool, struct vlm_error *err);
    void               *user;
    int                 cost, rc, done;
    struct vlm_error   *err;
    struct sched_job   *next;
};

struct vlm_sched {
    const struct vlm_model *m;
    struct vlm_ctx  *ctx;
    int              n_vocab, max_seqs, n_batch, chunk, n_ctx;
    int              img_tokens;       /* KV tokens of one cross-attention image */
    pthread_t        th;
    int              started;
    pthread_mutex_t  mu;
    pthread_cond_t   cv;
    int              stop;
    struct vlm_seq **slots;            /* (max_seqs) running sequences */
    int              n_running, n_waiting;
    struct vlm_seq  *wait_head, *wait_tail;
    long             admit_counter;
    /* batch buffers (n_batch rows) */
    int32_t         *b_tok, *b_pos, *b_seq;
    const float    **b_embd;
    const struct vlm_image_input **b_img;
    int8_t          *b_want;
    struct vlm_seq **logit_seq;        /* sequence of each logits row */
    int             *fed;              /* (max_seqs) rows fed per slot this step */
    struct sched_job *job_head, *job_tail;  /* under mu */
    int              job_budget, n_jobs, job_waiters;
    pthread_cond_t   job_cv;           /* a job is done */
    struct vlm_sched_stats stats;
};

struct vlm_sched_params vlm_sched_default_params(void) {
    struct vlm_sched_params p = {0};
    p.max_num_seqs = 16;
    p.prefill_chunk = 256;
    return p;
}

/* ---- sequence lifetime ---- */

static void seq_destroy(struct vlm_seq *q) {
    if (q->on_free) q->on_free(q->user);
    vlm_sampler_free(q->sampler);
    vlm_free(q->ids);
    vlm_free(q->embd);
    vlm_free(q->img_states);
    vlm_free(q->img_tiles);
    vlm_free(q->img_spans);
    vlm_free(q->image);
    vlm_free(q->eos);
    vlm_free(q->stop_ids);
    vlm_free(q->bias_ids);
    vlm_free(q->bias_values);
    vlm_free(q->ev);
    pthread_cond_destroy(&q->cv);
    vlm_free(q);
}

/* Drops one reference; returns the sequence if the caller must destroy it (outside the lock). */
static struct vlm_seq *seq_unref_locked(struct vlm_seq *q) {
    return --q->refs == 0 ? q : NULL;
}

static int push_event_locked(struct vlm_seq *q, const struct vlm_seq_event *ev) {
    if (q->ev_n == q->ev_cap) {
        size_t cap = q->ev_cap ? q->ev_cap * 2 : 16;
        struct vlm_seq_event *e = vlm_realloc(q->ev, cap * sizeof *e);
        if (!e) return VLM_E_NOMEM;
        q->ev = e;
        q->ev_cap = cap;
    }
    q->ev[q->ev_n++] = *ev;
    pthread_cond_broadcast(&q->cv);
    return VLM_OK;
}

static void finish_locked(struct vlm_seq *q) {
    q->finished = 1;
    pthread_cond_broadcast(&q->cv);
}

static void fail_locked(struct vlm_seq *q, int code) {
    struct vlm_seq_event ev = {0};
    ev.type = VLM_SEQ_ERROR;
    ev.code = code;
    push_event_locked(q, &ev);
    finish_locked(q);
}

static int contains(const int32_t *a, size_t n, int32_t v) {
    for (size_t i = 0; i < n; i++)
        if (a[i] == v) return 1;
    return 0;
}

/* ---- submit / wait / cancel ---- */

static int32_t *dup_ids(const int32_t *a, size_t n) {
    return n ? vlm_memdup(a, n * sizeof *a) : NULL;
}

int vlm_sched_submit(struct vlm_sched *s, const struct vlm_seq_params *p, struct vlm_seq **out,
                     struct vlm_error *err) {
    *out = NULL;
    if (p->n_ids == 0) return vlm_error_set(err, VLM_E_INVALID, "empty prompt");
    if (p->n_ids >= (size_t)s->n_ctx)
        return vlm_error_set(err, VLM_E_TOO_LARGE,
                             "This model's maximum context length is %d tokens. However, your prompt has %zu tokens.",
                             s->n_ctx, p->n_ids);
    int rc = vlm_sampling_params_check(&p->sampling, err);
    if (rc != VLM_OK) return rc;
    struct vlm_seq *q = vlm_calloc(1, sizeof *q);
    if (!q) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    pthread_cond_init(&q->cv, NULL);
    q->s = s;
    q->slot = -1;
    size_t room = (size_t)s->n_ctx;
    q->cap = room;
    q->ids = vlm_malloc(room * sizeof *q->ids);
    if (q->ids) memcpy(q->ids, p->ids, p->n_ids * sizeof *q->ids);
    q->n_len = q->n_prompt = p->n_ids;
    if (p->embd) q->embd = vlm_memdup(p->embd, p->n_ids * sizeof *q->embd);
    int img_ok = 1;
    if (p->n_cross_images > 0) {
        size_t ni = (size_t)p->n_cross_images;
        q->n_img = p->n_cross_images;
        q->img_states = vlm_memdup(p->cross_states, ni * sizeof *q->img_states);
        q->img_tiles = vlm_memdup(p->cross_tiles, ni * sizeof *q->img_tiles);
        q->img_spans = vlm_memdup(p->cross_spans, ni * sizeof *q->img_spans);
        img_ok = q->img_states && q->img_tiles && q->img_spans;
    }
    if (p->image) q->image = vlm_memdup(p->image, p->n_ids * sizeof *q->image);
    q->eos = dup_ids(p->eos_ids, (size_t)(p->n_eos > 0 ? p->n_eos : 0));
    q->n_eos = p->n_eos > 0 ? p->n_eos : 0;
    q->stop_ids = dup_ids(p->stop_ids, p->n_stop_ids);
    q->n_stop_ids = p->n_stop_ids;
    q->bias_ids = dup_ids(p->bias_ids, p->n_bias);
    q->bias_values = p->n_bias ? vlm_memdup(p->bias_values, p->n_bias * sizeof(float)) : NULL;
    q->n_bias = p->n_bias;
    q->ignore_eos = p->ignore_eos;
    q->max_new = p->max_new_tokens;
    q->min_new = p->min_new_tokens;
    q->on_free = p->on_free;
    q->user = p->user;
    if (!q->ids || !img_ok || (p->embd && !q->embd) || (p->image && !q->image) || (q->n_eos && !q->eos) || (p->n_stop_ids && !q->stop_ids) ||
        (p->n_bias && (!q->bias_ids || !q->bias_values))) {
        q->on_free = NULL;
        seq_destroy(q);
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    rc = vlm_sampler_new(&p->sampling, s->n_vocab, p->ids, p->n_ids, &q->sampler, err);
    if (rc != VLM_OK) {
        q->on_free = NULL;
        seq_destroy(q);
        return rc;
    }
    q->refs = 2;   /* the caller's handle and the scheduler's */
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        q->on_free = NULL;
        seq_destroy(q);
        return vlm_error_set(err, VLM_E_CANCELLED, "the server is shutting down");
    }
    if (s->wait_tail) s->wait_tail->next = q;
    else s->wait_head = q;
    s->wait_tail = q;
    s->n_waiting++;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    *out = q;
    return VLM_OK;
}

int vlm_seq_wait(struct vlm_seq *q, struct vlm_seq_event *ev, int timeout_ms) {
    struct vlm_sched *s = q->s;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) { until.tv_sec++; until.tv_nsec -= 1000000000L; }
    pthread_mutex_lock(&s->mu);
    int r = 0;
    for (;;) {
        if (q->ev_read < q->ev_n) {
            *ev = q->ev[q->ev_read++];
            r = 1;
            break;
        }
        if (q->finished) { r = -1; break; }
        if (pthread_cond_timedwait(&q->cv, &s->mu, &until) == ETIMEDOUT) {
            r = 0;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return r;
}

void vlm_seq_cancel(struct vlm_seq *q) {
    pthread_mutex_lock(&q->s->mu);
    q->cancelled = 1;
    pthread_cond_signal(&q->s->cv);
    pthread_mutex_unlock(&q->s->mu);
}

void vlm_seq_release(struct vlm_seq *q) {
    if (!q) return;
    struct vlm_sched *s = q->s;
    pthread_mutex_lock(&s->mu);
    q->cancelled = 1;
    pthread_cond_signal(&s->cv);
    struct vlm_seq *dead = seq_unref_locked(q);
    pthread_mutex_unlock(&s->mu);
    if (dead) seq_destroy(dead);
}

size_t vlm_seq_n_prompt(const struct vlm_seq *q) { return q->n_prompt; }

/* ---- jobs ---- */

int vlm_sched_run(struct vlm_sched *s, int (*fn)(void *user, struct vlm_pool *pool, struct vlm_error *err),
                  void *user, int cost, struct vlm_error *err) {
    struct sched_job j = {fn, user, cost > 0 ? cost : 0, VLM_OK, 0, err, NULL};
    pthread_mutex_lock(&s->mu);
    if (s->stop) {
        pthread_mutex_unlock(&s->mu);
        return vlm_error_set(err, VLM_E_CANCELLED, "the server is shutting down");
    }
    if (s->job_tail) s->job_tail->next = &j;
    else s->job_head = &j;
    s->job_tail = &j;
    s->n_jobs++;
    s->job_waiters++;
    pthread_cond_signal(&s->cv);
    while (!j.done) pthread_cond_wait(&s->job_cv, &s->mu);
    if (--s->job_waiters == 0 && s->stop) pthread_cond_broadcast(&s->job_cv);   /* vlm_sched_free waits */
    pthread_mutex_unlock(&s->mu);
    return j.rc;
}

/* Runs the queued jobs that fit the budget (the first always). Called and returns with s->mu
 * held; drops it while a job runs. */
static void run_jobs_locked(struct vlm_sched *s) {
    long spent = 0;
    while (s->job_head && !s->stop && (spent == 0 || spent + s->job_head->cost <= s->job_budget)) {
        struct sched_job *j = s->job_head;
        s->job_head = j->next;
        if (!s->job_head) s->job_tail = NULL;
        s->n_jobs--;
        spent += j->cost > 0 ? j->cost : 1;
        pthread_mutex_unlock(&s->mu);
        int rc = j->fn(j->user, vlm_ctx_pool(s->ctx), j->err);
        pthread_mutex_lock(&s->mu);
        j->rc = rc;
        j->done = 1;      /* j lives on its caller's stack: not touched after this */
        s->stats.jobs++;
        pthread_cond_broadcast(&s->job_cv);
    }
}

/* ---- the loop ---- */

/* Removes cancelled sequences (running ones lose their KV at once) and admits waiting ones
 * while slots and KV allow. Called with s->mu held; collects sequences to destroy. */
static void reap_and_admit_locked(struct vlm_sched *s, struct vlm_seq **dead, int *n_dead) {
    for (int i = 0; i < s->max_seqs; i++) {
        struct vlm_seq *q = s->slots[i];
        if (!q || !q->cancelled) continue;
        vlm_ctx_seq_clear(s->ctx, i);
        s->slots[i] = NULL;
        s->n_running--;
        finish_locked(q);
        if ((q = seq_unref_locked(q))) dead[(*n_dead)++] = q;
    }
    for (struct vlm_seq **pp = &s->wait_head; *pp;) {
        struct vlm_seq *q = *pp;
        if (!q->cancelled) { pp = &q->next; continue; }
        *pp = q->next;
        s->n_waiting--;
        finish_locked(q);
        if ((q = seq_unref_locked(q))) dead[(*n_dead)++] = q;
    }
    s->wait_tail = NULL;
    for (struct vlm_seq *q = s->wait_head; q; q = q->next) s->wait_tail = q;
    while (s->wait_head && s->n_running < s->max_seqs) {
        struct vlm_seq *q = s->wait_head;
        size_t need = q->n_len - q->n_past + 1 + (size_t)q->n_img * (size_t)s->img_tokens;
        /* admit only what the KV pool can hold now, unless nothing runs (then the decode
           reports what does not fit) */
        if (s->n_running > 0 && (long)vlm_ctx_kv_free(s->ctx) < (long)need + 16L * s->n_running) break;
        int slot = 0;
        while (s->slots[slot]) slot++;
        s->wait_head = q->next;
        if (!s->wait_head) s->wait_tail = NULL;
        q->next = NULL;
        s->n_waiting--;
        q->slot = slot;
        q->admit_order = s->admit_counter++;
        s->slots[slot] = q;
        s->n_running++;
    }
}

/* Gives newly admitted sequences their cross-attention images (outside the lock: this is the
 * K/V projection of every image). A sequence whose images do not fit the KV cache goes back to
 * the queue while others run, else fails. */
static void attach_images(struct vlm_sched *s) {
    for (int i = 0; i < s->max_seqs; i++) {
        struct vlm_seq *q = s->slots[i];
        if (!q || q->cancelled || q->attached || !q->n_img) continue;
        struct vlm_error err;
        int rc = vlm_ctx_seq_set_images(s->ctx, i, q->n_img, q->img_states, q->img_tiles, q->img_spans,
                                        (int)q->n_prompt, &err);
        pthread_mutex_lock(&s->mu);
        if (rc == VLM_OK) q->attached = 1;
        else if (rc == VLM_E_NOMEM && s->n_running > 1) {   /* back to the queue's head until room frees */
            vlm_ctx_seq_clear(s->ctx, i);
            s->slots[i] = NULL;
            s->n_running--;
            q->slot = -1;
            q->next = s->wait_head;
            s->wait_head = q;
            if (!s->wait_tail) s->wait_tail = q;
            s->n_waiting++;
        } else {
            VLM_LOGW("sequence images: %s", err.msg);
            fail_locked(q, rc);
            q->cancelled = 1;
        }
        pthread_mutex_unlock(&s->mu);
    }
}

/* Fills the batch: every decoding sequence's one row first, then prefill chunks. */
static int build_batch(struct vlm_sched *s, int *n_logits) {
    int rows = 0, budget;
    *n_logits = 0;
    for (int i = 0; i < s->max_seqs; i++) s->fed[i] = 0;
    for (int pass = 0; pass < 2; pass++) {
        budget = pass == 0 ? s->n_batch : (s->chunk < s->n_batch - rows ? s->chunk : s->n_batch - rows);
        for (int i = 0; i < s->max_seqs && budget > 0; i++) {
            struct vlm_seq *q = s->slots[i];
            if (!q || q->cancelled || (q->n_img && !q->attached)) continue;
            size_t remaining = q->n_len - q->n_past;
            if ((pass == 0) != (remaining == 1) || remaining == 0) continue;
            int k = remaining < (size_t)budget ? (int)remaining : budget;
            if (pass == 1 && q->embd && q->n_past < q->n_prompt && (size_t)k < q->n_prompt - q->n_past)
                k = vlm_prefill_take(vlm_model_get_info(vlm_ctx_model(s->ctx)), q->embd, q->n_past,
                                     q->n_prompt - q->n_past, k);   /* not inside an image (Gemma 3) */
            if (k == 0) continue;
            for (int j = 0; j < k; j++) {
                size_t pos = q->n_past + (size_t)j;
                s->b_tok[rows] = q->ids[pos];
                s->b_pos[rows] = (int32_t)pos;
                s->b_seq[rows] = i;
                s->b_embd[rows] = q->embd && pos < q->n_prompt ? q->embd[pos] : NULL;
                s->b_img[rows] = q->image && pos < q->n_prompt ? q->image[pos] : NULL;
                s->b_want[rows] = (int8_t)(j == k - 1 && (size_t)k == remaining);
                if (s->b_want[rows]) s->logit_seq[(*n_logits)++] = q;
                rows++;
            }
            s->fed[i] = k;
            budget -= k;
        }
    }
    return rows;
}

/* Samples one sequence's next token from its logits row; returns the finish reason. */
static enum vlm_finish sample_one(struct vlm_sched *s, struct vlm_seq *q, float *logits,
                                  struct vlm_token_info *info) {
    for (size_t i = 0; i < q->n_bias; i++)
        if (q->bias_ids[i] >= 0 && q->bias_ids[i] < s->n_vocab) logits[q->bias_ids[i]] += q->bias_values[i];
    if (q->n_gen < q->min_new) {
        if (!q->ignore_eos)
            for (int i = 0; i < q->n_eos; i++)
                if (q->eos[i] >= 0 && q->eos[i] < s->n_vocab) logits[q->eos[i]] = -INFINITY;
        for (size_t i = 0; i < q->n_stop_ids; i++)
            if (q->stop_ids[i] >= 0 && q->stop_ids[i] < s->n_vocab) logits[q->stop_ids[i]] = -INFINITY;
    }
    vlm_sampler_sample(q->sampler, logits, info);
    int32_t t = info->id;
    q->ids[q->n_len++] = t;
    q->n_gen++;
    if ((!q->ignore_eos && contains(q->eos, (size_t)q->n_eos, t)) || contains(q->stop_ids, q->n_stop_ids, t))
        return VLM_FINISH_STOP;
    if ((q->max_new > 0 && q->n_gen >= q->max_new) || q->n_len >= q->cap) return VLM_FINISH_LENGTH;
    return VLM_FINISH_NONE;
}

/* Preempts the newest running sequence (KV cleared, ids kept, back to the queue's head). */
static int preempt_newest_locked(struct vlm_sched *s) {
    int victim = -1;
    for (int i = 0; i < s->max_seqs; i++)
        if (s->slots[i] && (victim < 0 || s->slots[i]->admit_order > s->slots[victim]->admit_order))
            victim = i;
    if (victim < 0 || s->n_running < 2) return 0;
    struct vlm_seq *q = s->slots[victim];
    vlm_ctx_seq_clear(s->ctx, victim);
    s->slots[victim] = NULL;
    s->n_running--;
    q->slot = -1;
    q->n_past = 0;
    q->attached = 0;
    q->next = s->wait_head;
    s->wait_head = q;
    if (!s->wait_tail) s->wait_tail = q;
    s->n_waiting++;
    s->stats.preemptions++;
    return 1;
}

static void *sched_main(void *arg) {
    struct vlm_sched *s = arg;
    struct vlm_seq **dead = vlm_malloc((size_t)(s->max_seqs * 2 + 64) * sizeof *dead);
    struct vlm_seq_event *evs = vlm_malloc((size_t)s->n_batch * sizeof *evs);
    struct vlm_seq **ev_seq = vlm_malloc((size_t)s->n_batch * sizeof *ev_seq);
    struct vlm_error err;
    pthread_mutex_lock(&s->mu);
    while (dead && evs && ev_seq) {
        while (!s->stop && s->n_running == 0 && !s->wait_head && !s->job_head)
            pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop) break;
        run_jobs_locked(s);
        int n_dead = 0;
        reap_and_admit_locked(s, dead, &n_dead);
        pthread_mutex_unlock(&s->mu);
        for (int i = 0; i < n_dead; i++) seq_destroy(dead[i]);
        n_dead = 0;
        attach_images(s);

        int n_logits = 0, rows = build_batch(s, &n_logits), n_ev = 0;
        int rc = VLM_OK;
        if (rows > 0) {
            struct vlm_batch b = {rows, s->b_tok, s->b_embd, s->b_pos, s->b_seq, s->b_want, s->b_img};
            rc = vlm_ctx_decode(s->ctx, &b, &err);
        }
        if (rows > 0 && rc == VLM_OK) {
            for (int i = 0; i < s->max_seqs; i++)
                if (s->slots[i] && s->fed[i]) s->slots[i]->n_past += (size_t)s->fed[i];
            for (int j = 0; j < n_logits; j++) {
                struct vlm_seq *q = s->logit_seq[j];
                struct vlm_seq_event *ev = &evs[n_ev];
                memset(ev, 0, sizeof *ev);
                ev->type = VLM_SEQ_TOKEN;
                ev->finish = sample_one(s, q, vlm_ctx_logits(s->ctx, j), &ev->tok);
                ev_seq[n_ev++] = q;
            }
        }
        pthread_mutex_lock(&s->mu);
        if (rows > 0 && rc == VLM_OK) {
            s->stats.steps++;
            for (int i = 0; i < n_ev; i++) {
                struct vlm_seq *q = ev_seq[i];
                if (push_event_locked(q, &evs[i]) != VLM_OK) evs[i].finish = VLM_FINISH_LENGTH;
                if (evs[i].finish != VLM_FINISH_NONE) q->cancelled = 1;  /* reaped below: KV freed */
            }
            for (int i = 0; i < s->max_seqs; i++)
                if (s->slots[i] && s->fed[i] > 1) s->stats.tokens_prefilled += s->fed[i];
            s->stats.tokens_decoded += n_ev;
        } else if (rc == VLM_E_NOMEM && preempt_newest_locked(s)) {
            /* retry the step without the newest sequence */
        } else if (rows > 0) {
            /* the step failed for the sequences in it: each gets the error, none hangs */
            VLM_LOGW("decode step failed: %s", err.msg);
            for (int i = 0; i < s->max_seqs; i++)
                if (s->slots[i] && s->fed[i]) {
                    fail_locked(s->slots[i], rc);
                    s->slots[i]->cancelled = 1;
                }
        }
        reap_and_admit_locked(s, dead, &n_dead);
        s->stats.kv_capacity = vlm_ctx_kv_capacity(s->ctx);
        s->stats.kv_used = s->stats.kv_capacity - vlm_ctx_kv_free(s->ctx);
        s->stats.n_running = s->n_running;
        s->stats.n_waiting = s->n_waiting;
        if (n_dead) {
            pthread_mutex_unlock(&s->mu);
            for (int i = 0; i < n_dead; i++) seq_destroy(dead[i]);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    vlm_free(dead);
    vlm_free(evs);
    vlm_free(ev_seq);
    return NULL;
}

/* ---- create / free ---- */

int vlm_sched_new(const struct vlm_model *m, const struct vlm_sched_params *p,
                  struct vlm_sched **out, struct vlm_error *err) {
    *out = NULL;
    struct vlm_sched *s = vlm_calloc(1, sizeof *s);
    if (!s) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    s->m = m;
    s->max_seqs = p->max_num_seqs > 0 ? p->max_num_seqs : 16;
    s->chunk = p->prefill_chunk > 0 ? p->prefill_chunk : 256;
    if (s->chunk < vlm_model_get_info(m)->image_rows_whole)   /* an image's rows come in one step */
        s->chunk = vlm_model_get_info(m)->image_rows_whole;
    s->n_batch = s->chunk + s->max_seqs;
    s->job_budget = p->job_budget > 0 ? p->job_budget : 2048;
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_seq_max = s->max_seqs;
    cp.n_ctx = p->n_ctx;
    cp.n_kv_tokens = p->n_kv_tokens;
    cp.n_batch_max = s->n_batch;
    cp.n_threads = p->n_threads;
    cp.kv_dtype = p->kv_dtype;
    int rc = vlm_ctx_new(m, &cp, &s->ctx, err);
    if (rc != VLM_OK) { vlm_free(s); return rc; }
    s->n_vocab = vlm_model_get_info(m)->n_vocab;
    s->img_tokens = vlm_model_get_info(m)->cross_image_tokens;
    s->n_ctx = vlm_ctx_n_ctx(s->ctx);
    size_t nb = (size_t)s->n_batch;
    s->slots = vlm_calloc((size_t)s->max_seqs, sizeof *s->slots);
    s->fed = vlm_calloc((size_t)s->max_seqs, sizeof *s->fed);
    s->b_tok = vlm_malloc(nb * sizeof *s->b_tok);
    s->b_pos = vlm_malloc(nb * sizeof *s->b_pos);
    s->b_seq = vlm_malloc(nb * sizeof *s->b_seq);
    s->b_embd = vlm_malloc(nb * sizeof *s->b_embd);
    s->b_img = vlm_malloc(nb * sizeof *s->b_img);
    s->b_want = vlm_malloc(nb * sizeof *s->b_want);
    s->logit_seq = vlm_malloc(nb * sizeof *s->logit_seq);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_cond_init(&s->job_cv, NULL);
    if (!s->slots || !s->fed || !s->b_tok || !s->b_pos || !s->b_seq || !s->b_embd || !s->b_img || !s->b_want ||
        !s->logit_seq) {
        vlm_sched_free(s);
        return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    if (pthread_create(&s->th, NULL, sched_main, s) != 0) {
        vlm_sched_free(s);
        return vlm_error_set(err, VLM_E_NOMEM, "cannot start the scheduler thread");
    }
    s->started = 1;
    *out = s;
    return VLM_OK;
}

void vlm_sched_free(struct vlm_sched *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started) pthread_join(s->th, NULL);
    /* fail whatever is left so no owner waits forever; owners still hold their handles */
    pthread_mutex_lock(&s->mu);
    struct vlm_seq *dead_list = NULL;
    for (int i = 0; s->slots && i < s->max_seqs; i++) {
        struct vlm_seq *q = s->slots[i];
        if (!q) continue;
        s->slots[i] = NULL;
        fail_locked(q, VLM_E_CANCELLED);
        if (seq_unref_locked(q)) { q->next = dead_list; dead_list = q; }
    }
    while (s->wait_head) {
        struct vlm_seq *q = s->wait_head;
        s->wait_head = q->next;
        fail_locked(q, VLM_E_CANCELLED);
        if (seq_unref_locked(q)) { q->next = dead_list; dead_list = q; }
    }
    for (struct sched_job *j = s->job_head; j; j = j->next) {
        j->rc = vlm_error_set(j->err, VLM_E_CANCELLED, "the server is shutting down");
        j->done = 1;
    }
    s->job_head = s->job_tail = NULL;
    s->n_jobs = 0;
    pthread_cond_broadcast(&s->job_cv);
    while (s->job_waiters > 0) pthread_cond_wait(&s->job_cv, &s->mu);   /* none touches s after */
    pthread_mutex_unlock(&s->mu);
    while (dead_list) {
        struct vlm_seq *q = dead_list;
        dead_list = q->next;
        seq_destroy(q);
    }
    vlm_ctx_free(s->ctx);
    vlm_free(s->slots);
    vlm_free(s->fed);
    vlm_free(s->b_tok);
    vlm_free(s->b_pos);
    vlm_free(s->b_seq);
    vlm_free(s->b_embd);
    vlm_free(s->b_img);
    vlm_free(s->b_want);
    vlm_free(s->logit_seq);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    pthread_cond_destroy(&s->job_cv);
    vlm_free(s);
}

void vlm_sched_get_stats(struct vlm_sched *s, struct vlm_sched_stats *st) {
    pthread_mutex_lock(&s->mu);
    *st = s->stats;
    st->n_running = s->n_running;
    st->n_waiting = s->n_waiting;
    st->n_jobs_waiting = s->n_jobs;
    pthread_mutex_unlock(&s->mu);
}

int vlm_sched_n_ctx(const struct vlm_sched *s) { return s->n_ctx; }
