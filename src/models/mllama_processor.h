/* mllama_processor.h — what Llama 3.2 Vision's processor decides besides pixels: which text
 * tokens attend to which images through cross-attention (transformers'
 * get_cross_attention_token_mask + convert_sparse_cross_attention_mask_to_dense), and the
 * tile grid of an image. The pixels come from the "MllamaImageProcessor" ops (processor.h). */
#ifndef VLM_MODELS_MLLAMA_PROCESSOR_H
#define VLM_MODELS_MLLAMA_PROCESSOR_H

#include <stdint.h>

/* Tokens [start, end) of the prompt attend to one image (all of its n_tiles tiles). end is at
 * most the prompt length; an image whose span reaches the prompt's end is also attended by
 * every generated token (transformers repeats the last row of the mask while generating).
 * Tokens in no span get no cross-attention output (full_text_row_masked_out_mask). */
struct vlm_mllama_span {
    int start, end;
};

/* Fills spans[i] for the i-th <|image|> token of ids (n tokens), exactly as transformers'
 * get_cross_attention_token_mask: each image covers the tokens from its <|image|> up to the
 * next one; consecutive <|image|> tokens all cover the same text that follows the group; the
 * last image covers the rest. Returns the number of images found (may exceed max_spans: only
 * the first max_spans are written), 0 when none. */
int vlm_mllama_cross_attention_spans(const int32_t *ids, int n, int32_t image_token_id,
                                     struct vlm_mllama_span *spans, int max_spans);

/* get_optimal_tiled_canvas over get_all_supported_aspect_ratios(max_tiles): the tile grid
 * (*rows x *cols, rows x cols <= max_tiles) an image_h x image_w image is fitted into: the
 * smallest upscale when some grid allows one, else the largest downscale; ties go to the
 * smallest area, then to the first in the list. Returns the 1-based aspect_ratio_id (the
 * grid's position in that list, (rows, cols) ordered by rows then cols), 0 on bad arguments. */
int vlm_mllama_tile_canvas(int image_h, int image_w, int max_tiles, int tile, int *rows, int *cols);

/* get_image_size_fit_to_canvas: the size (*h, *w) the image is resized to inside a canvas_h x
 * canvas_w canvas: each side first clipped to [tile, canvas side], then the aspect ratio kept
 * by the tighter scale (floor, at least 1). */
void vlm_mllama_fit_to_canvas(int image_h, int image_w, int canvas_h, int canvas_w, int tile,
                              int *h, int *w);

#endif
