/* gemma3_text.h — the Gemma 3 decoder as transformers' Gemma3TextModel + lm_head computes it:
 * embeddings scaled by sqrt(d) (in the embedding's dtype), RMSNorm with (1 + w), norms before
 * and after attention and MLP, per-head q/k norms, query_pre_attn_scalar, GELU-tanh MLP,
 * sliding-window (local) and global layers with their own RoPE, optional attention and final
 * logit soft-capping, and image tokens that see their whole image (bidirectional blocks). */
#ifndef VLM_MODELS_GEMMA3_TEXT_H
#define VLM_MODELS_GEMMA3_TEXT_H

#include <jansson.h>
#include <stdint.h>

#include "tensor/tensor.h"

struct vlm_error;
struct vlm_pool;
struct vlm_config;
struct vlm_weights;
struct vlm_kv;
struct vlm_batch;

#define VLM_GEMMA3_MAX_LAYERS 1024

struct vlm_gemma3_hparams {
    int   n_vocab, d_model, n_layer, n_head, n_head_kv, d_head, d_ff, max_pos;
    float rms_eps;
    float attn_scale;          /* query_pre_attn_scalar^-0.5 */
    float attn_softcap;        /* attn_logit_softcapping, 0 = none */
    float final_softcap;       /* final_logit_softcapping, 0 = none */
    int   sliding_window;      /* keys a local layer's query sees (itself included); 0 = no window */
    int   tied;                /* lm_head is embed_tokens */
    int   image_run;           /* rows of one image (mm_tokens_per_image); 0 = text only */
    int   gguf;                /* config "vlm_gguf" (set by the GGUF loader only): the norm weights
                                  already hold 1 + w, and the embedding scale is sqrt(d) in f32,
                                  as llama.cpp's converter writes and llama.cpp computes them */
    struct vlm_rope_params rope_global, rope_local;
    uint8_t sliding[VLM_GEMMA3_MAX_LAYERS];   /* 1 = local (sliding_attention) layer */
};

struct vlm_gemma3_layer {
    /* (d) f32 copies holding 1 + w */
    const float *attn_norm, *post_attn_norm, *ffn_norm, *post_ffn_norm;
    const float *q_norm, *k_norm;                     /* (d_head) f32, 1 + w */
    const struct vlm_tensor *wq, *wk, *wv, *wo;       /* (nh*hd, d), (nkv*hd, d), (nkv*hd, d), (d, nh*hd) */
    const struct vlm_tensor *w_gate, *w_up, *w_down;  /* (ff, d), (ff, d), (d, ff) */
};

struct vlm_gemma3_text {
    struct vlm_gemma3_hparams hp;
    const struct vlm_tensor *embed;    /* (n_vocab, d) */
    const struct vlm_tensor *lm_head;  /* (n_vocab, d): embed when tied */
    float embed_scale;                 /* sqrt(d) rounded to the embedding's dtype, as transformers */
    const float *norm;                 /* (d) f32, 1 + w */
    struct vlm_gemma3_layer *layers;   /* (n_layer) */
    float *inv_freq_global, *inv_freq_local;   /* (d_head/2) each */
    float *owned;
};

/* Reads the decoder's settings from t (Gemma3ForConditionalGeneration's text_config, or the
 * root of a Gemma3ForCausalLM config) with transformers' Gemma3TextConfig defaults for what is
 * absent (real configs leave out vocab_size, head_dim, rope_local_base_freq, ...): both the
 * published spelling (rope_theta, rope_local_base_freq, rope_scaling, sliding_window_pattern)
 * and transformers 5's (rope_parameters per layer type, layer_types). tied is set by the caller
 * (only the top-level tie_word_embeddings counts). */
int vlm_gemma3_hparams_read(const struct vlm_config *c, json_t *t, struct vlm_gemma3_hparams *hp,
                            struct vlm_error *err);

/* Binds "<prefix>embed_tokens.weight", "<prefix>layers.N....", "<prefix>norm.weight" and
 * lm_head_name (unless tied) and checks their shapes. */
int  vlm_gemma3_text_load(struct vlm_gemma3_text *g, const struct vlm_gemma3_hparams *hp,
                          const struct vlm_weights *w, const char *prefix, const char *lm_head_name,
                          struct vlm_error *err);
void vlm_gemma3_text_free(struct vlm_gemma3_text *g);

void *vlm_gemma3_scratch_new(const struct vlm_gemma3_text *g, int n_batch_max);
void  vlm_gemma3_scratch_free(void *s);

/* One step over the batch rows (engine-validated; KV room reserved). Rows with an embd row are
 * image tokens: consecutive ones of a sequence form one image, whose tokens see each other in
 * both directions, so a batch must hold each image's rows whole: a sequence's rows that end
 * in fewer than hp.image_run image rows give VLM_E_INVALID (see vlm_prefill_take). Logits rows
 * in order of the rows with want[i] != 0. */
int vlm_gemma3_forward(const struct vlm_gemma3_text *g, struct vlm_kv *kv, struct vlm_pool *pool, void *scratch,
                       const struct vlm_batch *b, const int8_t *want, float *logits, struct vlm_error *err);

/* FLOPs of one token through the decoder at context length ctx (multiply-add = 2), and the
 * weight bytes one decode step reads. */
double vlm_gemma3_flops_per_token(const struct vlm_gemma3_text *g, double ctx);
size_t vlm_gemma3_weight_bytes(const struct vlm_gemma3_text *g);

#endif
