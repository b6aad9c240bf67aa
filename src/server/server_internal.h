/* server_internal.h — the server's state shared by server.c (routing, small endpoints) and
 * completions.c (chat and text completions); response helpers in respond.c. */
#ifndef VLM_SERVER_SERVER_INTERNAL_H
#define VLM_SERVER_SERVER_INTERNAL_H

#include "engine/engine.h"
#include "engine/prompt.h"
#include "engine/scheduler.h"
#include "image/image.h"
#include "models/processor.h"
#include "server/http.h"
#include "server/image_cache.h"
#include "server/metrics.h"
#include "server/openai.h"
#include "server/server.h"

#include <pthread.h>
#include <time.h>

struct vlm_template;

struct vlm_server {
    struct vlm_server_config cfg;
    char                  *model_name;     /* reported name (first served name) */
    struct vlm_model      *model;
    const struct vlm_model_info *info;
    const struct vlm_tokenizer  *tok;
    struct vlm_template   *template_override;  /* --chat-template, parsed once */
    pthread_t              stats_thread;   /* the periodic throughput line (--disable-log-stats) */
    int                    stats_started, stats_stop;
    double                 load_s;         /* model load time */
    int                    wants_parts;        /* content format for the template in use: 1 string
                                                  content as a text part, 0 as is, -1 the model's */
    struct vlm_sched      *sched;
    struct vlm_http       *http;
    struct vlm_metrics    *metrics;
    struct vlm_image_cache *cache;
    struct vlm_api_limits  limits;
    struct vlm_image_limits img_limits;
    struct vlm_processor_overrides proc_ceiling;  /* --mm-processor-kwargs (0 = as configured) */
    int                    proc_longest_cfg;  /* the model's size.longest_edge (0 = unknown) */
    long                   proc_max_pixels_cfg; /* the model's max_pixels (Qwen2-VL; 0 = unknown) */
    time_t                 started;
    volatile int           stopping;       /* set at shutdown: waiting handlers cancel and return */
};

/* Handlers in completions.c. */
void vlm_srv_chat(struct vlm_server *s, const struct vlm_http_request *req, struct vlm_http_response *resp);
void vlm_srv_completion(struct vlm_server *s, const struct vlm_http_request *req, struct vlm_http_response *resp);
void vlm_srv_tokenize(struct vlm_server *s, const struct vlm_http_request *req, struct vlm_http_response *resp);

/* respond.c. Fills resp with an error body; returns status. */
int  vlm_srv_error(struct vlm_http_response *resp, const struct vlm_api_error *e);
/* Fills resp with a JSON object (consumed). */
void vlm_srv_json(struct vlm_http_response *resp, int status, json_t *obj);
/* 1 if name is one of the served names (or NULL). */
int  vlm_srv_model_ok(const struct vlm_server *s, const char *name);

double vlm_srv_now(void);   /* monotonic seconds */

#endif
