/* tok_bpe.c — the BPE model: merge-rank hash table and merging one word's symbols, by a
 * rank array for short words and a binary heap over a linked list for long ones (the same
 * order as HF: lowest rank first, leftmost first among equal ranks). */
#include "text/tok_internal.h"

#include <string.h>

#include "util/error.h"
#include "util/utf8.h"

#define BPE_SHORT 48   /* words up to this many symbols use the quadratic rank scan */

uint32_t tok_byte_char(uint8_t b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    uint32_t n = 0;   /* index of b among the bytes that are not printable */
    for (unsigned c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174)) n++;
    return 256 + n;
}

int tok_char_byte(uint32_t cp) {
    if (cp < 256) return ((cp >= 33 && cp <= 126) || (cp >= 161 && cp <= 172) || cp >= 174) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    uint32_t n = cp - 256;
    for (unsigned c = 0; c < 256; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174) && n-- == 0) return (int)c;
    return -1;
}

int tok_ids_push(struct tok_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64, bytes;
        if (!vlm_mul_ok(cap, sizeof *a->v, &bytes)) return VLM_E_NOMEM;
        int32_t *v = vlm_realloc(a->v, bytes);
        if (!v) return VLM_E_NOMEM;
        a->v = v; a->cap = cap;
    }
    a->v[a->n++] = id;
    return VLM_OK;
}

static inline uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

int tok_merges_init(struct tok_merges *m, size_t n) {
    size_t cap = 16, bits = 512;
    while (cap < n * 2 + 16) cap <<= 1;
    while (bits < n * 8) bits <<= 1;
    m->slots = vlm_calloc(cap, sizeof *m->slots);
    m->filter = vlm_calloc(bits / 64, sizeof *m->filter);
    if (!m->slots || !m->filter) { tok_merges_free(m); return VLM_E_NOMEM; }
    m->mask = cap - 1; m->n = 0; m->fmask = bits - 1;
    return VLM_OK;
}

void tok_merges_free(struct tok_merges *m) {
    vlm_free(m->slots); vlm_free(m->filter);
    m->slots = NULL; m->filter = NULL;
}

static inline uint64_t merge_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)(a + 1) << 32) | (uint32_t)(b + 1);
}

/* Later duplicates replace earlier ones, as HF's map collection does. */
int tok_merges_put(struct tok_merges *m, int32_t a, int32_t b, uint32_t rank, int32_t id) {
    uint64_t key = merge_key(a, b), h = mix64(key), f = (h >> 32) & m->fmask;
    m->filter[f >> 6] |= 1ULL << (f & 63);
    for (uint64_t i = h & m->mask;; i = (i + 1) & m->mask) {
        struct tok_merge_slot *s = &m->slots[i];
        if (s->key == 0 || s->key == key) {
            if (s->key == 0) m->n++;
            s->key = key; s->rank = rank; s->id = (uint32_t)id;
            return VLM_OK;
        }
    }
}

static inline const struct tok_merge_slot *merge_get(const struct tok_merges *m, int32_t a, int32_t b) {
    uint64_t key = merge_key(a, b), h = mix64(key), f = (h >> 32) & m->fmask;
    if (!(m->filter[f >> 6] >> (f & 63) & 1)) return NULL;
    for (uint64_t i = h & m->mask;; i = (i + 1) & m->mask) {
        const struct tok_merge_slot *s = &m->slots[i];
        if (s->key == key) return s;
        if (s->key == 0) return NULL;
    }
}

static inline uint32_t pair_rank(const struct tok_merges *m, int32_t a, int32_t b) {
    const struct tok_merge_slot *s = merge_get(m, a, b);
    return s ? s->rank : UINT32_MAX;
}

/* Short words: ids[0..n) in place, r[i] = rank of (ids[i], ids[i+1]). Returns the new n. */
static size_t merge_short(const struct tok_merges *m, int32_t *ids, size_t n) {
    uint32_t r[BPE_SHORT];
    for (size_t i = 0; i + 1 < n; i++) r[i] = pair_rank(m, ids[i], ids[i + 1]);
    while (n > 1) {
        size_t best = 0;
        for (size_t i = 1; i + 1 < n; i++) if (r[i] < r[best]) best = i;
        if (r[best] == UINT32_MAX) break;
        ids[best] = (int32_t)merge_get(m, ids[best], ids[best + 1])->id;
        memmove(ids + best + 1, ids + best + 2, (n - best - 2) * sizeof *ids);
        if (best + 2 < n) memmove(r + best + 1, r + best + 2, (n - best - 3) * sizeof *r);
        n--;
        if (best > 0) r[best - 1] = pair_rank(m, ids[best - 1], ids[best]);
        if (best + 1 < n) r[best] = pair_rank(m, ids[best], ids[best + 1]);
    }
    return n;
}

/* Min-heap of candidate merges ordered by (rank, position); each entry carries its pair and
 * the merged id, so a stale entry is recognised without a hash lookup: the pair at pos
 * changes only when pos itself merges, and a merged id never equals either part. */
struct cand { uint64_t key; int32_t a, b, id; };
struct heap { struct cand *v; size_t n; };
static void heap_push(struct heap *h, struct cand x) {
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h->v[p].key <= x.key) break;
        h->v[i] = h->v[p]; i = p;
    }
    h->v[i] = x;
}
static struct cand heap_pop(struct heap *h) {
    struct cand top = h->v[0], x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && h->v[c + 1].key < h->v[c].key) c++;
        if (x.key <= h->v[c].key) break;
        h->v[i] = h->v[c]; i = c;
    }
    if (h->n) h->v[i] = x;
    return top;
}

static void push_pair(struct heap *h, const struct tok_merges *m, const int32_t *ids, int32_t l, int32_t r) {
    const struct tok_merge_slot *s = merge_get(m, ids[l], ids[r]);
    if (s) heap_push(h, (struct cand){(uint64_t)s->rank << 32 | (uint32_t)l, ids[l], ids[r], (int32_t)s->id});
}

/* Long words: linked list over ids[0..n) with the heap of candidate pairs. */
static int merge_long(const struct tok_merges *m, int32_t *ids, size_t n, size_t *n_out) {
    size_t bytes;
    if (!vlm_mul_ok(n + 2, 2 * sizeof(int32_t) + 2 * sizeof(struct cand), &bytes)) return VLM_E_NOMEM;
    char *mem = vlm_malloc(bytes);
    if (!mem) return VLM_E_NOMEM;
    struct cand *hv = (struct cand *)mem;         /* at most 2n live entries (see below) */
    int32_t *nx = (int32_t *)(hv + 2 * n + 4), *pv = nx + n;
    struct heap h = {hv, 0};
    for (size_t i = 0; i < n; i++) {
        nx[i] = i + 1 < n ? (int32_t)(i + 1) : -1;
        pv[i] = (int32_t)i - 1;
        if (i + 1 < n) push_pair(&h, m, ids, (int32_t)i, (int32_t)i + 1);
    }
    while (h.n) {
        struct cand c = heap_pop(&h);
        int32_t pos = (int32_t)(uint32_t)c.key, nxt = nx[pos];
        if (ids[pos] != c.a || nxt < 0 || ids[nxt] != c.b) continue;
        ids[pos] = c.id;
        ids[nxt] = -1;
        nx[pos] = nx[nxt];
        if (nx[pos] >= 0) pv[nx[pos]] = pos;
        /* Each merge pops one entry and pushes at most two, so the heap never exceeds
         * (n - 1) initial pairs + (n - 1) merges entries. */
        if (pv[pos] >= 0) push_pair(&h, m, ids, pv[pos], pos);
        if (nx[pos] >= 0) push_pair(&h, m, ids, pos, nx[pos]);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) if (ids[i] >= 0) ids[k++] = ids[i];
    *n_out = k;
    vlm_free(mem);
    return VLM_OK;
}

/* Initial symbols of a word: one per byte (byte-level) or per character with byte fallback
 * and (fused) unknown tokens. Returns the count written to ids (capacity n). */
static size_t initial_symbols(const struct vlm_tokenizer *t, const uint8_t *s, size_t n, int32_t *ids) {
    size_t k = 0;
    if (t->byte_level) {
        for (size_t i = 0; i < n; i++) {
            int32_t id = t->byte_id[s[i]];
            if (id < 0) id = t->unk_id;
            if (id < 0) continue;
            if (id == t->unk_id && t->fuse_unk && k && ids[k - 1] == id) continue;
            ids[k++] = id;
        }
        return k;
    }
    size_t i = 0;
    while (i < n) {
        uint32_t cp = 0;
        size_t cl = vlm_utf8_decode(s + i, n - i, &cp);
        if (!cl) cl = 1;   /* cannot happen: input is repaired to valid UTF-8 first */
        int32_t id = (t->bmp_id && cl && cp < 65536) ? t->bmp_id[cp]
                                                    : tok_strmap_get(&t->vocab, (const char *)s + i, cl);
        if (id >= 0) { ids[k++] = id; i += cl; continue; }
        if (t->byte_fallback) {
            size_t j = 0;
            while (j < cl && t->byte_id[s[i + j]] >= 0) j++;
            if (j == cl) {
                for (j = 0; j < cl; j++) ids[k++] = t->byte_id[s[i + j]];
                i += cl;
                continue;
            }
        }
        i += cl;
        if (t->unk_id < 0) continue;
        if (t->fuse_unk && k && ids[k - 1] == t->unk_id) continue;
        ids[k++] = t->unk_id;
    }
    return k;
}

int tok_bpe_word(const struct vlm_tokenizer *t, const uint8_t *s, size_t n,
                 struct tok_ids *out, struct vlm_error *err) {
    if (n == 0) return VLM_OK;
    if (t->ignore_merges) {
        int32_t id = t->byte_level ? tok_strmap_get(&t->raw, (const char *)s, n)
                                   : tok_strmap_get(&t->vocab, (const char *)s, n);
        if (id >= 0) return tok_ids_push(out, id) ? vlm_error_set(err, VLM_E_NOMEM, "out of memory") : VLM_OK;
    }
    int32_t small[BPE_SHORT * 4];   /* byte fallback: up to 4 ids per character */
    int32_t *ids = small;
    if (n > BPE_SHORT) {
        size_t bytes;
        if (!vlm_mul_ok(n, sizeof *ids, &bytes) || !(ids = vlm_malloc(bytes)))
            return vlm_error_set(err, VLM_E_NOMEM, "out of memory");
    }
    size_t k = initial_symbols(t, s, n, ids);
    int rc = VLM_OK;
    if (k <= BPE_SHORT) k = merge_short(&t->merges, ids, k);
    else rc = merge_long(&t->merges, ids, k, &k);
    for (size_t i = 0; rc == VLM_OK && i < k; i++) rc = tok_ids_push(out, ids[i]);
    if (ids != small) vlm_free(ids);
    return rc ? vlm_error_set(err, VLM_E_NOMEM, "out of memory") : VLM_OK;
}
