/* metrics.h — server counters and histograms rendered as Prometheus text for /metrics, under
 * vLLM's metric names where vLLM has one (vllm:...) so existing dashboards work. Thread-safe. */
#ifndef VLM_SERVER_METRICS_H
#define VLM_SERVER_METRICS_H

#include <stddef.h>

struct vlm_buf;

#define VLM_HIST_BUCKETS 16

struct vlm_hist {
    double bounds[VLM_HIST_BUCKETS];   /* upper bounds (seconds), ascending; +Inf implied */
    int    n_bounds;
    unsigned long counts[VLM_HIST_BUCKETS + 1];
    double sum;
    unsigned long count;
};

struct vlm_metrics;

struct vlm_metrics *vlm_metrics_new(const char *model_name);
void vlm_metrics_free(struct vlm_metrics *m);

enum vlm_metric_hist { VLM_M_TTFT, VLM_M_ITL, VLM_M_E2E, VLM_M_IMAGE_ENCODE, VLM_M_N_HIST };

void vlm_metrics_observe(struct vlm_metrics *m, enum vlm_metric_hist h, double seconds);
void vlm_metrics_http(struct vlm_metrics *m, int status);          /* one finished HTTP request */
void vlm_metrics_tokens(struct vlm_metrics *m, long prompt, long generated);
void vlm_metrics_finished(struct vlm_metrics *m, const char *reason);   /* "stop", "length", "abort", "error" */
void vlm_metrics_image_cache(struct vlm_metrics *m, int hit);

/* Gauges read at render time. */
struct vlm_metrics_gauges {
    int    running, waiting;
    double kv_usage;      /* 0..1 */
    long   kv_capacity_tokens;
};

/* Appends the Prometheus text exposition (format 0.0.4) to b. */
int vlm_metrics_render(struct vlm_metrics *m, const struct vlm_metrics_gauges *g, struct vlm_buf *b);

#endif
