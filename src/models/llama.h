/* llama.h — the Llama decoder (RMSNorm, RoPE with rope_theta and its scaling types, grouped-
 * query attention over the per-sequence KV store, SiLU-gated MLP, tied or untied lm_head), as
 * transformers' LlamaModel + lm_head computes it; the text half of Idefics3 and many others. */
#ifndef VLM_MODELS_LLAMA_H
#define VLM_MODELS_LLAMA_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "tensor/tensor.h"

struct vlm_error;
struct vlm_pool;
struct vlm_config;
struct vlm_weights;
struct vlm_kv;
struct vlm_batch;

struct vlm_llama_hparams {
    int   n_vocab, d_model, n_layer, n_head, n_head_kv, d_head, d_ff, max_pos;
    float rms_eps;
    int   tied;                      /* lm_head is embed_tokens */
    int   n_embd_rows;               /* rows of embed_tokens; 0 = n_vocab (Mllama: vocab + 8) */
    struct vlm_rope_params rope;
    int   mrope_section[3];          /* Qwen2-VL's M-RoPE: rotation pairs per t/h/w axis (sum d_head/2);
                                        zeros for a plain 1-D RoPE */
};

struct vlm_llama_layer {
    const float *attn_norm, *ffn_norm;                /* (d_model) f32 (owned copies) */
    const struct vlm_tensor *wq, *wk, *wv, *wo;       /* (nh*hd, d), (nkv*hd, d), (nkv*hd, d), (d, nh*hd) */
    const float *bq, *bk, *bv, *bo;                   /* attention_bias: f32 copies, else NULL */
    const struct vlm_tensor *w_gate, *w_up, *w_down;  /* (ff, d), (ff, d), (d, ff) */
};

struct vlm_llama {
    struct vlm_llama_hparams hp;
    const struct vlm_tensor *embed;    /* (n_vocab, d) */
    const struct vlm_tensor *lm_head;  /* (n_vocab, d): embed when tied */
    const float *norm;                 /* (d) f32 */
    struct vlm_llama_layer *layers;    /* (n_layer) */
    float *inv_freq;                   /* (rot_dim/2) */
    float *owned;                      /* f32 copies of the small vectors */
    uint8_t *foreign;                  /* (n_layer) 1 = a layer the caller runs (load_ex), else NULL */
    int     *kv_layer;                 /* (n_layer) KV-store layer of each own layer, -1 for foreign */
    int      n_kv_layer;               /* own (self-attention) layers: the KV store's layer count */
};

/* A layer the decoder's caller runs itself (e.g. Mllama's cross-attention layers): x (n, d)
 * in, updated in place, for the rows of b. */
typedef int (*vlm_llama_layer_fn)(void *ctx, int layer, struct vlm_pool *pool, const struct vlm_batch *b,
                                  float *x, struct vlm_error *err);

/* Reads the decoder's hyperparameters from tcfg (a config's text_config object, or its root
 * for a plain LlamaForCausalLM; transformers' defaults where absent; rope from rope_parameters
 * (v5) or rope_theta/rope_scaling (v4)). */
int vlm_llama_hparams_read(const struct vlm_config *c, json_t *tcfg, float default_rms_eps,
                           struct vlm_llama_hparams *hp, struct vlm_error *err);

/* Binds tensors "<prefix>embed_tokens.weight", "<prefix>layers.N....", "<prefix>norm.weight"
 * and lm_head_name (when absent and hp->tied, the embedding) and checks their shapes. */
int  vlm_llama_load(struct vlm_llama *l, const struct vlm_llama_hparams *hp, const struct vlm_weights *w,
                    const char *prefix, const char *lm_head_name, struct vlm_error *err);
/* The same, leaving the layers with foreign[i] != 0 unbound (foreign: n_layer flags or NULL):
 * forward_ex hands them to the caller, and the KV store holds only the other layers. */
int  vlm_llama_load_ex(struct vlm_llama *l, const struct vlm_llama_hparams *hp, const struct vlm_weights *w,
                       const char *prefix, const char *lm_head_name, const uint8_t *foreign,
                       struct vlm_error *err);
void vlm_llama_free(struct vlm_llama *l);

void *vlm_llama_scratch_new(const struct vlm_llama *l, int n_batch_max);
void  vlm_llama_scratch_free(void *s);

/* One step over the batch rows (engine-validated; KV room reserved); logits rows in order of
 * the rows with want[i] != 0, (n_out, n_vocab). */
int vlm_llama_forward(const struct vlm_llama *l, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                      const struct vlm_batch *b, const int8_t *want, float *logits, struct vlm_error *err);
/* vlm_llama_forward calling fn(fn_ctx, ...) for each foreign layer, in layer order. */
int vlm_llama_forward_ex(const struct vlm_llama *l, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                         const struct vlm_batch *b, const int8_t *want, float *logits,
                         vlm_llama_layer_fn fn, void *fn_ctx, struct vlm_error *err);

/* For `vlm bench`: weight bytes one decode step reads (every layer matrix and the head; the
 * embedding is read one row per token), FLOPs per token and per token of attended context. */
void vlm_llama_costs(const struct vlm_llama *l, size_t *decode_bytes, double *token_flops, double *token_flops_ctx);
/* For `vlm inspect`: the decoder's sizes, RoPE and head tying, as "text ..." lines. */
void vlm_llama_describe(const struct vlm_llama *l, FILE *f);

/* The same step with 3-D M-RoPE positions (Qwen2-VL): mpos (n_tokens, 3) t/h/w positions of
 * each row, rotated per hp.mrope_section. The KV order and causal mask still follow b->pos. */
int vlm_llama_forward_mrope(const struct vlm_llama *l, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                            const struct vlm_batch *b, const int32_t *mpos, const int8_t *want, float *logits,
                            struct vlm_error *err);

/* Copies a 1-D tensor of n elements (any float dtype) into dst as f32. */
void vlm_tensor_to_f32(const struct vlm_tensor *t, float *dst, int64_t n);

#endif
