/* model_info.h — the facts about a loaded model that the engine and its callers read
 * (struct vlm_model_info): filled by the family's load in this layer, read-only afterwards.
 * Its own header so that models/model.h need not include the engine's API above it. */
#ifndef VLM_MODELS_MODEL_INFO_H
#define VLM_MODELS_MODEL_INFO_H

#include <stddef.h>
#include <stdint.h>

#define VLM_MAX_EOS 8

/* Facts about a loaded model that callers need (all read-only). */
struct vlm_model_info {
    const char *arch;            /* config.json architectures[0] */
    const char *dir;             /* the model folder */
    int n_vocab;                 /* rows of the logits */
    int d_model;                 /* width of one embedding row (text hidden size) */
    int n_layer;
    int kv_dim;                  /* floats of K (and of V) per token per layer */
    int n_ctx_train;             /* max_position_embeddings: the default max_model_len */
    int32_t image_token_id;      /* -1 if the model takes no images */
    int n_embd_rows;             /* input token ids are [0, n_embd_rows): n_vocab, or more where the
                                    embedding has rows the logits lack (Mllama's <|image|>: vocab + 8) */
    int cross_image_rows;        /* cross-attention families (Mllama): rows of d_model one image's
                                    encoding has (vlm_model_encode_image); 0 when images are spliced */
    int max_tiles;               /* Mllama: tiles per image at most (max_num_tiles); 0 otherwise */
    int max_images;              /* images one sequence may hold; 0 = no limit of the model's own */
    int cross_image_tokens;      /* KV-cache tokens one image's cross-attention K/V take (counted in
                                    the KV capacity; any KV dtype); 0 when images are spliced */
    int image_rows_whole;        /* 0, or the rows of one image when they attend to each other
                                    both ways (Gemma 3: mm_tokens_per_image): a prefill step must
                                    then not end inside an image (vlm_prefill_take) */
    int32_t bos_id;              /* -1 if none */
    int32_t eos_ids[VLM_MAX_EOS];/* from generation_config.json, else config.json, else tokenizer */
    int n_eos;
    size_t weight_bytes;         /* total bytes of all weight tensors */
    /* generation_config.json defaults (what transformers' generate uses when a request is silent) */
    int   gen_do_sample;
    float gen_temperature, gen_top_p, gen_repetition_penalty;
    int   gen_top_k;
};

#endif
