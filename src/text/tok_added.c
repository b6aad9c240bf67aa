/* tok_added.c — added tokens: a byte trie over their spellings for leftmost-longest
 * matching (the order HF's Aho-Corasick split uses), and the normalized spellings of
 * tokens marked "normalized" (matched after the normalizer has run). */
#include "text/tok_internal.h"

#include <string.h>

#include "util/error.h"

static inline uint64_t edge_key(uint32_t node, uint8_t b) { return ((uint64_t)node << 8 | b) + 1; }
static inline uint64_t mixk(uint64_t x) { x ^= x >> 31; x *= 0x9E3779B97F4A7C15ULL; return x ^ (x >> 29); }

static uint32_t child_get(const struct tok_trie *tr, uint32_t node, uint8_t b) {
    uint64_t k = edge_key(node, b);
    for (uint64_t i = mixk(k) & tr->mask;; i = (i + 1) & tr->mask) {
        if (tr->keys[i] == k) return tr->child[i];
        if (tr->keys[i] == 0) return 0;
    }
}

void tok_trie_free(struct tok_trie *tr) {
    vlm_free(tr->keys); vlm_free(tr->child); vlm_free(tr->term);
    memset(tr, 0, sizeof *tr);
}

int tok_trie_build(struct tok_trie *tr, const struct tok_added *added, size_t n, int normalized,
                   struct vlm_error *err) {
    size_t edges = 0;
    memset(tr, 0, sizeof *tr);
    for (size_t i = 0; i < n; i++)
        if (added[i].normalized == normalized) edges += normalized ? added[i].norm_len : added[i].len;
    size_t cap = 16;
    while (cap < edges * 2 + 16) cap <<= 1;
    tr->keys = vlm_calloc(cap, sizeof *tr->keys);
    tr->child = vlm_calloc(cap, sizeof *tr->child);
    tr->term = vlm_malloc((edges + 1) * sizeof *tr->term);
    if (!tr->keys || !tr->child || !tr->term) return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    tr->mask = cap - 1;
    tr->n_nodes = 1;
    tr->term[0] = -1;
    for (size_t i = 0; i < n; i++) {
        if (added[i].normalized != normalized) continue;
        const uint8_t *s = (const uint8_t *)(normalized ? added[i].norm : added[i].content);
        size_t len = normalized ? added[i].norm_len : added[i].len;
        if (len == 0) continue;
        uint32_t node = 0;
        for (size_t k = 0; k < len; k++) {
            uint64_t key = edge_key(node, s[k]);
            uint64_t j = mixk(key) & tr->mask;
            while (tr->keys[j] && tr->keys[j] != key) j = (j + 1) & tr->mask;
            if (!tr->keys[j]) {
                tr->keys[j] = key;
                tr->child[j] = (uint32_t)tr->n_nodes;
                tr->term[tr->n_nodes++] = -1;
            }
            node = tr->child[j];
        }
        if (tr->term[node] < 0) tr->term[node] = (int32_t)i;   /* first listed wins a tie */
        tr->first[s[0]] = 1;
    }
    return VLM_OK;
}

int32_t tok_trie_find(const struct tok_trie *tr, const uint8_t *s, size_t n, size_t from,
                      size_t *ms, size_t *me) {
    if (!tr->keys || tr->n_nodes <= 1) return -1;
    for (size_t i = from; i < n; i++) {
        if (!tr->first[s[i]]) continue;
        int32_t best = -1;
        uint32_t node = 0;
        for (size_t k = i; k < n; k++) {
            node = child_get(tr, node, s[k]);
            if (!node) break;
            if (tr->term[node] >= 0) { best = tr->term[node]; *me = k + 1; }
        }
        if (best >= 0) { *ms = i; return best; }
    }
    return -1;
}

/* Normalized spellings of "normalized" added tokens, and their trie. */
int tok_added_normalize_build(struct vlm_tokenizer *t, struct vlm_error *err) {
    struct vlm_buf b = {0};
    int rc = VLM_OK;
    for (size_t i = 0; rc == VLM_OK && i < t->n_added; i++) {
        struct tok_added *a = &t->added[i];
        if (!a->normalized) continue;
        rc = tok_normalize(t, a->content, a->len, &b, err);
        if (rc == VLM_OK && !(a->norm = vlm_memdup(b.len ? b.data : "", b.len + 1))) rc = VLM_E_NOMEM;
        a->norm_len = b.len;
    }
    vlm_buf_free(&b);
    if (rc == VLM_E_NOMEM) return vlm_error_set(err, rc, "out of memory");
    return rc ? rc : tok_trie_build(&t->trie_norm, t->added, t->n_added, 1, err);
}
