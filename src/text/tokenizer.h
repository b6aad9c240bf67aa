/* tokenizer.h — Hugging Face tokenizer.json tokenizers (byte-level BPE and SentencePiece-style
 * BPE with byte fallback), ids identical to HF `tokenizers`; and incremental detokenizing.
 * A loaded tokenizer is immutable and may be shared by threads. */
#ifndef VLM_TEXT_TOKENIZER_H
#define VLM_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

struct vlm_error;
struct vlm_tokenizer;

/* Flags for vlm_tokenize. */
enum {
    VLM_TOK_ADD_SPECIAL   = 1 << 0, /* run the post-processor (BOS/EOS as the files say) */
    VLM_TOK_PARSE_SPECIAL = 1 << 1, /* match added/special token spellings in the text; without
                                       it they are plain text (user content in the server) */
};

/* Loads tokenizer.json (path) and, if config_path is not NULL, tokenizer_config.json
 * (add_bos_token/add_eos_token, special tokens). *out is freed with vlm_tokenizer_free. */
int vlm_tokenizer_load(const char *json_path, const char *config_path,
                       struct vlm_tokenizer **out, struct vlm_error *err);
/* Same as vlm_tokenizer_load from bytes in memory (config may be NULL); for tests, fuzzers
 * and callers that already hold the files. */
int vlm_tokenizer_load_mem(const char *json, size_t json_len, const char *config, size_t config_len,
                           struct vlm_tokenizer **out, struct vlm_error *err);
/* Loads from a model folder: tokenizer.json + tokenizer_config.json when present. The config
 * acts as transformers' AutoTokenizer applies it: add_bos_token/add_eos_token (or a file
 * without post-processor) rebuild the template as "[BOS] $A [EOS]", added_tokens_decoder
 * marks/adds tokens, bos_token/eos_token name BOS/EOS. The pipeline itself is tokenizer.json's
 * (transformers 5.x rebuilds a few classes differently; see scripts/make_tokenizer_fixtures.py). */
int vlm_tokenizer_load_dir(const char *dir, struct vlm_tokenizer **out, struct vlm_error *err);
void vlm_tokenizer_free(struct vlm_tokenizer *tok);

struct vlm_gguf;
/* Builds the tokenizer a GGUF file's metadata describes (tokenizer.ggml.*: model "gpt2",
 * tokens, token_type, merges, bos/eos ids, add_bos_token/add_eos_token, and the pre-tokenizer
 * named by tokenizer.ggml.pre, e.g. "smollm", "llama-bpe", "qwen2", "gpt2") with the ids the
 * model's Hugging Face tokenizer gives. CONTROL and USER_DEFINED tokens become added tokens
 * (CONTROL ones special). Errors name the file and key; an unknown pre-tokenizer or tokenizer
 * model is VLM_E_UNSUPPORTED. (tok_gguf.c) */
int vlm_tokenizer_from_gguf(const struct vlm_gguf *g, struct vlm_tokenizer **out, struct vlm_error *err);

/* Encodes text[0..len) into *ids (vlm_malloc'd, caller frees) with *n_ids entries.
 * Invalid UTF-8 is first repaired to U+FFFD per maximal invalid subpart (Python's
 * bytes.decode("utf-8", "replace")). Non-special added tokens are always matched; special
 * ones only with VLM_TOK_PARSE_SPECIAL (HF's encode_special_tokens=False). Thread-safe. */
int vlm_tokenize(const struct vlm_tokenizer *tok, const char *text, size_t len, int flags,
                 int32_t **ids, size_t *n_ids, struct vlm_error *err);

/* Decodes ids into *text (vlm_malloc'd, NUL-terminated) as HF tokenizers' decode() does
 * (the decoder chain; no transformers-level clean_up_tokenization_spaces); skip_special drops
 * special tokens (skip_special_tokens=True); ids with no token are skipped. Thread-safe. */
int vlm_detokenize(const struct vlm_tokenizer *tok, const int32_t *ids, size_t n_ids,
                   int skip_special, char **text, size_t *len, struct vlm_error *err);

size_t      vlm_tokenizer_vocab_size(const struct vlm_tokenizer *tok); /* incl. added tokens */
int32_t     vlm_tokenizer_token_id(const struct vlm_tokenizer *tok, const char *piece); /* -1 if none */
const char *vlm_tokenizer_piece(const struct vlm_tokenizer *tok, int32_t id); /* raw vocab string; NULL if out of range */
int         vlm_tokenizer_is_special(const struct vlm_tokenizer *tok, int32_t id);
int32_t     vlm_tokenizer_bos_id(const struct vlm_tokenizer *tok); /* -1 if none */
int32_t     vlm_tokenizer_eos_id(const struct vlm_tokenizer *tok); /* -1 if none */
const char *vlm_tokenizer_bos_token(const struct vlm_tokenizer *tok); /* "" if none */
const char *vlm_tokenizer_eos_token(const struct vlm_tokenizer *tok); /* "" if none */

/* Incremental detokenizer for streaming: push ids one at a time; text comes out only when it
 * is complete UTF-8 and no later id can change it; the concatenation of all outputs plus
 * vlm_detok_flush equals vlm_detokenize of all ids. */
struct vlm_detok;
int  vlm_detok_new(const struct vlm_tokenizer *tok, int skip_special, struct vlm_detok **out);
/* Appends newly final text to *text, *len (vlm_malloc'd, possibly empty). */
int  vlm_detok_push(struct vlm_detok *d, int32_t id, char **text, size_t *len, struct vlm_error *err);
int  vlm_detok_flush(struct vlm_detok *d, char **text, size_t *len, struct vlm_error *err);
void vlm_detok_free(struct vlm_detok *d);

#endif
