/* prompt.h — prompt preparation shared by `vlm generate` and the server: chat messages +
 * decoded images -> the model's chat template -> image placeholders expanded with the
 * processor's text -> token ids, with the images' model inputs in prompt order. */
#ifndef VLM_ENGINE_PROMPT_H
#define VLM_ENGINE_PROMPT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

struct vlm_error;
struct vlm_model;
struct vlm_image;
struct vlm_template;
struct vlm_image_input;
struct vlm_processor_overrides;

struct vlm_prompt_opts {
    int add_generation_prompt;                  /* default 1 */
    json_t *chat_template_kwargs;               /* extra template variables; may be NULL */
    const struct vlm_template *template_override; /* NULL = the model's template */
    const struct vlm_processor_overrides *proc; /* NULL = as configured */
    size_t max_tokens;                          /* prompt length cap (0 = none); VLM_E_TOO_LARGE past it */
    int wants_parts;                            /* string content as one text part (vLLM's "openai"
                                                   content format): 1, 0 ("string"), -1 = as the
                                                   model's template needs (default) */
};
struct vlm_prompt_opts vlm_prompt_default_opts(void);

struct vlm_prompt {
    char    *text;             /* the rendered and expanded prompt text */
    int32_t *ids;              /* (n_ids) */
    size_t   n_ids;
    struct vlm_image_input *images;  /* (n_images) processor outputs, prompt order */
    int      n_images;
    int32_t *image_of;         /* (n_ids) image index of each position, -1 for a text token */
    int32_t *row_of;           /* (n_ids) row within that image's embeddings, -1 for text */
    size_t   n_image_tokens;   /* total image-token positions (for usage counts) */
};

/* Builds a prompt. messages: an array of {"role", "content"} where content is a string or a
 * list of parts: {"type":"text","text":...}, {"type":"image"} (HF) or {"type":"image_url",...}
 * (OpenAI; the URL is NOT read here). Each image part takes the next of images[0..n_images) in
 * order; the count of image parts must equal n_images. The template sees image parts as
 * {"type":"image"}. Text is tokenized with special-token parsing (as transformers does), and
 * then the number of image placeholders rendered must equal n_images and the number of image
 * tokens must equal the processors' counts: text that spells an image placeholder or image
 * token gives VLM_E_INVALID ("... image placeholders ..."), never a mis-spliced embedding.
 * *out is freed with vlm_prompt_free. */
int vlm_prompt_prepare(const struct vlm_model *m, json_t *messages,
                       const struct vlm_image *const *images, int n_images,
                       const struct vlm_prompt_opts *opts, struct vlm_prompt *out,
                       struct vlm_error *err);
void vlm_prompt_free(struct vlm_prompt *p);

/* 1 if a chat template's source iterates over or indexes message content parts (then string
 * content is passed to it as [{"type":"text","text":...}], as vLLM does). */
int vlm_template_wants_parts(const char *src);

/* Counts image parts (type "image" or "image_url") in messages; -1 if messages is malformed. */
int vlm_prompt_count_images(json_t *messages);

#endif
