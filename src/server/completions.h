/* completions.h — one generation request as the server runs it: the prompt prepared (images
 * fetched, decoded and encoded through the cache), its choices submitted to the scheduler,
 * and their tokens turned into text, stop strings, logprobs and usage. completions.c prepares and
 * answers without streaming; stream.c writes the SSE chunks; choices.c (below) is what both use.
 * Calls go one way: server.c -> completions.c -> stream.c -> choices.c, respond.c. */
#ifndef VLM_SERVER_COMPLETIONS_H
#define VLM_SERVER_COMPLETIONS_H

#include "server/server_internal.h"
#include "util/alloc.h"

struct vlm_detok;

struct gen_shared;             /* prompt + image cache references, freed by the last sequence */

struct gen_choice {
    struct vlm_seq   *q;
    struct vlm_detok *dt;
    struct vlm_buf    text;    /* final text so far (stop string cut) */
    size_t            sent;    /* bytes of text already streamed */
    int               n_gen, done, error;
    const char       *finish;  /* "stop" / "length" / NULL */
    json_t           *lp;      /* logprob entries not yet sent (chat: content list) */
    json_t           *lp_top;  /* completion: top_logprobs list (parallel to lp) */
    json_t           *lp_tok;  /* completion: token strings */
    size_t            lp_off;  /* completion streaming: text offset of the next token */
};

struct gen {
    struct vlm_server *s;
    struct vlm_api_request r;
    int                chat;
    struct gen_choice *ch;
    int                n;
    char               id[48];
    long long          created;
    const char        *model;
    size_t             n_prompt, n_image_tokens;
    struct vlm_stop    stop;
    double             t_arrival, t_last;
    int                got_first;
    void              *conn;
    int                shutdown;  /* ended by the server's shutdown, not by the client */
    char              *echo;   /* completion echo text */
    /* streaming */
    struct vlm_buf     out;
    size_t             out_off;
    int                stage;
};

/* choices.c. Waits up to timeout_ms for events and applies them to the choices. Returns 1 when all
 * choices are done, 0 otherwise, -1 when the client went away or the server is shutting down
 * (sequences cancelled; g->shutdown says which). */
int  gen_pump(struct gen *g, int timeout_ms);
void gen_free(struct gen *g);
/* The request's INFO log line (id, status, prompt/output tokens, latency), unless
 * --disable-log-requests. */
void gen_log_done(const struct gen *g, int status, const char *how);
json_t *gen_usage(const struct gen *g);

/* stream.c: the pull callback and its cleanup for struct vlm_http_response. */
ssize_t gen_stream_read(void *ctx, char *buf, size_t max);
void    gen_stream_free(void *ctx);

#endif
