/* chat_template.h — the model's Jinja chat template (a Jinja subset), rendered byte-identically
 * to transformers' apply_chat_template(..., tokenize=False). Templates see only the values
 * passed in the context; recursion, loop steps and output size are capped. */
#ifndef VLM_TEXT_CHAT_TEMPLATE_H
#define VLM_TEXT_CHAT_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

struct vlm_error;
struct vlm_template;

struct vlm_template_limits {
    int    max_depth;        /* nesting of calls/includes/expressions */
    long   max_steps;        /* loop iterations + statements executed */
    size_t max_output;       /* bytes of rendered text */
};
struct vlm_template_limits vlm_template_default_limits(void);

/* Parses template source; a syntax error names line and column. */
int vlm_template_parse(const char *src, size_t len, struct vlm_template **out, struct vlm_error *err);
void vlm_template_free(struct vlm_template *t);

/* Renders with the given context object, e.g. {"messages": [...], "add_generation_prompt": true,
 * "bos_token": "<s>", "eos_token": "</s>", ...} (the caller builds it as transformers does).
 * *out is vlm_malloc'd and NUL-terminated. limits may be NULL for the defaults. */
int vlm_template_render(const struct vlm_template *t, json_t *context,
                        const struct vlm_template_limits *limits, char **out, size_t *len,
                        struct vlm_error *err);

/* Finds a model folder's chat template as transformers does (chat_template.jinja, then
 * chat_template.json, then tokenizer_config.json "chat_template"); *src is vlm_malloc'd. */
int vlm_chat_template_find(const char *dir, char **src, size_t *len, struct vlm_error *err);

#endif
