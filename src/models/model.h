/* model.h — what a loaded model is inside the library: config, weight map, the family that
 * runs it (struct vlm_family: load, encode_image, forward), its tokenizer, chat template and
 * processor; plus the decoder's per-sequence KV store and the batch a forward step takes. */
#ifndef VLM_MODELS_MODEL_H
#define VLM_MODELS_MODEL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "formats/config.h"
#include "formats/weights.h"
#include "models/batch.h"
#include "models/model_info.h"
#include "tensor/tensor.h"

struct vlm_error;
struct vlm_pool;
struct vlm_image_input;

/* Per-sequence key/value store: each live sequence has, per layer, K and V arrays of
 * (cap, kv_dim) elements of the store's type (f32, f16 or bf16) that grow as the sequence does
 * (vlm_attention_kv reads them directly). */
struct vlm_kv_seq {
    void  **k, **v;      /* (n_layer) each (cap, kv_dim) elements, NULL while the slot is free */
    int     len, cap;    /* tokens stored / allocated */
    int     keep;        /* capacity a step in progress has reserved (kept when slack is taken back) */
    void   *family_state;/* for decoders that keep per-sequence state of their own (e.g. the
                            image states a cross-attention decoder attends to); NULL here */
    long    state_tokens;/* what family_state holds, in tokens of this store (counted in used_tokens) */
};
struct vlm_kv {
    int n_layer, kv_dim, n_seq, n_ctx;
    enum vlm_dtype type; /* VLM_DT_F32, F16 or BF16 */
    size_t esize;        /* bytes per element */
    long cap_tokens;     /* total tokens all sequences may allocate */
    long used_tokens;    /* tokens allocated (sum of cap) */
    struct vlm_kv_seq *seq;   /* (n_seq) */
    void (*state_free)(void *state);   /* frees a family_state (the family's seq_state_free) */
};
int  vlm_kv_init(struct vlm_kv *kv, int n_layer, int kv_dim, int n_seq, int n_ctx, long cap_tokens,
                 enum vlm_dtype type, struct vlm_error *err);
/* Stores the k and v rows (kv_dim floats each) of sequence s, layer l, at position pos
 * (reserved), converted to the store's type. */
void vlm_kv_put(struct vlm_kv *kv, int s, int l, int pos, const float *k, const float *v);
void vlm_kv_free(struct vlm_kv *kv);
/* Makes room for sequence s to hold n tokens (grows its arrays); VLM_E_NOMEM past the cap. */
int  vlm_kv_reserve(struct vlm_kv *kv, int s, int n, struct vlm_error *err);
void vlm_kv_clear(struct vlm_kv *kv, int s);
/* Gives sequence s the family state st (freed with kv->state_free when the sequence is
 * cleared), worth `tokens` tokens of the cap (others' slack is taken back to make room);
 * VLM_E_NOMEM past the cap (st is then NOT taken). Replaces (frees) an earlier state. */
int  vlm_kv_set_state(struct vlm_kv *kv, int s, void *st, long tokens, struct vlm_error *err);
/* Lowers sequence s's family-state count to `tokens` (the state shrank in place). */
void vlm_kv_state_shrink(struct vlm_kv *kv, int s, long tokens);
/* Bytes of one token in the store (K and V of every layer). */
size_t vlm_kv_token_bytes(const struct vlm_kv *kv);

/* How a family's decoder takes images. */
enum vlm_image_mode {
    VLM_IMAGES_SPLICED = 0,  /* image embeddings replace image-token rows (Idefics3, LLaVA, Qwen2-VL) */
    VLM_IMAGES_CROSS_ATTN,   /* the decoder attends to image states kept per sequence (Mllama):
                                encode_image's output goes to kv.seq[s].family_state, not rows */
};

struct vlm_model;
struct vlm_mllama_span;

/* What `vlm bench` needs to set a family's figures beside the machine's limits. */
struct vlm_family_costs {
    int    image_size;        /* side of the square image bench encodes when given none (one tile);
                                 0 when the family needs a real image (--image) */
    int    image_tokens;      /* image tokens that image gives */
    double image_flops;       /* FLOPs of encoding it, projector included (multiply-add = 2) */
    size_t decode_bytes;      /* weight bytes one decode step reads */
    double token_flops;       /* FLOPs of one token through the decoder, attention aside ... */
    double token_flops_ctx;   /* ... plus this many per token of context it attends to */
    int    image_tiles;       /* tiles of the synthetic image (0 = 1); cross-attention families: all */
    int    image_aspect_ratio_id; /* Mllama: the canvas of those tiles (0 otherwise) */
    double cross_kv_bytes;    /* bytes of one image's cross-attention K/V a decode step reads (f32) */
};

struct vlm_family {
    const char *name;          /* the family, e.g. "idefics3"; registry.c maps architectures to it */
    enum vlm_image_mode image_mode;
    /* Reads m->cfg and m->weights, checks every tensor's shape, fills m->info's sizes and
     * m->impl. Errors name the file and tensor/key. */
    int  (*load)(struct vlm_model *m, struct vlm_error *err);
    void (*free)(struct vlm_model *m);
    /* Vision tower + connector on one processed image -> (n_image_tokens, d_model) rows. */
    int  (*encode_image)(const struct vlm_model *m, struct vlm_pool *pool,
                         const struct vlm_image_input *in, float *embd, struct vlm_error *err);
    /* Scratch for batches of up to n_batch_max rows; freed with scratch_free. */
    void *(*scratch_new)(const struct vlm_model *m, int n_batch_max);
    void  (*scratch_free)(void *scratch);
    /* One decoder step over b (rows already validated by the engine: seq ids in range, each
     * sequence's positions continuing it, KV room reserved). Writes the logits of the rows that
     * want them, in row order, to logits (n_out, n_vocab). */
    int  (*forward)(const struct vlm_model *m, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                    const struct vlm_batch *b, const int8_t *want, float *logits, struct vlm_error *err);
    /* Optional, for `vlm inspect`: lines on the vision tower, connector and decoder. */
    void (*describe)(const struct vlm_model *m, FILE *f);
    /* Optional, for `vlm bench` (which refuses a family without it). */
    void (*costs)(const struct vlm_model *m, struct vlm_family_costs *c);
    /* VLM_IMAGES_CROSS_ATTN only (NULL otherwise): gives the empty sequence s its images before
     * its prefill. states[i] is encode_image's output for image i (m->info.cross_image_rows rows
     * of d_model), n_tiles[i] its valid tiles, spans[i] the prompt tokens that attend to it in a
     * prompt of n_prompt tokens (see mllama_processor.h). Stores what the decoder needs in
     * kv->seq[s].family_state through vlm_kv_set_state. */
    int  (*seq_set_images)(const struct vlm_model *m, struct vlm_kv *kv, struct vlm_pool *pool, int s,
                           int n_images, const float *const *states, const int *n_tiles,
                           const struct vlm_mllama_span *spans, int n_prompt, struct vlm_error *err);
    void (*seq_state_free)(void *state);
};

/* registry.c: the family of an architecture name, NULL if unknown. */
const struct vlm_family *vlm_family_find(const char *arch);
/* registry.c: writes "A, B, ..." (the known architectures, for messages) into buf. */
void vlm_family_names(char *buf, size_t size);

struct vlm_model {
    char                 *dir;
    struct vlm_config     cfg;
    struct vlm_weights    weights;
    const struct vlm_family *family;
    void                 *impl;        /* the family's model struct */
    struct vlm_model_info info;
    struct vlm_tokenizer *tok;         /* NULL when the folder has no tokenizer */
    struct vlm_template  *tmpl;        /* NULL when the folder has no chat template */
    struct vlm_processor *proc;        /* NULL when the folder has no processor config */
    json_t               *special_tokens; /* what the chat template sees (bos_token, ...); may be NULL */
    int                   template_wants_parts; /* the template loops over content parts: string
                                                   content is given to it as one text part (vLLM's
                                                   "openai" content format) */
    int                   n_threads;
};

#endif
