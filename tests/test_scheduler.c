/* test_scheduler.c — continuous batching on the tiny server fixture model: answers batched
 * with others (more requests than slots, chunked prefill, KV preemption) equal the answers
 * each gets alone; cancellation frees the KV at once; length/stop ids/context limits. */
#include "test.h"
#include "engine/engine.h"
#include "engine/scheduler.h"
#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"

#include <pthread.h>
#include <time.h>
#include <unistd.h>

#define N_PROMPTS 6
#define MAX_NEW 10

static struct vlm_model *model;
static int32_t *ids[N_PROMPTS];
static size_t n_ids[N_PROMPTS];

static struct vlm_seq_params params_for(int i, int max_new) {
    struct vlm_seq_params p = {0};
    p.ids = ids[i];
    p.n_ids = n_ids[i];
    p.sampling = vlm_sampling_default_params();   /* greedy */
    p.ignore_eos = 1;
    p.max_new_tokens = max_new;
    return p;
}

/* Collects a sequence's tokens until it ends; returns how many, and the finish reason. */
static int collect(struct vlm_seq *q, int32_t *out, int cap, enum vlm_finish *fin) {
    int n = 0;
    struct vlm_seq_event ev;
    *fin = VLM_FINISH_NONE;
    for (int spins = 0; spins < 3000; spins++) {
        int r = vlm_seq_wait(q, &ev, 100);
        if (r < 0) break;
        if (r == 0) continue;
        if (ev.type != VLM_SEQ_TOKEN) { *fin = VLM_FINISH_NONE; return -1; }
        if (n < cap) out[n] = ev.tok.id;
        n++;
        if (ev.finish) { *fin = ev.finish; break; }
    }
    return n;
}

static void run_all(struct vlm_sched *s, int32_t out[N_PROMPTS][MAX_NEW], int together) {
    struct vlm_seq *q[N_PROMPTS];
    enum vlm_finish fin;
    for (int i = 0; i < N_PROMPTS; i++) {
        struct vlm_seq_params p = params_for(i, MAX_NEW);
        CHECK_EQ_INT(vlm_sched_submit(s, &p, &q[i], NULL), VLM_OK);
        if (!together) {
            CHECK_EQ_INT(collect(q[i], out[i], MAX_NEW, &fin), MAX_NEW);
            CHECK_EQ_INT(fin, VLM_FINISH_LENGTH);
            vlm_seq_release(q[i]);
        }
    }
    if (together)
        for (int i = 0; i < N_PROMPTS; i++) {
            CHECK_EQ_INT(collect(q[i], out[i], MAX_NEW, &fin), MAX_NEW);
            CHECK_EQ_INT(fin, VLM_FINISH_LENGTH);
            vlm_seq_release(q[i]);
        }
}

static int wait_idle(struct vlm_sched *s) {
    struct vlm_sched_stats st;
    for (int i = 0; i < 200; i++) {
        vlm_sched_get_stats(s, &st);
        if (st.n_running == 0 && st.n_waiting == 0 && st.kv_used == 0) return 1;
        usleep(10000);
    }
    return 0;
}

static void test_batched_equals_solo(void) {
    static int32_t solo[N_PROMPTS][MAX_NEW], batched[N_PROMPTS][MAX_NEW], tight[N_PROMPTS][MAX_NEW];
    struct vlm_sched_params sp = vlm_sched_default_params();
    sp.max_num_seqs = 4;        /* fewer slots than prompts: the rest queue */
    sp.prefill_chunk = 8;       /* prompts are prefilled in several steps */
    sp.n_threads = 1;
    struct vlm_sched *s;
    CHECK_EQ_INT(vlm_sched_new(model, &sp, &s, NULL), VLM_OK);
    if (!s) return;
    run_all(s, solo, 0);
    run_all(s, batched, 1);
    CHECK(memcmp(solo, batched, sizeof solo) == 0);
    int distinct = 0;
    for (int i = 1; i < N_PROMPTS; i++) distinct += memcmp(solo[0], solo[i], sizeof solo[0]) != 0;
    CHECK(distinct > 0);     /* different prompts, different answers: the check can fail */
    CHECK(wait_idle(s));
    struct vlm_sched_stats st;
    vlm_sched_get_stats(s, &st);
    CHECK(st.steps > 0 && st.tokens_decoded >= 2 * N_PROMPTS * MAX_NEW);
    vlm_sched_free(s);

    /* a KV pool too small for all at once: sequences are preempted and recomputed */
    sp.n_kv_tokens = 48;
    CHECK_EQ_INT(vlm_sched_new(model, &sp, &s, NULL), VLM_OK);
    if (!s) return;
    run_all(s, tight, 1);
    CHECK(memcmp(solo, tight, sizeof solo) == 0);
    CHECK(wait_idle(s));
    vlm_sched_get_stats(s, &st);
    fprintf(stderr, "tight KV: capacity %d tokens, %ld preemptions\n", st.kv_capacity, st.preemptions);
    CHECK(st.preemptions > 0);
    vlm_sched_free(s);
}

static void test_cancel_and_limits(void) {
    struct vlm_sched_params sp = vlm_sched_default_params();
    sp.max_num_seqs = 2;
    sp.n_threads = 1;
    struct vlm_sched *s;
    CHECK_EQ_INT(vlm_sched_new(model, &sp, &s, NULL), VLM_OK);
    if (!s) return;
    /* cancel after the first token: the KV is freed within a step */
    struct vlm_seq_params p = params_for(0, 800);
    struct vlm_seq *q;
    struct vlm_seq_event ev;
    CHECK_EQ_INT(vlm_sched_submit(s, &p, &q, NULL), VLM_OK);
    int r = 0;
    for (int i = 0; i < 100 && r != 1; i++) r = vlm_seq_wait(q, &ev, 100);
    CHECK_EQ_INT(r, 1);
    vlm_seq_cancel(q);
    CHECK(wait_idle(s));
    vlm_seq_release(q);
    /* a queued sequence released before it ran never runs */
    struct vlm_seq *q2;
    CHECK_EQ_INT(vlm_sched_submit(s, &p, &q2, NULL), VLM_OK);
    vlm_seq_release(q2);
    CHECK(wait_idle(s));
    /* stop ids end the sequence with "stop" */
    int32_t first[MAX_NEW];
    enum vlm_finish fin;
    p = params_for(1, MAX_NEW);
    CHECK_EQ_INT(vlm_sched_submit(s, &p, &q, NULL), VLM_OK);
    CHECK_EQ_INT(collect(q, first, MAX_NEW, &fin), MAX_NEW);
    vlm_seq_release(q);
    p.stop_ids = &first[2];
    p.n_stop_ids = 1;
    CHECK_EQ_INT(vlm_sched_submit(s, &p, &q, NULL), VLM_OK);
    int32_t again[MAX_NEW];
    int n = collect(q, again, MAX_NEW, &fin);
    CHECK(n >= 1 && n <= 3 && fin == VLM_FINISH_STOP && again[n - 1] == first[2]);
    vlm_seq_release(q);
    /* min_new_tokens masks the stop id until then */
    p.min_new_tokens = 5;
    CHECK_EQ_INT(vlm_sched_submit(s, &p, &q, NULL), VLM_OK);
    n = collect(q, again, MAX_NEW, &fin);
    CHECK(n >= 5);
    vlm_seq_release(q);
    /* a prompt that does not fit the context is refused at submit */
    int n_ctx = vlm_sched_n_ctx(s);
    int32_t *big = vlm_calloc((size_t)n_ctx + 1, sizeof *big);
    struct vlm_seq_params pb = params_for(0, 4);
    pb.ids = big;
    pb.n_ids = (size_t)n_ctx + 1;
    struct vlm_error e;
    CHECK_EQ_INT(vlm_sched_submit(s, &pb, &q, &e), VLM_E_TOO_LARGE);
    /* a sequence at the context's end finishes with "length" */
    pb.n_ids = (size_t)n_ctx - 3;
    pb.max_new_tokens = 0;
    CHECK_EQ_INT(vlm_sched_submit(s, &pb, &q, &e), VLM_OK);
    int32_t tail[8];
    n = collect(q, tail, 8, &fin);
    CHECK(n == 3 && fin == VLM_FINISH_LENGTH);
    vlm_seq_release(q);
    vlm_free(big);
    CHECK(wait_idle(s));
    vlm_sched_free(s);
}

/* ---- jobs (the server's image encodes) ---- */

struct job_arg {
    pthread_t caller, ran_on;
    int delay_ms, value;   /* < 0: the job fails; > 0: it takes that many ms */
    int started;
};

static int job_fn(void *user, struct vlm_pool *pool, struct vlm_error *err) {
    (void)pool;
    struct job_arg *a = user;
    __atomic_store_n(&a->started, 1, __ATOMIC_SEQ_CST);
    if (a->delay_ms > 0) usleep((useconds_t)a->delay_ms * 1000);   /* a slow job: ms */
    a->ran_on = pthread_self();
    a->value = 42;
    if (a->delay_ms < 0) return vlm_error_set(err, VLM_E_INVALID, "job failed on purpose");
    return VLM_OK;
}

struct runner { struct vlm_sched *s; struct job_arg a; int rc; };

static void *run_job_thread(void *p) {
    struct runner *r = p;
    struct vlm_error err;
    r->rc = vlm_sched_run(r->s, job_fn, &r->a, 64, &err);
    return NULL;
}

/* A job runs on the scheduler thread (not the caller's), returns its code and error, runs
 * between steps of a decoding sequence without changing its tokens, and jobs queued from
 * several threads all complete. */
static void test_jobs(void) {
    struct vlm_sched_params sp = vlm_sched_default_params();
    sp.max_num_seqs = 2;
    sp.n_threads = 2;
    sp.job_budget = 100;   /* one 64-token job per step */
    struct vlm_sched *s;
    CHECK_EQ_INT(vlm_sched_new(model, &sp, &s, NULL), VLM_OK);
    if (!s) return;
    struct job_arg a = {.caller = pthread_self()};
    struct vlm_error err;
    CHECK_EQ_INT(vlm_sched_run(s, job_fn, &a, 64, &err), VLM_OK);
    CHECK_EQ_INT(a.value, 42);
    CHECK(!pthread_equal(a.ran_on, a.caller));
    a.delay_ms = -1;
    CHECK_EQ_INT(vlm_sched_run(s, job_fn, &a, 64, &err), VLM_E_INVALID);
    CHECK(strstr(err.msg, "on purpose") != NULL);

    /* solo answer, then the same prompt while 8 jobs from 8 threads are queued */
    int32_t solo[MAX_NEW], mixed[MAX_NEW];
    enum vlm_finish fin;
    struct vlm_seq_params p = params_for(1, MAX_NEW);
    struct vlm_seq *q;
    CHECK_EQ_INT(vlm_sched_submit(s, &p, &q, NULL), VLM_OK);
    CHECK_EQ_INT(collect(q, solo, MAX_NEW, &fin), MAX_NEW);
    vlm_seq_release(q);
    struct runner r[8];
    pthread_t th[8];
    CHECK_EQ_INT(vlm_sched_submit(s, &p, &q, NULL), VLM_OK);
    for (int i = 0; i < 8; i++) {
        memset(&r[i], 0, sizeof r[i]);
        r[i].s = s;
        r[i].rc = -100;
        pthread_create(&th[i], NULL, run_job_thread, &r[i]);
    }
    CHECK_EQ_INT(collect(q, mixed, MAX_NEW, &fin), MAX_NEW);
    vlm_seq_release(q);
    for (int i = 0; i < 8; i++) {
        pthread_join(th[i], NULL);
        CHECK_EQ_INT(r[i].rc, VLM_OK);
        CHECK_EQ_INT(r[i].a.value, 42);
    }
    CHECK(memcmp(solo, mixed, sizeof solo) == 0);
    struct vlm_sched_stats st;
    vlm_sched_get_stats(s, &st);
    CHECK(st.jobs == 10);
    CHECK(wait_idle(s));

    /* free while a slow job runs and another waits: the first finishes, the second is
       cancelled, and free returns only after both callers have woken */
    memset(r, 0, 2 * sizeof r[0]);
    r[0].s = r[1].s = s;
    r[0].a.delay_ms = 300;
    pthread_create(&th[0], NULL, run_job_thread, &r[0]);
    for (int i = 0; i < 500 && !__atomic_load_n(&r[0].a.started, __ATOMIC_SEQ_CST); i++) usleep(1000);
    pthread_create(&th[1], NULL, run_job_thread, &r[1]);
    for (int i = 0; i < 500; i++) {   /* until the second job is queued behind the running one */
        vlm_sched_get_stats(s, &st);
        if (st.n_jobs_waiting == 1) break;
        usleep(10 * 1000);
    }
    CHECK_EQ_INT(st.n_jobs_waiting, 1);
    vlm_sched_free(s);
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    CHECK_EQ_INT(r[0].rc, VLM_OK);
    CHECK_EQ_INT(r[1].rc, VLM_E_CANCELLED);
}

int main(void) {
    struct vlm_model_params mp = vlm_model_default_params();
    mp.n_threads = 1;
    if (vlm_model_load(test_path("tests/fixtures/server/tiny-vlm"), &mp, &model) != VLM_OK) {
        fprintf(stderr, "load: %s\n", vlm_last_error());
        CHECK(0);
        TEST_MAIN_END();
    }
    const char *texts[N_PROMPTS] = {"User: what is red?", "User: count the circles", "hello",
                                    "User: Is there a blue square? Assistant: yes", "a b c d e f g h i j k l m n",
                                    "<|im_start|>User: describe<end_of_utterance>\nAssistant:"};
    for (int i = 0; i < N_PROMPTS; i++)
        CHECK_EQ_INT(vlm_tokenize(vlm_model_tokenizer(model), texts[i], strlen(texts[i]), VLM_TOK_PARSE_SPECIAL,
                                  &ids[i], &n_ids[i], NULL), VLM_OK);
    test_batched_equals_solo();
    test_cancel_and_limits();
    test_jobs();
    for (int i = 0; i < N_PROMPTS; i++) vlm_free(ids[i]);
    vlm_model_free(model);
    TEST_MAIN_END();
}
