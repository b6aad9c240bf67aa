/* engine.h — the engine API the CLI and the server build on: a loaded model (weights, config,
 * tokenizer, chat template, processor, generation defaults), image encoding, and a context
 * holding a KV cache (per sequence, growing in chunks, under one token cap) for up to
 * n_seq_max sequences that one batched decode step advances together (continuous batching:
 * one pass over the weights for every live sequence).
 *
 * Threading: a struct vlm_model is immutable after vlm_model_load and may be shared by threads
 * (vlm_model_encode_image may run on one thread while a context decodes on another, each with
 * its own pool). A struct vlm_ctx belongs to one thread at a time. */
#ifndef VLM_ENGINE_ENGINE_H
#define VLM_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "vlm.h"
#include "models/batch.h"
#include "models/model_info.h"

struct vlm_error;
struct vlm_pool;
struct vlm_image_input;
struct vlm_tokenizer;
struct vlm_template;
struct vlm_processor;
struct vlm_mllama_span;

/* ---- the model ---------------------------------------------------------------------- */

/* KV-cache element type (vLLM's --kv-cache-dtype). AUTO is the type activations are computed
 * in, as in vLLM; here that is f32 for every checkpoint (bf16 weights are widened), which keeps
 * answers equal to transformers run in float32. F16/BF16 halve the cache's memory and the bytes
 * each decode step reads; products and softmax still run in f32. */
enum vlm_kv_dtype { VLM_KV_AUTO = 0, VLM_KV_F32, VLM_KV_F16, VLM_KV_BF16 };
/* "auto", "float32"/"fp32", "float16"/"fp16"/"half", "bfloat16"/"bf16" -> 0; else -1 (fp8 and
 * other vLLM values are not supported). */
int vlm_kv_dtype_parse(const char *s, enum vlm_kv_dtype *out);
const char *vlm_kv_dtype_name(enum vlm_kv_dtype t);


/* vlm_model_load / vlm_model_free / vlm_model_default_params are in include/vlm.h. */
const struct vlm_model_info *vlm_model_get_info(const struct vlm_model *m);
/* Borrowed parts, valid while the model lives; NULL when the folder has none. */
const struct vlm_tokenizer *vlm_model_tokenizer(const struct vlm_model *m);
const struct vlm_template  *vlm_model_template(const struct vlm_model *m);
const struct vlm_processor *vlm_model_processor(const struct vlm_model *m);

/* Runs the vision tower + connector on one processed image. embd must hold
 * (in->n_image_tokens, d_model) floats (cross-attention models: (info.cross_image_rows, d_model)); row r is the embedding of the image's r-th image token
 * in prompt order. pool may be NULL (calling thread only). Thread-safe for a shared model. */
int vlm_model_encode_image(const struct vlm_model *m, struct vlm_pool *pool,
                           const struct vlm_image_input *in, float *embd, struct vlm_error *err);

/* ---- the context: per-sequence KV store + scratch + thread pool --------------------- */

struct vlm_ctx_params {
    int n_seq_max;      /* sequence slots (server: --max-num-seqs); seq ids are 0..n_seq_max-1 */
    int n_ctx;          /* max tokens in one sequence (max_model_len); 0 = the model's n_ctx_train */
    int n_kv_tokens;    /* total KV capacity shared by all sequences, in tokens; 0 = n_ctx * n_seq_max.
                           Memory is taken block by block as sequences grow and kept for reuse. */
    int n_batch_max;    /* most tokens in one vlm_ctx_decode call (prefill chunk + decode rows) */
    int n_threads;      /* threads of the context's pool; 0 = all cores */
    enum vlm_kv_dtype kv_dtype;   /* KV-cache element type; AUTO (0) = F32 */
};
struct vlm_ctx_params vlm_ctx_default_params(void);

struct vlm_ctx;
int  vlm_ctx_new(const struct vlm_model *m, const struct vlm_ctx_params *p, struct vlm_ctx **out,
                 struct vlm_error *err);
void vlm_ctx_free(struct vlm_ctx *ctx);
const struct vlm_model *vlm_ctx_model(const struct vlm_ctx *ctx);
struct vlm_pool *vlm_ctx_pool(struct vlm_ctx *ctx);       /* the context's pool (for encode) */
enum vlm_kv_dtype vlm_ctx_kv_dtype(const struct vlm_ctx *ctx);   /* resolved (never AUTO) */

/* One decode step over tokens of several sequences. Row i is a token of sequence seq_id[i] at
 * position pos[i]. Within a call, each sequence's rows must come in order and continue it:
 * pos == the sequence's current length (0 for a fresh or cleared slot), then +1 per row.
 * Row i's input is embd[i] (a d_model row, e.g. an image embedding) when embd && embd[i],
 * else the embedding of token[i]. Rows with want_logits[i] != 0 (when want_logits == NULL: the
 * last row of each sequence in the batch) produce logits, readable with vlm_ctx_logits in row
 * order until the next decode. struct vlm_batch is in models/batch.h.
 * Errors: VLM_E_INVALID for a bad seq id / position / token id / n_tokens > n_batch_max,
 * VLM_E_TOO_LARGE when a sequence would pass n_ctx, VLM_E_NOMEM when the KV pool is full (the
 * step then changed no sequence: the caller may clear a sequence and retry). */
int vlm_ctx_decode(struct vlm_ctx *ctx, const struct vlm_batch *b, struct vlm_error *err);

/* How many of a prompt's next rows one prefill step may take: at most budget of the remaining
 * rows [at, at + remaining), fewer when the model needs each image's rows in one step
 * (image_rows_whole) and the cut would fall between two image rows (rows[i] != NULL marks an
 * image row; NULL rows means no images). Returns 0 when no cut fits in budget (an image at
 * `at` longer than budget): the step should take none of this prompt's rows now. */
int vlm_prefill_take(const struct vlm_model_info *mi, const float *const *rows, size_t at, size_t remaining,
                     int budget);

/* Logits (n_vocab floats) of the j-th row that wanted logits in the last decode; NULL if out
 * of range. Valid until the next decode on this context. */
float *vlm_ctx_logits(struct vlm_ctx *ctx, int j);
int    vlm_ctx_n_logits(const struct vlm_ctx *ctx);

/* Frees a sequence's KV blocks at once (a finished request, a client that disconnected); the
 * slot may be reused with pos 0. */
void vlm_ctx_seq_clear(struct vlm_ctx *ctx, int seq_id);
/* Current length (tokens in the KV cache) of a sequence; 0 for a free slot. */
int  vlm_ctx_seq_len(const struct vlm_ctx *ctx, int seq_id);
/* KV accounting for admission control and /metrics. */
int  vlm_ctx_kv_capacity(const struct vlm_ctx *ctx);   /* tokens */
int  vlm_ctx_kv_free(const struct vlm_ctx *ctx);       /* tokens that can still be added */
int  vlm_ctx_n_ctx(const struct vlm_ctx *ctx);         /* per-sequence limit */

/* Cross-attention models (info.cross_image_rows > 0): gives the empty sequence seq_id its
 * images before its prefill. states[i] is vlm_ctx_encode_image's output for image i
 * (cross_image_rows x d_model floats, borrowed for the call), n_tiles[i] its valid tiles,
 * spans[i] the prompt tokens that attend to it (vlm_mllama_cross_attention_spans) in a prompt of
 * n_prompt tokens. The per-layer K/V made here stay with the sequence, count against the KV
 * capacity (VLM_E_NOMEM when they do not fit) and go with vlm_ctx_seq_clear. n_images 0 = a
 * text-only sequence. VLM_E_UNSUPPORTED for models that splice image rows. */
int vlm_ctx_seq_set_images(struct vlm_ctx *ctx, int seq_id, int n_images, const float *const *states,
                           const int *n_tiles, const struct vlm_mllama_span *spans, int n_prompt,
                           struct vlm_error *err);
/* KV tokens a sequence's images take (0 without images). */
int vlm_ctx_seq_state_tokens(const struct vlm_ctx *ctx, int seq_id);

/* vlm_model_encode_image with the context's pool. */
int vlm_ctx_encode_image(struct vlm_ctx *ctx, const struct vlm_image_input *in, float *embd,
                         struct vlm_error *err);

#endif
