/* choices.c — a running generation's choices (server/completions.h): scheduler events -> text,
 * stop strings, logprobs; usage, the access-log line, and freeing. Used by completions.c (whole
 * responses) and stream.c (SSE), and calls neither. */
#include "server/completions.h"

#include "text/tokenizer.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"

#include <string.h>

/* ---- events -> text ---- */

static json_t *token_json(const struct vlm_server *s, int32_t id, float logprob, int chat) {
    char *t = NULL;
    size_t n = 0;
    if (vlm_detokenize(s->tok, &id, 1, 0, &t, &n, NULL) != VLM_OK) { t = NULL; n = 0; }
    json_t *o;
    if (chat) {
        json_t *bytes = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(bytes, json_integer((unsigned char)t[i]));
        o = json_pack("{s:s%, s:f, s:o}", "token", t ? t : "", n, "logprob", (double)logprob, "bytes", bytes);
    } else {
        o = json_stringn(t ? t : "", n);
    }
    vlm_free(t);
    return o;
}

static void record_logprobs(struct gen *g, struct gen_choice *c, const struct vlm_token_info *ti) {
    struct vlm_server *s = g->s;
    if (g->chat) {
        json_t *e = token_json(s, ti->id, ti->logprob, 1), *top = json_array();
        for (int k = 0; k < ti->n_top && k < g->r.top_logprobs; k++)
            json_array_append_new(top, token_json(s, ti->top_id[k], ti->top_logprob[k], 1));
        json_object_set_new(e, "top_logprobs", top);
        json_array_append_new(c->lp, e);
    } else {
        json_t *tok = token_json(s, ti->id, 0, 0), *top = json_object();
        for (int k = 0; k < ti->n_top && k < g->r.top_logprobs; k++) {
            json_t *ts = token_json(s, ti->top_id[k], 0, 0);
            json_object_set_new(top, json_string_value(ts), json_real(ti->top_logprob[k]));
            json_decref(ts);
        }
        json_array_append_new(c->lp_tok, tok);
        json_array_append_new(c->lp, json_real(ti->logprob));
        json_array_append_new(c->lp_top, top);
    }
}

/* Looks for a stop string in the text appended since `from`; cuts the text there. */
static int check_stop_strings(struct gen *g, struct gen_choice *c, size_t from) {
    if (!g->stop.n_strings) return 0;
    size_t back = VLM_MAX_STOP_LEN;
    long pos = vlm_stop_find(&g->stop, c->text.data, c->text.len, from > back ? from - back : 0);
    if (pos < 0) return 0;
    size_t keep = (size_t)pos;
    if (g->r.include_stop_str_in_output)
        for (int i = 0; i < g->stop.n_strings; i++) {
            size_t l = strlen(g->stop.strings[i]);
            if ((size_t)pos + l <= c->text.len && !memcmp(c->text.data + pos, g->stop.strings[i], l)) {
                keep = (size_t)pos + l;
                break;
            }
        }
    c->text.len = keep;
    if (c->text.data) c->text.data[keep] = 0;
    if (c->sent > keep) c->sent = keep;
    return 1;
}

static void append_text(struct gen_choice *c, char *t, size_t n) {
    if (t && n) vlm_buf_append(&c->text, t, n);
    vlm_free(t);
}

static void finish_choice(struct gen *g, struct gen_choice *c, const char *reason) {
    c->done = 1;
    c->finish = reason;
    vlm_metrics_finished(g->s->metrics, reason);
    vlm_seq_cancel(c->q);     /* frees the KV now if the scheduler still holds it */
}

static void apply_event(struct gen *g, struct gen_choice *c, const struct vlm_seq_event *ev) {
    double now = vlm_srv_now();
    if (ev->type == VLM_SEQ_ERROR) {
        c->error = ev->code ? ev->code : VLM_E_INTERNAL;
        finish_choice(g, c, "error");
        return;
    }
    vlm_metrics_observe(g->s->metrics, g->got_first ? VLM_M_ITL : VLM_M_TTFT,
                        now - (g->got_first ? g->t_last : g->t_arrival));
    g->got_first = 1;
    g->t_last = now;
    c->n_gen++;
    if (g->r.logprobs > 0 || (g->r.logprobs == 0 && !g->chat)) record_logprobs(g, c, &ev->tok);
    int by_token = ev->finish == VLM_FINISH_STOP && !g->r.include_stop_str_in_output;
    size_t from = c->text.len;
    char *t = NULL;
    size_t n = 0;
    if (!by_token && vlm_detok_push(c->dt, ev->tok.id, &t, &n, NULL) == VLM_OK) append_text(c, t, n);
    if (check_stop_strings(g, c, from)) {
        finish_choice(g, c, "stop");
        return;
    }
    if (ev->finish != VLM_FINISH_NONE) {
        t = NULL;
        n = 0;
        from = c->text.len;
        if (vlm_detok_flush(c->dt, &t, &n, NULL) == VLM_OK) append_text(c, t, n);
        check_stop_strings(g, c, from);
        finish_choice(g, c, vlm_finish_reason(ev->finish));
    }
}

int gen_pump(struct gen *g, int timeout_ms) {
    int waited = 0;
    for (;;) {
        int progressed = 0, all_done = 1;
        for (int i = 0; i < g->n; i++) {
            struct gen_choice *c = &g->ch[i];
            struct vlm_seq_event ev;
            while (!c->done) {
                int r = vlm_seq_wait(c->q, &ev, 0);
                if (r == 1) { apply_event(g, c, &ev); progressed = 1; }
                else {
                    if (r < 0) { c->error = VLM_E_CANCELLED; finish_choice(g, c, "abort"); }
                    break;
                }
            }
            all_done &= c->done;
        }
        if (all_done) return 1;
        if (progressed) return 0;
        g->shutdown = __atomic_load_n(&g->s->stopping, __ATOMIC_SEQ_CST);
        if ((g->conn && vlm_http_client_gone(g->conn)) || g->shutdown) {
            for (int i = 0; i < g->n; i++)
                if (!g->ch[i].done) finish_choice(g, &g->ch[i], "abort");
            return -1;
        }
        if (waited >= timeout_ms) return 0;
        /* block on one unfinished sequence for a short slice, then look at all again */
        for (int i = 0; i < g->n; i++)
            if (!g->ch[i].done) {
                struct vlm_seq_event ev;
                int r = vlm_seq_wait(g->ch[i].q, &ev, 20);
                if (r == 1) {
                    apply_event(g, &g->ch[i], &ev);
                    return g->ch[i].done ? gen_pump(g, 0) : 0;   /* report progress at once */
                }
                break;
            }
        waited += 20;
    }
}

void gen_free(struct gen *g) {
    if (!g) return;
    for (int i = 0; g->ch && i < g->n; i++) {
        struct gen_choice *c = &g->ch[i];
        vlm_seq_release(c->q);
        vlm_detok_free(c->dt);
        vlm_buf_free(&c->text);
        json_decref(c->lp);
        json_decref(c->lp_top);
        json_decref(c->lp_tok);
    }
    vlm_free(g->ch);
    vlm_free(g->echo);
    vlm_buf_free(&g->out);
    vlm_api_request_free(&g->r);
    vlm_free(g);
}

json_t *gen_usage(const struct gen *g) {
    long gen = 0;
    for (int i = 0; i < g->n; i++) gen += g->ch[i].n_gen;
    return json_pack("{s:I, s:I, s:I, s:n}", "prompt_tokens", (json_int_t)g->n_prompt, "total_tokens",
                     (json_int_t)(g->n_prompt + (size_t)gen), "completion_tokens", (json_int_t)gen,
                     "prompt_tokens_details");
}

void gen_log_done(const struct gen *g, int status, const char *how) {
    if (!g->s->cfg.log_requests) return;
    long out = 0;
    for (int i = 0; i < g->n; i++) out += g->ch[i].n_gen;
    VLM_LOGI("%s %s: %d, prompt %zu tokens (%zu image), output %ld tokens, %.2f s%s%s", g->chat ? "chat" : "completion",
             g->id, status, g->n_prompt, g->n_image_tokens, out, vlm_srv_now() - g->t_arrival, how ? ", " : "",
             how ? how : "");
}
