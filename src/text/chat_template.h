/* chat_template.h — the model's Jinja chat template (a Jinja subset), rendered byte-identically
 * to transformers' apply_chat_template(..., tokenize=False). Templates see only the values
 * passed in the context; recursion, steps, output, memory and time are capped. */
#ifndef VLM_TEXT_CHAT_TEMPLATE_H
#define VLM_TEXT_CHAT_TEMPLATE_H

#include <jansson.h>
#include <stddef.h>

struct vlm_error;
struct vlm_template;

struct vlm_template_limits {
    int    max_depth;        /* nesting of macro calls (the source's own nesting is capped at parse) */
    long   max_steps;        /* loop iterations + statements + expressions evaluated */
    size_t max_output;       /* bytes of rendered text */
    size_t max_memory;       /* bytes of values built while rendering (0 = default) */
    long   max_millis;       /* wall-clock time of one render in ms (0 = none) */
};
struct vlm_template_limits vlm_template_default_limits(void);

/* Parses template source; a syntax error names line and column. */
int vlm_template_parse(const char *src, size_t len, struct vlm_template **out, struct vlm_error *err);
void vlm_template_free(struct vlm_template *t);

/* A parsed template is immutable: any number of threads may render it at once.
 * Defaults: depth 64, 5,000,000 steps, 32 MiB output, 512 MiB memory, 10 s. Past a limit the
 * render fails with VLM_E_LIMIT; a template error (raise_exception, undefined attribute, type
 * error) fails with VLM_E_INVALID or VLM_E_FORBIDDEN (sandbox) naming line and column.
 * Renders with the given context object, e.g. {"messages": [...], "add_generation_prompt": true,
 * "bos_token": "<s>", "eos_token": "</s>", ...} (the caller builds it as transformers does).
 * *out is vlm_malloc'd and NUL-terminated. limits may be NULL for the defaults. */
int vlm_template_render(const struct vlm_template *t, json_t *context,
                        const struct vlm_template_limits *limits, char **out, size_t *len,
                        struct vlm_error *err);

/* Finds a model folder's chat template as transformers does (chat_template.jinja, then
 * chat_template.json, then tokenizer_config.json "chat_template", whose list of named
 * templates gives the one named "default"); *src is vlm_malloc'd. VLM_E_NOT_FOUND if none. */
int vlm_chat_template_find(const char *dir, char **src, size_t *len, struct vlm_error *err);

/* The special tokens transformers passes to a template (its tokenizer's special_tokens_map),
 * read from dir's tokenizer_config.json (every "*_token" key holding a string or an
 * AddedToken object, plus "extra_special_tokens") and, where that file has no
 * added_tokens_decoder, special_tokens_map.json. *out is a new JSON object (maybe empty). */
int vlm_chat_template_special_tokens(const char *dir, json_t **out, struct vlm_error *err);

/* The render context apply_chat_template(messages, add_generation_prompt=...) builds:
 * special_tokens (may be NULL) + "messages" (null-valued keys dropped, reasoning aliased as
 * "thinking"/"reasoning_content") + "tools": null + "documents": null +
 * "add_generation_prompt". With VLM_CHAT_TEMPLATE_PROCESSOR in flags, OpenAI
 * {"type": "image_url", "image_url": {"url": U}} parts become {"type": "image", "url": U} as a
 * transformers processor does (use it for processor-level templates: chat_template.jinja/.json).
 * messages must be a non-empty array of objects. *out is a new object. */
#define VLM_CHAT_TEMPLATE_PROCESSOR 1
int vlm_chat_template_context(json_t *special_tokens, json_t *messages, int add_generation_prompt, int flags,
                              json_t **out, struct vlm_error *err);

/* The whole of apply_chat_template(messages, tokenize=False, ...): builds the context as
 * vlm_chat_template_context does, adds kwargs (extra template variables; may be NULL), renders,
 * and with continue_final_message leaves the last message open for the model to continue (the
 * text after it, such as an end-of-turn token, is cut as transformers does; the last message
 * must have text, and it cannot be combined with add_generation_prompt). *out is vlm_malloc'd. */
struct vlm_chat_template_opts {
    int add_generation_prompt;
    int continue_final_message;
    int flags;                                   /* VLM_CHAT_TEMPLATE_PROCESSOR */
    json_t *kwargs;                              /* e.g. {"enable_thinking": false}; may be NULL */
    const struct vlm_template_limits *limits;    /* NULL: defaults */
};
int vlm_chat_template_apply(const struct vlm_template *t, json_t *special_tokens, json_t *messages,
                            const struct vlm_chat_template_opts *opts, char **out, size_t *len,
                            struct vlm_error *err);

/* 1 if dir's chat template comes from chat_template.jinja or chat_template.json (a processor
 * template, rendered with VLM_CHAT_TEMPLATE_PROCESSOR), 0 if from tokenizer_config.json. */
int vlm_chat_template_is_processor(const char *dir);

#endif
