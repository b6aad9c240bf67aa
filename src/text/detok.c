/* detok.c — incremental detokenizer for streaming: ids wait until a later id can no longer
 * change their text (an incomplete UTF-8 byte sequence, an open run of <0xNN> tokens, a
 * leading space a Strip decoder may still remove), so the concatenated output equals
 * vlm_detokenize of all ids. */
#include "text/tok_internal.h"

#include <string.h>

#include "util/error.h"

struct vlm_detok {
    const struct vlm_tokenizer *t;
    int skip_special;
    int started;            /* some text was already emitted: later parts continue it */
    int first_needs_text;   /* a Strip after a join: the first part must not come out empty */
    struct tok_ids pend;
};

int vlm_detok_new(const struct vlm_tokenizer *tok, int skip_special, struct vlm_detok **out) {
    struct vlm_detok *d = vlm_calloc(1, sizeof *d);
    *out = NULL;
    if (!d) return VLM_E_NOMEM;
    d->t = tok;
    d->skip_special = skip_special;
    int joined = 0;
    for (size_t i = 0; i < tok->n_decs; i++) {
        if (tok->decs[i].type == DEC_STRIP && tok->decs[i].start > 0 && joined) d->first_needs_text = 1;
        if (tok->decs[i].type == DEC_BYTELEVEL || tok->decs[i].type == DEC_FUSE) joined = 1;
    }
    *out = d;
    return VLM_OK;
}

/* Emits decode(pend[0..k)) into *text and drops those ids; an empty first part is held
 * back when first_needs_text says a later id could still be stripped differently. */
static int emit(struct vlm_detok *d, size_t k, struct vlm_buf *out, struct vlm_error *err) {
    size_t before = out->len;
    int rc = tok_decode_ids(d->t, d->pend.v, k, d->started, out, err);
    if (rc) return rc;
    if (!d->started && d->first_needs_text && out->len == before) return VLM_OK;
    /* later parts continue the text only once some id had a string (unknown ids are
     * dropped by the full decode too, and must not count as a first token) */
    for (size_t i = 0; i < k && !d->started; i++) d->started = vlm_tokenizer_piece(d->t, d->pend.v[i]) != NULL;
    memmove(d->pend.v, d->pend.v + k, (d->pend.n - k) * sizeof *d->pend.v);
    d->pend.n -= k;
    return VLM_OK;
}

static int finish(struct vlm_buf *out, char **text, size_t *len, struct vlm_error *err) {
    if (vlm_buf_append(out, "", 0)) { vlm_buf_free(out); return vlm_error_set(err, VLM_E_NOMEM, "out of memory"); }
    *len = out->len;
    *text = vlm_buf_take(out);
    return VLM_OK;
}

int vlm_detok_push(struct vlm_detok *d, int32_t id, char **text, size_t *len, struct vlm_error *err) {
    struct vlm_buf out = {0};
    *text = NULL; *len = 0;
    if (!(d->skip_special && vlm_tokenizer_is_special(d->t, id))) {
        if (tok_ids_push(&d->pend, id)) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        size_t k = d->pend.n;
        while (k > 0 && !tok_decode_can_cut(d->t, d->pend.v, k, d->pend.n)) k--;
        int rc = k ? emit(d, k, &out, err) : VLM_OK;
        if (rc) { vlm_buf_free(&out); return rc; }
    }
    return finish(&out, text, len, err);
}

int vlm_detok_flush(struct vlm_detok *d, char **text, size_t *len, struct vlm_error *err) {
    struct vlm_buf out = {0};
    *text = NULL; *len = 0;
    if (d->pend.n) {
        int rc = tok_decode_ids(d->t, d->pend.v, d->pend.n, d->started, &out, err);
        if (rc) { vlm_buf_free(&out); return rc; }
        d->pend.n = 0;
        d->started = 1;
    }
    return finish(&out, text, len, err);
}

void vlm_detok_free(struct vlm_detok *d) {
    if (!d) return;
    vlm_free(d->pend.v);
    vlm_free(d);
}
