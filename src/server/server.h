/* server.h — `vlm serve`: the OpenAI-compatible server joining the HTTP layer, the protocol,
 * media loading, the image cache, metrics and the scheduler over one loaded model. */
#ifndef VLM_SERVER_SERVER_H
#define VLM_SERVER_SERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "server/media.h"

struct vlm_error;
struct vlm_server;

struct vlm_server_config {
    const char *model_dir;
    const char *mmproj;               /* --mmproj: the vision file beside a text .gguf, or NULL */
    const char *host;                 /* default "0.0.0.0" as vLLM */
    int         port;                 /* default 8000; 0 = any free port */
    const char *const *served_names;  /* --served-model-name (first is reported); NULL = model_dir */
    int         n_served_names;
    const char *api_key;              /* NULL/"" = no authentication */
    int         max_model_len;        /* 0 = the model's */
    int         max_num_seqs;         /* default 16 */
    int         threads;              /* 0 = all cores */
    const char *dtype;                /* --dtype (vlm_model_params.dtype); NULL = auto */
    const char *quantization;         /* --quantization on load; NULL = none */
    int         max_num_batched_tokens; /* image tokens encoded between two steps (0 = 2048) */
    int         limit_images;         /* --limit-mm-per-prompt image (default 999) */
    struct vlm_media_policy media;
    size_t      max_body;             /* request body cap (bytes) */
    uint64_t    max_image_pixels;     /* VLLM_MAX_IMAGE_PIXELS / --max-image-pixels */
    json_t     *mm_processor_kwargs;  /* server processor settings = ceilings for requests (borrowed) */
    json_t     *media_io_kwargs;      /* {"image": {"rgba_background_color": [r,g,b]}} (borrowed) */
    const char *chat_template;        /* file path or template text; NULL = the model's */
    int         trust_request_chat_template;
    const char *generation_config;    /* "auto" (default: the model's generation_config.json), "vllm" */
    size_t      image_cache_bytes;
    int         prefill_chunk;
    int         kv_cache_tokens;      /* KV capacity shared by all sequences; 0 = engine default */
    int         kv_cache_dtype;       /* enum vlm_kv_dtype (engine/engine.h); 0 = auto (float32) */
};
void vlm_server_config_default(struct vlm_server_config *c);

/* Loads the model, starts the scheduler and the HTTP listener. */
int  vlm_server_start(const struct vlm_server_config *c, struct vlm_server **out, struct vlm_error *err);
int  vlm_server_port(const struct vlm_server *s);
/* Stops listening, cancels what runs, frees everything. */
void vlm_server_stop(struct vlm_server *s);

#endif
