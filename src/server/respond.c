/* respond.c — the response helpers every endpoint uses (error bodies, JSON bodies, the served
 * model-name check, the monotonic clock), apart from server.c's routing so that the endpoint
 * files (completions.c, stream.c) depend on this file and not on the router that calls them. */
#include "server/server_internal.h"

#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

double vlm_srv_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int vlm_srv_error(struct vlm_http_response *resp, const struct vlm_api_error *e) {
    resp->status = e->status;
    resp->body = vlm_api_error_body(e);
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    return e->status;
}

void vlm_srv_json(struct vlm_http_response *resp, int status, json_t *obj) {
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s) {
        struct vlm_api_error e;
        vlm_api_fail(&e, 500, NULL, "out of memory");
        vlm_srv_error(resp, &e);
        return;
    }
    resp->status = status;
    resp->body = vlm_strdup(s);
    resp->body_len = resp->body ? strlen(resp->body) : 0;
    free(s);
}

int vlm_srv_model_ok(const struct vlm_server *s, const char *name) {
    if (!name) return 1;
    if (!strcmp(name, s->model_name)) return 1;
    for (int i = 0; i < s->cfg.n_served_names; i++)
        if (!strcmp(name, s->cfg.served_names[i])) return 1;
    return 0;
}
