/* qwen25vl.h — the Qwen2.5-VL and Qwen2-VL families: the vision tower of qwen25vl_vision.c,
 * image embeddings spliced at <|image_pad|> rows, and the Qwen2 decoder (llama.c with q/k/v
 * biases) under multimodal RoPE.
 *
 * Positions. The engine passes pos = the sequence's length (its KV index). The 3-D M-RoPE
 * positions transformers' get_rope_index gives are rebuilt here, row by row, from what the
 * batch says: a text row takes (p, p, p) with p the sequence's next text position; the rows of
 * one image (vlm_batch.image, whose grid_thw gives t x h/M x w/M tokens) take start + (t, h, w)
 * offsets, after which the next text position is start + max(h, w)/M. Each sequence's state (its
 * next text position and the image in progress, so a prefill chunk may end inside an image) lives
 * in the context's scratch for this family, indexed by sequence id, and restarts whenever a row
 * at pos 0 arrives (a new, cleared or preempted-and-recomputed sequence). Decode rows therefore
 * get pos + (next - len): the "rope delta" transformers keeps. */
#ifndef VLM_MODELS_QWEN25VL_H
#define VLM_MODELS_QWEN25VL_H

#include "models/llama.h"
#include "models/qwen25vl_vision.h"

struct vlm_family;

struct vlm_qwen25vl {
    struct vlm_qwen_vision vision;
    struct vlm_llama       text;
};

extern const struct vlm_family vlm_family_qwen25vl;   /* Qwen2_5_VLForConditionalGeneration */
extern const struct vlm_family vlm_family_qwen2vl;    /* Qwen2VLForConditionalGeneration */

/* One sequence's M-RoPE state (see above). */
struct vlm_mrope_seq {
    int32_t len;          /* KV length this state has seen (the next row's pos) */
    int32_t next;         /* next text position */
    int32_t start;        /* the image in progress: its start position, */
    int32_t k, n;         /* rows done / total, */
    int32_t gh, gw;       /* merged grid; n == 0 when no image is in progress */
    const struct vlm_image_input *img;
};

/* Positions of the rows of b (n_tokens x 3: t, h, w) from and into the per-sequence states
 * st (n_st); VLM_E_INVALID for image rows without their image, an image interrupted by text or
 * an image whose grid does not give its token count. merge = spatial_merge_size. */
int vlm_mrope_positions(const struct vlm_batch *b, int merge, struct vlm_mrope_seq *st, int n_st, int32_t *mpos,
                        struct vlm_error *err);

#endif
