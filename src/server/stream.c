/* stream.c — Server-Sent Events for streamed chat and text completions, in vLLM's chunk
 * shapes: a role chunk, content deltas (held back while they may begin a stop string),
 * a finish chunk per choice, the usage chunk when asked, and "data: [DONE]". An error after
 * the stream started is one `data: {"error": ...}` event. */
#include "server/completions.h"

#include "util/alloc.h"
#include "util/error.h"

#include <string.h>

enum { ST_START, ST_RUN, ST_END, ST_DONE };

static void emit(struct gen *g, json_t *obj) {
    char *s = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (!s) return;
    vlm_buf_appendf(&g->out, "data: %s\n\n", s);
    free(s);
}

static json_t *chunk(struct gen *g, json_t *choices) {
    json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", g->id, "object",
                          g->chat ? "chat.completion.chunk" : "text_completion", "created",
                          (json_int_t)g->created, "model", g->model, "choices", choices);
    if (o && g->r.continuous_usage_stats && g->r.include_usage) json_object_set_new(o, "usage", gen_usage(g));
    return o;
}

/* Logprob entries gathered since the last chunk (moved into the chunk). */
static json_t *take_logprobs(struct gen *g, struct gen_choice *c) {
    json_t *lp;
    if (g->chat) {
        if (!g->r.logprobs || !json_array_size(c->lp)) return json_null();
        lp = json_pack("{s:O}", "content", c->lp);
        json_array_clear(c->lp);
        return lp;
    }
    if (g->r.logprobs < 0 || !json_array_size(c->lp)) return json_null();
    json_t *offs = json_array();
    if (c->lp_off == 0 && g->echo) c->lp_off = strlen(g->echo);
    for (size_t i = 0; i < json_array_size(c->lp_tok); i++) {
        json_array_append_new(offs, json_integer((json_int_t)c->lp_off));
        c->lp_off += json_string_length(json_array_get(c->lp_tok, i));
    }
    lp = json_pack("{s:o, s:O, s:O, s:O}", "text_offset", offs, "token_logprobs", c->lp, "tokens", c->lp_tok,
                   "top_logprobs", c->lp_top);
    json_array_clear(c->lp);
    json_array_clear(c->lp_tok);
    json_array_clear(c->lp_top);
    return lp;
}

static json_t *delta_choice(struct gen *g, int i, const char *text, size_t n, json_t *lp, const char *finish) {
    if (g->chat) {
        json_t *delta = n || !finish ? json_pack("{s:s%}", "content", text, n) : json_object();
        return json_pack("{s:i, s:o, s:o, s:s?}", "index", i, "delta", delta, "logprobs", lp, "finish_reason", finish);
    }
    return json_pack("{s:i, s:s%, s:o, s:s?}", "index", i, "text", text, n, "logprobs", lp, "finish_reason", finish);
}

/* Emits what each choice has ready: new text (minus a possible stop-string start), and
 * its finish chunk once done. */
static void emit_progress(struct gen *g) {
    for (int i = 0; i < g->n; i++) {
        struct gen_choice *c = &g->ch[i];
        if (c->finish && c->sent == (size_t)-1) continue;          /* finished and reported */
        size_t end = c->text.len;
        if (!c->done) {
            size_t hold = vlm_stop_holdback(&g->stop, c->text.data ? c->text.data : "", c->text.len);
            end = hold < end ? end - hold : 0;
        }
        if (end < c->sent) end = c->sent;
        size_t n = end - c->sent;
        int has_lp = json_array_size(c->lp) > 0;
        if (c->done) {
            if (c->error && c->error != VLM_E_CANCELLED) continue;   /* reported as an error event */
            emit(g, chunk(g, json_pack("[o]", delta_choice(g, i, c->text.data ? c->text.data + c->sent : "", n,
                                                          take_logprobs(g, c), c->finish ? c->finish : "stop"))));
            c->sent = (size_t)-1;
            if (!c->finish) c->finish = "stop";
        } else if (n || has_lp) {
            emit(g, chunk(g, json_pack("[o]", delta_choice(g, i, c->text.data + c->sent, n, take_logprobs(g, c), NULL))));
            c->sent = end;
        }
    }
}

static void emit_error(struct gen *g, int code) {
    struct vlm_api_error e;
    if (code == VLM_E_CANCELLED && g->shutdown) vlm_api_fail(&e, 503, NULL, "The server is shutting down.");
    else vlm_api_fail(&e, vlm_api_status_for(code), NULL, "Generation failed (%s).", vlm_strerror(code));
    char *body = vlm_api_error_body(&e);
    if (body) vlm_buf_appendf(&g->out, "data: %s\n\n", body);
    vlm_free(body);
}

/* Produces the next piece of the stream into g->out; -1 when the client is gone. */
static int produce(struct gen *g) {
    if (g->stage == ST_START) {
        for (int i = 0; i < g->n; i++) {
            json_t *ch = g->chat
                ? json_pack("{s:i, s:{s:s, s:s}, s:n, s:n}", "index", i, "delta", "role", g->s->cfg.response_role, "content", "",
                            "logprobs", "finish_reason")
                : (g->echo ? json_pack("{s:i, s:s, s:n, s:n}", "index", i, "text", g->echo, "logprobs", "finish_reason")
                           : NULL);
            if (ch) emit(g, chunk(g, json_pack("[o]", ch)));
        }
        g->stage = ST_RUN;
        return 0;
    }
    if (g->stage == ST_RUN) {
        int r = gen_pump(g, 200);
        if (r < 0 && g->shutdown) {   /* the grace period is over: an error event, then [DONE] */
            emit_progress(g);
            emit_error(g, VLM_E_CANCELLED);
            vlm_buf_appendf(&g->out, "data: [DONE]\n\n");
            gen_log_done(g, 200, "stream, ended by shutdown");
            g->stage = ST_DONE;
            return 0;
        }
        if (r < 0) return -1;
        emit_progress(g);
        if (r == 1) g->stage = ST_END;
        return 0;
    }
    if (g->stage == ST_END) {
        long gen = 0;
        int err = 0;
        for (int i = 0; i < g->n; i++) {
            gen += g->ch[i].n_gen;
            if (g->ch[i].error && g->ch[i].error != VLM_E_CANCELLED) err = g->ch[i].error;
        }
        if (err) emit_error(g, err);
        else if (g->r.include_usage) {
            json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", g->id, "object",
                                  g->chat ? "chat.completion.chunk" : "text_completion", "created",
                                  (json_int_t)g->created, "model", g->model, "choices", "usage", gen_usage(g));
            emit(g, o);
        }
        vlm_buf_appendf(&g->out, "data: [DONE]\n\n");
        gen_log_done(g, 200, err ? "stream, failed" : "stream");
        vlm_metrics_tokens(g->s->metrics, 0, gen);
        vlm_metrics_observe(g->s->metrics, VLM_M_E2E, vlm_srv_now() - g->t_arrival);
        g->stage = ST_DONE;
    }
    return 0;
}

ssize_t gen_stream_read(void *ctx, char *buf, size_t max) {
    struct gen *g = ctx;
    while (g->out_off >= g->out.len) {
        if (g->stage == ST_DONE) return 0;
        g->out.len = 0;
        g->out_off = 0;
        if (produce(g) < 0) return -1;
    }
    size_t n = g->out.len - g->out_off;
    if (n > max) n = max;
    memcpy(buf, g->out.data + g->out_off, n);
    g->out_off += n;
    return (ssize_t)n;
}

void gen_stream_free(void *ctx) {
    struct gen *g = ctx;
    if (g->stage != ST_DONE) gen_log_done(g, 200, "stream, client gone");
    for (int i = 0; i < g->n; i++)
        if (!g->ch[i].done) {          /* dropped mid-stream (a write failed): free the KV now */
            vlm_metrics_finished(g->s->metrics, "abort");
            vlm_seq_cancel(g->ch[i].q);
        }
    gen_free(g);
}
