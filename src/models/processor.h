/* processor.h — the image-processor half of a model family: decoded RGB -> the pixel tensors
 * the vision tower takes and the image-token text the prompt gets, exactly as the family's
 * Hugging Face processor does. Each family registers a struct vlm_processor_ops. */
#ifndef VLM_MODELS_PROCESSOR_H
#define VLM_MODELS_PROCESSOR_H

#include <stddef.h>
#include <stdint.h>

struct vlm_error;
struct vlm_image;

/* What one image becomes. */
struct vlm_image_input {
    int      n_tiles;        /* images the vision tower runs on (tiles + global image) */
    int      channels, height, width;   /* of each tile */
    float   *pixels;         /* (n_tiles, channels, height, width), rescaled + normalized */
    uint8_t *pixel_mask;     /* (n_tiles, height, width), 1 = real pixel, 0 = padding; may be NULL */
    int      n_rows, n_cols; /* tile grid; 0, 0 when the image was not split */
    int      grid_thw[3];    /* families with patch grids (Qwen2-VL); zeros otherwise */
    int      aspect_ratio_id;/* Mllama: 1-based index of the tile canvas in supported_aspect_ratios
                                (aspect_ratio_mask = the first n_tiles of max_image_tiles); 0 otherwise */
    char    *prompt;         /* text that replaces one image placeholder in the prompt */
    int      n_image_tokens; /* how many image tokens that text holds */
};
void vlm_image_input_free(struct vlm_image_input *in);

/* Per-request overrides (vLLM --mm-processor-kwargs), clamped to the server's ceilings. */
struct vlm_processor_overrides {
    int do_image_splitting;  /* -1 = as configured, 0/1 */
    int longest_edge;        /* 0 = as configured */
    int max_image_size;      /* 0 = as configured */
    long min_pixels;         /* Qwen2-VL size bounds (vLLM's min_pixels / max_pixels); 0 = as configured */
    long max_pixels;
};

struct vlm_processor;        /* opaque: the family's parsed preprocessor/processor config */

/* Loads preprocessor_config.json (+ processor_config.json) from dir, choosing the family by
 * "image_processor_type"/"processor_class". */
int  vlm_processor_load(const char *dir, struct vlm_processor **out, struct vlm_error *err);
/* Same from already parsed objects (pre: preprocessor_config.json, proc: processor_config.json
 * or NULL), e.g. built from GGUF metadata; dir is where relative files would be (may be ""). */
struct json_t;
int  vlm_processor_load_json(const char *dir, struct json_t *pre, struct json_t *proc,
                             struct vlm_processor **out, struct vlm_error *err);
void vlm_processor_free(struct vlm_processor *p);
/* Runs the processor on one image; ov may be NULL. */
int  vlm_processor_run(const struct vlm_processor *p, const struct vlm_image *img,
                       const struct vlm_processor_overrides *ov, struct vlm_image_input *out,
                       struct vlm_error *err);
/* The placeholder the chat template emits for an image (e.g. "<image>"). */
const char *vlm_processor_image_placeholder(const struct vlm_processor *p);

#endif
