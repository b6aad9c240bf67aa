/* mllama.h — the Llama 3.2 Vision family (MllamaForConditionalGeneration): the Mllama vision
 * tower and projector, a Llama 3.1 decoder whose cross_attention_layers attend to per-sequence
 * image states instead of self-attending; images are never spliced into the token rows. */
#ifndef VLM_MODELS_MLLAMA_H
#define VLM_MODELS_MLLAMA_H

#include "models/llama.h"
#include "models/mllama_vision.h"

struct vlm_family;

struct vlm_mllama_cross {
    const float *ln1, *ln2;                         /* input / post_attention RMSNorm (d) */
    const float *q_norm, *k_norm;                   /* (d_head) */
    const struct vlm_tensor *wq, *wk, *wv, *wo;     /* (nh*hd, d), (nkv*hd, d) x2, (d, nh*hd) */
    const struct vlm_tensor *w_gate, *w_up, *w_down;
    float attn_gate, mlp_gate;                      /* tanh of cross_attn_attn_gate / _mlp_gate */
};

struct vlm_mllama {
    struct vlm_mllama_vision vision;
    struct vlm_llama text;
    int n_cross;
    int *cross_of;                   /* (n_layer) index into cross[] or -1 */
    struct vlm_mllama_cross *cross;  /* (n_cross) */
    float *owned;
};

extern const struct vlm_family vlm_family_mllama;

#endif
