/* processor_internal.h — how a model family plugs its image processor in: one ops table per
 * family (listed in processor.c) and the config fields every HF image processor shares. */
#ifndef VLM_MODELS_PROCESSOR_INTERNAL_H
#define VLM_MODELS_PROCESSOR_INTERNAL_H

#include "models/processor.h"

#include <jansson.h>

struct vlm_error;

/* The fields of preprocessor_config.json that BaseImageProcessor defines for all families;
 * each family's load() sets its own defaults before proc_common_parse() reads the file. */
struct proc_common {
    int    do_resize, do_rescale, do_normalize, do_convert_rgb, do_pad;
    double rescale_factor;
    float  mean[3], std[3];
    int    resample;             /* PIL numbering (enum vlm_resample) */
};

struct vlm_processor_ops {
    const char *name;            /* "Idefics3ImageProcessor" */
    /* 1 when this family handles the (suffix-stripped) type / processor class */
    int  (*matches)(const char *image_processor_type, const char *processor_class);
    /* Parses pre (preprocessor_config.json) and proc (processor_config.json, may be NULL)
     * into *state; dir is the model folder (for config.json if needed). */
    int  (*load)(const char *dir, json_t *pre, json_t *proc, void **state, struct vlm_error *err);
    int  (*run)(const void *state, const struct vlm_image *img,
                const struct vlm_processor_overrides *ov, struct vlm_image_input *out,
                struct vlm_error *err);
    void (*free)(void *state);
    const char *placeholder;     /* what the chat template emits for an image */
};

extern const struct vlm_processor_ops vlm_idefics3_processor_ops;
extern const struct vlm_processor_ops vlm_qwen2vl_processor_ops;
extern const struct vlm_processor_ops vlm_clip_processor_ops;
extern const struct vlm_processor_ops vlm_gemma3_processor_ops;
extern const struct vlm_processor_ops vlm_mllama_processor_ops;

/* Reads the shared fields (absent keys keep c's defaults). VLM_E_FORMAT on a wrong type. */
int proc_common_parse(json_t *pre, struct proc_common *c, struct vlm_error *err);
/* json helpers: absent -> dflt; wrong type -> -1 */
int proc_json_bool(json_t *o, const char *key, int dflt);
int proc_json_int(json_t *o, const char *key, int dflt);   /* ints only, >= 0 */

#endif
