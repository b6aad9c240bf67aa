/* metrics.c — counters and fixed-bucket histograms behind one mutex; rendering writes the
 * Prometheus text format with HELP/TYPE lines and a model_name label. */
#include "server/metrics.h"

#include "util/alloc.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define N_STATUS 8

struct vlm_metrics {
    pthread_mutex_t mu;
    char            model[256];
    struct vlm_hist hist[VLM_M_N_HIST];
    unsigned long   http[N_STATUS];            /* by status class / code, see status_index */
    unsigned long   prompt_tokens, gen_tokens;
    unsigned long   fin_stop, fin_length, fin_abort, fin_error;
    unsigned long   cache_hits, cache_misses;
};

static const int status_codes[N_STATUS] = {200, 400, 401, 404, 413, 422, 500, 0};

static int status_index(int status) {
    for (int i = 0; i < N_STATUS - 1; i++)
        if (status_codes[i] == status) return i;
    return N_STATUS - 1;   /* other */
}

static void hist_init(struct vlm_hist *h, const double *b, int n) {
    memset(h, 0, sizeof *h);
    h->n_bounds = n;
    memcpy(h->bounds, b, (size_t)n * sizeof *b);
}

struct vlm_metrics *vlm_metrics_new(const char *model_name) {
    struct vlm_metrics *m = vlm_calloc(1, sizeof *m);
    if (!m) return NULL;
    pthread_mutex_init(&m->mu, NULL);
    /* the model name goes into a label: keep it to safe characters */
    size_t o = 0;
    for (const char *p = model_name ? model_name : ""; *p && o < sizeof m->model - 1; p++)
        m->model[o++] = (*p == '"' || *p == '\\' || *p == '\n') ? '_' : *p;
    static const double ttft[] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 20.0};
    static const double itl[] = {0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.5};
    static const double e2e[] = {0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 300.0};
    hist_init(&m->hist[VLM_M_TTFT], ttft, 16);
    hist_init(&m->hist[VLM_M_ITL], itl, 16);
    hist_init(&m->hist[VLM_M_E2E], e2e, 16);
    hist_init(&m->hist[VLM_M_IMAGE_ENCODE], ttft, 16);
    return m;
}

void vlm_metrics_free(struct vlm_metrics *m) {
    if (!m) return;
    pthread_mutex_destroy(&m->mu);
    vlm_free(m);
}

void vlm_metrics_observe(struct vlm_metrics *m, enum vlm_metric_hist which, double s) {
    if (!m || which >= VLM_M_N_HIST) return;
    pthread_mutex_lock(&m->mu);
    struct vlm_hist *h = &m->hist[which];
    int i = 0;
    while (i < h->n_bounds && s > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += s;
    h->count++;
    pthread_mutex_unlock(&m->mu);
}

void vlm_metrics_http(struct vlm_metrics *m, int status) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->http[status_index(status)]++;
    pthread_mutex_unlock(&m->mu);
}

void vlm_metrics_tokens(struct vlm_metrics *m, long prompt, long generated) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += (unsigned long)(prompt > 0 ? prompt : 0);
    m->gen_tokens += (unsigned long)(generated > 0 ? generated : 0);
    pthread_mutex_unlock(&m->mu);
}

void vlm_metrics_finished(struct vlm_metrics *m, const char *reason) {
    if (!m || !reason) return;
    pthread_mutex_lock(&m->mu);
    if (!strcmp(reason, "stop")) m->fin_stop++;
    else if (!strcmp(reason, "length")) m->fin_length++;
    else if (!strcmp(reason, "abort")) m->fin_abort++;
    else m->fin_error++;
    pthread_mutex_unlock(&m->mu);
}

void vlm_metrics_image_cache(struct vlm_metrics *m, int hit) {
    if (!m) return;
    pthread_mutex_lock(&m->mu);
    if (hit) m->cache_hits++;
    else m->cache_misses++;
    pthread_mutex_unlock(&m->mu);
}

static int render_hist(struct vlm_buf *b, const char *name, const char *help, const char *model,
                       const struct vlm_hist *h) {
    int rc = vlm_buf_appendf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    unsigned long cum = 0;
    for (int i = 0; i < h->n_bounds && rc == 0; i++) {
        cum += h->counts[i];
        rc = vlm_buf_appendf(b, "%s_bucket{le=\"%g\",model_name=\"%s\"} %lu\n", name, h->bounds[i], model, cum);
    }
    cum += h->counts[h->n_bounds];
    if (rc == 0) rc = vlm_buf_appendf(b, "%s_bucket{le=\"+Inf\",model_name=\"%s\"} %lu\n", name, model, cum);
    if (rc == 0) rc = vlm_buf_appendf(b, "%s_sum{model_name=\"%s\"} %.6f\n%s_count{model_name=\"%s\"} %lu\n",
                                      name, model, h->sum, name, model, h->count);
    return rc;
}

static int counter(struct vlm_buf *b, const char *name, const char *help, const char *labels, unsigned long v) {
    return vlm_buf_appendf(b, "# HELP %s %s\n# TYPE %s counter\n%s{%s} %lu\n", name, help, name, name, labels, v);
}

int vlm_metrics_render(struct vlm_metrics *m, const struct vlm_metrics_gauges *g, struct vlm_buf *b) {
    char ml[300];
    pthread_mutex_lock(&m->mu);
    snprintf(ml, sizeof ml, "model_name=\"%s\"", m->model);
    int rc = vlm_buf_appendf(b,
        "# HELP vllm:num_requests_running Number of requests in the running batch.\n"
        "# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{%s} %d\n"
        "# HELP vllm:num_requests_waiting Number of requests waiting for a batch slot.\n"
        "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{%s} %d\n"
        "# HELP vllm:kv_cache_usage_perc KV-cache usage (1 = full).\n"
        "# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc{%s} %.6f\n"
        "# HELP vlm:kv_cache_capacity_tokens KV-cache capacity in tokens.\n"
        "# TYPE vlm:kv_cache_capacity_tokens gauge\nvlm:kv_cache_capacity_tokens{%s} %ld\n",
        ml, g->running, ml, g->waiting, ml, g->kv_usage, ml, g->kv_capacity_tokens);
    if (rc == 0) rc = counter(b, "vllm:prompt_tokens_total", "Prefill tokens processed (image tokens included).", ml, m->prompt_tokens);
    if (rc == 0) rc = counter(b, "vllm:generation_tokens_total", "Generated tokens.", ml, m->gen_tokens);
    if (rc == 0) rc = vlm_buf_appendf(b,
        "# HELP vllm:request_success_total Finished requests by finish reason.\n"
        "# TYPE vllm:request_success_total counter\n"
        "vllm:request_success_total{finished_reason=\"stop\",%s} %lu\n"
        "vllm:request_success_total{finished_reason=\"length\",%s} %lu\n"
        "vllm:request_success_total{finished_reason=\"abort\",%s} %lu\n"
        "vllm:request_success_total{finished_reason=\"error\",%s} %lu\n",
        ml, m->fin_stop, ml, m->fin_length, ml, m->fin_abort, ml, m->fin_error);
    if (rc == 0) rc = vlm_buf_appendf(b, "# HELP vlm:http_requests_total HTTP requests by status code.\n"
                                         "# TYPE vlm:http_requests_total counter\n");
    for (int i = 0; i < N_STATUS && rc == 0; i++) {
        if (status_codes[i]) rc = vlm_buf_appendf(b, "vlm:http_requests_total{code=\"%d\",%s} %lu\n", status_codes[i], ml, m->http[i]);
        else rc = vlm_buf_appendf(b, "vlm:http_requests_total{code=\"other\",%s} %lu\n", ml, m->http[i]);
    }
    if (rc == 0) rc = vlm_buf_appendf(b,
        "# HELP vlm:image_cache_total Image cache lookups by result.\n# TYPE vlm:image_cache_total counter\n"
        "vlm:image_cache_total{result=\"hit\",%s} %lu\nvlm:image_cache_total{result=\"miss\",%s} %lu\n",
        ml, m->cache_hits, ml, m->cache_misses);
    if (rc == 0) rc = render_hist(b, "vllm:time_to_first_token_seconds", "Time to first token.", m->model, &m->hist[VLM_M_TTFT]);
    if (rc == 0) rc = render_hist(b, "vllm:inter_token_latency_seconds", "Time between output tokens.", m->model, &m->hist[VLM_M_ITL]);
    if (rc == 0) rc = render_hist(b, "vllm:e2e_request_latency_seconds", "Request latency from arrival to last token.", m->model, &m->hist[VLM_M_E2E]);
    if (rc == 0) rc = render_hist(b, "vlm:image_encode_seconds", "Decode + preprocess + vision encoder time per image.", m->model, &m->hist[VLM_M_IMAGE_ENCODE]);
    pthread_mutex_unlock(&m->mu);
    return rc;
}
