/* anyres.h — LLaVA-NeXT's "any resolution" arithmetic, shared by its image processor (tile
 * layout, image-token count) and its model (unpadding the tile grid's features), as
 * transformers' select_best_resolution, get_patch_output_size and unpad_image compute it. */
#ifndef VLM_MODELS_ANYRES_H
#define VLM_MODELS_ANYRES_H

#define VLM_ANYRES_MAX_PINPOINTS 64
#define VLM_ANYRES_MAX_TILES 64     /* tiles of one image past the whole-image one (bounds inputs) */

/* select_best_resolution: of the (height, width) pinpoints, the one that keeps the most of an
 * H x W image (ties: the least wasted area; first wins). Writes *bh, *bw. */
void vlm_anyres_best(int H, int W, const int (*pins)[2], int n_pins, int *bh, int *bw);

/* get_patch_output_size: the aspect-keeping size (*nh, *nw) of H x W inside th x tw. */
void vlm_anyres_fit(int H, int W, int th, int tw, int *nh, int *nw);

/* unpad_image on a (cur_h, cur_w) grid of an image first H x W: the rows [*y0, *y0 + *h) and
 * columns [*x0, *x0 + *w) that hold the image rather than the padding. */
void vlm_anyres_unpad(int H, int W, int cur_h, int cur_w, int *y0, int *h, int *x0, int *w);

#endif
