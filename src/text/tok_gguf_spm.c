/* tok_gguf_spm.c — SentencePiece vocabularies in GGUF (tokenizer.ggml.model "llama": pieces
 * and scores, no merges) as Hugging Face's converter turns them into a byte-fallback BPE: the
 * merges are every split of a piece into two pieces, ordered by the merged piece's score
 * (highest first), ties by the merged piece's id, then by the two parts' ids (transformers'
 * SentencePieceExtractor). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "formats/gguf.h"
#include "text/tok_gguf.h"
#include "text/tok_internal.h"
#include "util/error.h"
#include "util/utf8.h"

struct spm_merge { float score; uint32_t id, l, r; };

static int cmp_merge(const void *a, const void *b) {
    const struct spm_merge *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    if (x->l != y->l) return x->l < y->l ? -1 : 1;
    return x->r < y->r ? -1 : x->r > y->r;
}

/* Appends merges for the pieces[0..n) (NULL = not in the vocabulary) with their scores. */
int tok_gguf_spm_merges(const char *const *pieces, const size_t *lens, const float *scores, size_t n,
                        json_t *vocab, json_t *merges, struct vlm_error *err) {
    size_t cap = 1024, nm = 0;
    struct spm_merge *m = vlm_malloc(cap * sizeof *m);
    if (!m) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    int rc = VLM_OK;
    for (size_t id = 0; id < n && rc == VLM_OK; id++) {
        const char *p = pieces[id];
        size_t len = lens[id], at = 0;
        if (!p) continue;
        while (at < len) {   /* split after each code point but the last */
            uint32_t cp;
            size_t cl = vlm_utf8_decode((const uint8_t *)p + at, len - at, &cp);
            at += cl ? cl : 1;
            if (at >= len) break;
            json_t *l = json_object_getn(vocab, p, at), *r = json_object_getn(vocab, p + at, len - at);
            if (!l || !r) continue;
            if (nm == cap) {
                struct spm_merge *nm2 = vlm_realloc(m, 2 * cap * sizeof *m);
                if (!nm2) { rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory"); break; }
                m = nm2;
                cap *= 2;
            }
            m[nm++] = (struct spm_merge){scores[id], (uint32_t)id, (uint32_t)json_integer_value(l), (uint32_t)json_integer_value(r)};
        }
    }
    if (rc == VLM_OK && nm > TOK_MAX_MERGES) rc = vlm_error_set(err, VLM_E_TOO_LARGE, "%zu merges", nm);
    if (rc == VLM_OK) qsort(m, nm, sizeof *m, cmp_merge);
    for (size_t i = 0; i < nm && rc == VLM_OK; i++) {
        json_t *pair = json_pack("[s%,s%]", pieces[m[i].l], lens[m[i].l], pieces[m[i].r], lens[m[i].r]);
        if (!pair || json_array_append_new(merges, pair)) rc = vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    vlm_free(m);
    return rc;
}
