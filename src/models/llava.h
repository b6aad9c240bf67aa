/* llava.h — the LLaVA family (LlavaForConditionalGeneration, LLaVA 1.5; and LLaVA-NeXT's
 * LlavaNextForConditionalGeneration): CLIP vision tower, hidden states of vision_feature_layer
 * (one layer or several, concatenated) with or without the class token, a two-layer projector
 * with an activation between, a Llama decoder; image embeddings spliced at image_token_index
 * rows. LLaVA-NeXT runs the tower on every anyres tile and packs the tile grid's rows, unpadded,
 * each followed by image_newline, after the whole-image tile. */
#ifndef VLM_MODELS_LLAVA_H
#define VLM_MODELS_LLAVA_H

#include "models/anyres.h"
#include "models/clip_vision.h"
#include "models/llama.h"

struct vlm_family;

#define VLM_LLAVA_MAX_FEATURE_LAYERS 8

struct vlm_llava {
    struct vlm_clip_vision vision;
    struct vlm_llama       text;
    int states[VLM_LLAVA_MAX_FEATURE_LAYERS];  /* vision_feature_layer as hidden_states indices */
    int n_states;
    int drop_cls;                              /* vision_feature_select_strategy "default" */
    int tokens_per_image;                      /* patches (+1 when the class token is kept) */
    const struct vlm_tensor *w1, *w2;          /* (d_text, n_states * d_vision), (d_text, d_text) */
    const float *b1, *b2;                      /* (d_text) f32 copies, NULL without projector bias */
    enum vlm_clip_act proj_act;
    float *owned;
    /* LLaVA-NeXT only (next != 0): */
    int next;
    int pins[VLM_ANYRES_MAX_PINPOINTS][2];     /* image_grid_pinpoints (height, width) */
    int n_pins;
    const float *newline;                      /* (d_text) image_newline, f32 copy */
};

extern const struct vlm_family vlm_family_llava;

#endif
