/* tok_internal.h — the loaded tokenizer's parts shared by the tokenizer's files: vocabulary
 * and merge hash tables, the normalizer / pre-tokenizer / decoder step lists, added tokens.
 * Everything here is immutable after loading (the tokenizer is shared by threads). */
#ifndef VLM_TEXT_TOK_INTERNAL_H
#define VLM_TEXT_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "text/tokenizer.h"
#include "util/alloc.h"

struct vlm_error;
struct json_t;

/* Growable id list. */
struct tok_ids { int32_t *v; size_t n, cap; };

/* Caps on what a tokenizer.json may declare. */
#define TOK_MAX_JSON_BYTES   (512u << 20)
#define TOK_MAX_VOCAB        (8u << 20)
#define TOK_MAX_MERGES       (8u << 20)
#define TOK_MAX_TOKEN_BYTES  4096u
#define TOK_MAX_STEPS        64u       /* normalizers / pre-tokenizers / decoders per list */
#define TOK_MAX_TEMPLATE     64u
#define TOK_MAX_TEXT_BYTES   ((size_t)1 << 31)

/* A string -> id hash table (open addressing, keys are the tokenizer's own strings). */
struct tok_strmap {
    uint32_t *slots;      /* id + 1; 0 = empty */
    uint32_t  mask;
    const char *const *keys;   /* keys[id], NUL-terminated; lengths in lens[id] */
    const uint32_t *lens;
};

/* Merge table: (left id, right id) -> rank and merged id. */
struct tok_merge_slot { uint64_t key; uint32_t rank, id; };
struct tok_merges {
    struct tok_merge_slot *slots;   /* key 0 = empty (keys store (a+1)<<32 | (b+1)) */
    uint64_t mask;
    size_t   n;
    uint64_t *filter;               /* one bit per hashed pair: most pairs with no merge are
                                       rejected here without touching the big table */
    uint64_t fmask;                 /* filter size in bits - 1 */
};

enum tok_norm_type { NORM_PREPEND, NORM_REPLACE, NORM_NFC, NORM_NFKC, NORM_NFD, NORM_NFKD,
                     NORM_LOWERCASE };
struct tok_norm {
    enum tok_norm_type type;
    char *a; size_t a_len;   /* Prepend: text; Replace: pattern string */
    char *b; size_t b_len;   /* Replace: content */
    pcre2_code *re;          /* Replace with a Regex pattern */
};

enum tok_split_behavior { SPLIT_REMOVED, SPLIT_ISOLATED, SPLIT_MERGED_PREV, SPLIT_MERGED_NEXT,
                          SPLIT_CONTIGUOUS };
enum tok_pre_type { PRE_SPLIT, PRE_BYTELEVEL, PRE_DIGITS, PRE_METASPACE, PRE_WHITESPACE_SPLIT };
enum tok_prepend { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
struct tok_pre {
    enum tok_pre_type type;
    enum tok_split_behavior behavior;
    int invert;
    char *lit; size_t lit_len;     /* Split with a String pattern */
    pcre2_code *re;                /* Split regex, ByteLevel's GPT-2 regex, Digits' \p{N} */
    int add_prefix_space;          /* ByteLevel */
    int use_regex;                 /* ByteLevel */
    int individual;                /* Digits */
    uint32_t replacement;          /* Metaspace */
    char repl[4]; size_t repl_len;
    enum tok_prepend prepend;      /* Metaspace */
    int split;                     /* Metaspace */
};

enum tok_dec_type { DEC_BYTELEVEL, DEC_METASPACE, DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE,
                    DEC_STRIP };
struct tok_dec {
    enum tok_dec_type type;
    char *a; size_t a_len;     /* Replace pattern; Metaspace replacement */
    char *b; size_t b_len;     /* Replace content */
    uint32_t content;          /* Strip: the character */
    size_t start, stop;        /* Strip */
    enum tok_prepend prepend;  /* Metaspace */
};

/* Trie over added-token spellings for leftmost-longest matching. */
struct tok_trie {
    uint64_t *keys;      /* (node << 8 | byte) + 1; 0 = empty */
    uint32_t *child;
    uint64_t  mask;
    int32_t  *term;      /* per node: added-token index ending here, or -1 */
    size_t    n_nodes;
    uint8_t   first[256];/* bytes that start some spelling */
};

struct tok_added {
    int32_t id;
    char   *content; size_t len;
    char   *norm; size_t norm_len;   /* normalized spelling (normalized tokens only) */
    uint8_t special, lstrip, rstrip, single_word, normalized;
};

struct vlm_tokenizer {
    /* model (BPE) */
    size_t    n_vocab;           /* model ids are [0, n_vocab) */
    char    **pieces;            /* model token strings, NULL for gaps */
    uint32_t *piece_len;
    struct tok_strmap vocab;     /* piece -> id */
    struct tok_strmap raw;       /* byte-level: decoded bytes -> id (raw_keys) */
    char    **raw_keys; uint32_t *raw_len;
    struct tok_merges merges;
    int32_t   byte_id[256];      /* byte-level: id of each byte's char; fallback: <0xNN> */
    int32_t  *bmp_id;            /* not byte-level: id of each BMP character's token, -1 if none */
    int32_t   unk_id;
    int byte_fallback, fuse_unk, ignore_merges, byte_level;

    struct tok_norm *norms; size_t n_norms;
    struct tok_pre  *pres;  size_t n_pres;
    struct tok_dec  *decs;  size_t n_decs;
    int has_decoder;

    struct tok_added *added; size_t n_added;
    struct tok_trie trie_raw, trie_norm;   /* non-normalized / normalized spellings */
    struct tok_strmap added_map;           /* content -> added index */
    const char **added_keys; uint32_t *added_lens;
    size_t    n_total;                     /* vocab size incl. added ids */
    int32_t  *added_of_id;                 /* id -> index in added or -1; n_total entries */

    int32_t  tmpl[TOK_MAX_TEMPLATE];       /* post-processor single template: -1 = $A */
    size_t   n_tmpl;
    int      has_tmpl;
    int32_t  bos_id, eos_id;
    char    *bos_tok, *eos_tok;

};

/* Loader pieces (tokenizer.c / tok_json.c). */
/* Builds a tokenizer from a parsed tokenizer.json root and tokenizer_config.json object (cfg
 * may be NULL): what the file loaders and the GGUF builder (tok_gguf.c) share. */
int  tok_load_json(struct json_t *root, struct json_t *cfg, struct vlm_tokenizer **out, struct vlm_error *err);
uint64_t tok_hash(const void *p, size_t n);
int  tok_strmap_build(struct tok_strmap *m, const char *const *keys, const uint32_t *lens,
                      size_t n, struct vlm_error *err);
int32_t tok_strmap_get(const struct tok_strmap *m, const char *s, size_t n);
void tok_strmap_free(struct tok_strmap *m);

/* BPE (tok_bpe.c). */
int  tok_merges_init(struct tok_merges *m, size_t n);
int  tok_merges_put(struct tok_merges *m, int32_t a, int32_t b, uint32_t rank, int32_t id);
void tok_merges_free(struct tok_merges *m);
/* Appends the ids of one pre-tokenized word (normalized bytes s[0..n)) to *out. */
int  tok_bpe_word(const struct vlm_tokenizer *t, const uint8_t *s, size_t n,
                  struct tok_ids *out, struct vlm_error *err);
/* The byte-level alphabet: char (as code point) of byte b, and its inverse (-1 if none). */
uint32_t tok_byte_char(uint8_t b);
int      tok_char_byte(uint32_t cp);

int  tok_ids_push(struct tok_ids *a, int32_t id);

/* Normalizers (tok_normalize.c): normalizes s[0..n) into out (reset first). */
int  tok_normalize(const struct vlm_tokenizer *t, const char *s, size_t n, struct vlm_buf *out,
                   struct vlm_error *err);

/* Pre-tokenizers (tok_pretok.c): splits the normalized piece s[0..n) into words and runs
 * the model on each, appending ids. first: the piece starts the input (Metaspace "first"). */
int  tok_pretok_encode(const struct vlm_tokenizer *t, const char *s, size_t n, int first,
                       struct tok_ids *out, struct vlm_error *err);
pcre2_code *tok_regex_compile(const char *pat, size_t len, struct vlm_error *err);
/* Shared match context: caps the work of one regex match (a tokenizer.json may carry a
 * catastrophic pattern); read-only, so threads may share it. */
pcre2_match_context *tok_regex_context(void);

/* Decoders (tok_decode.c): decodes ids (already filtered for skip_special) into out.
 * cont: the ids continue an earlier part (no first-token effects; no-decoder joins add " "). */
int  tok_decode_ids(const struct vlm_tokenizer *t, const int32_t *ids, size_t n, int cont,
                    struct vlm_buf *out, struct vlm_error *err);
/* 1 if a later id cannot change how ids[0..k) decode (a safe cut for streaming). */
int  tok_decode_can_cut(const struct vlm_tokenizer *t, const int32_t *ids, size_t k, size_t n);
const char *tok_id_str(const struct vlm_tokenizer *t, int32_t id, size_t *len);

/* Step lists (tok_json.c). */
void tok_steps_free(struct vlm_tokenizer *t);

/* Added-token tries (tok_added.c). */
int  tok_added_normalize_build(struct vlm_tokenizer *t, struct vlm_error *err);
int  tok_trie_build(struct tok_trie *tr, const struct tok_added *added, size_t n, int normalized,
                    struct vlm_error *err);
void tok_trie_free(struct tok_trie *tr);
/* Finds the leftmost-longest spelling in s[from..n): returns the added index or -1;
 * *ms, *me receive the match offsets. */
int32_t tok_trie_find(const struct tok_trie *tr, const uint8_t *s, size_t n, size_t from,
                      size_t *ms, size_t *me);

#endif
