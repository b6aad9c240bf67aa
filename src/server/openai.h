/* openai.h — the OpenAI protocol as vLLM speaks it: request bodies (chat completions,
 * completions, tokenize, detokenize) parsed and validated into plain C structs with vLLM's
 * error messages and status codes, and the JSON error body. Response bodies are built in
 * openai_response.c. Parsing never touches the network or the model. */
#ifndef VLM_SERVER_OPENAI_H
#define VLM_SERVER_OPENAI_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum vlm_api_kind { VLM_API_CHAT, VLM_API_COMPLETION, VLM_API_TOKENIZE, VLM_API_DETOKENIZE };

/* Server-side ceilings the request is checked against. */
struct vlm_api_limits {
    int    max_images;        /* --limit-mm-per-prompt image (vLLM default 999; 0 = no images) */
    int    max_n;             /* largest n */
    int    max_logprobs;      /* largest top_logprobs / logprobs (vLLM max_logprobs = 20) */
    size_t max_stop;          /* entries in stop */
    size_t max_stop_len;      /* bytes of one stop string */
    size_t max_logit_bias;    /* entries in logit_bias */
    size_t max_prompt_bytes;  /* text of all messages / the prompt together (12 of RELIABILITY) */
    size_t max_parts;         /* content parts in a request */
    int    max_depth;         /* JSON nesting */
    long   max_model_len;     /* context length; max_tokens is checked against it later */
    int    vocab_size;        /* token ids in prompts, logit_bias, stop_token_ids: < vocab_size */
    int    trust_request_chat_template;
};
void vlm_api_limits_default(struct vlm_api_limits *l);

/* An error for the client: status 400/401/404/413/422/500..., message safe to echo. */
struct vlm_api_error {
    int  status;
    char message[512];
    char param[64];           /* "" = null */
};

struct vlm_api_image {        /* one image_url part, in order of appearance */
    const char *url;          /* borrowed from the request JSON */
    size_t      url_len;
    const char *uuid;         /* NULL if none */
};

struct vlm_api_request {
    enum vlm_api_kind kind;
    json_t     *root;         /* the parsed body (owns every borrowed string) */
    const char *model;        /* NULL = the served model */
    json_t     *messages;     /* chat / tokenize: messages for the chat template, content as
                                 lists of {"type":"text","text"} and {"type":"image"} parts */
    const char *prompt;       /* completion / tokenize: prompt text (NULL if ids or messages) */
    size_t      prompt_len;
    int32_t    *prompt_ids;   /* completion / detokenize: token ids given directly */
    size_t      n_prompt_ids;
    struct vlm_api_image *images;
    size_t      n_images;

    double  temperature;      /* < 0: not given (the generation config or 1.0 applies) */
    double  top_p, min_p;     /* top_p < 0: not given */
    int     top_k;            /* 0 or -1: disabled; -2: not given */
    double  presence_penalty, frequency_penalty, repetition_penalty;
    int     has_seed;
    int64_t seed;
    long    max_tokens;       /* -1: up to the context length */
    long    min_tokens;
    int     n;
    char  **stop;             /* borrowed strings */
    size_t  n_stop;
    int32_t *stop_token_ids;
    size_t  n_stop_token_ids;
    int32_t *bias_ids;        /* logit_bias */
    float   *bias_values;
    size_t   n_bias;
    int     logprobs;         /* chat: 0/1; completion: number requested or -1 */
    int     top_logprobs;
    int     stream, include_usage, continuous_usage_stats;
    int     echo;
    int     ignore_eos, skip_special_tokens, include_stop_str_in_output;
    int     add_generation_prompt, continue_final_message, add_special_tokens;
    json_t *chat_template_kwargs;   /* borrowed; NULL if none */
    const char *chat_template;      /* request-supplied template (only if trusted) */
    json_t *mm_processor_kwargs;    /* borrowed; NULL if none */
};

/* Parses and validates body[0..len) for kind. Untrusted input: duplicate keys, NaN/Inf,
 * integers past 64 bits, nesting past max_depth and every bound in lim give a 400 with
 * vLLM's message; too many images gives "At most N image(s) may be provided in one prompt.".
 * Unknown fields are ignored. On success *r must be released with vlm_api_request_free. */
int  vlm_api_parse(enum vlm_api_kind kind, const char *body, size_t len,
                   const struct vlm_api_limits *lim, struct vlm_api_request *r,
                   struct vlm_api_error *e);
void vlm_api_request_free(struct vlm_api_request *r);

/* Sets e (status, message, param) and returns -1. */
int vlm_api_fail(struct vlm_api_error *e, int status, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The error body {"error":{"message","type","param","code"}} (vlm_malloc'd JSON text). */
char *vlm_api_error_body(const struct vlm_api_error *e);

/* The OpenAI error type for a status ("BadRequestError", "NotFoundError", ...). */
const char *vlm_api_error_type(int status);

/* Maps a VLM_E_* code from media/image/engine work to an HTTP status. */
int vlm_api_status_for(int vlm_code);

#endif
