/* vlm.h — the one public header of vlm.c: vision-language-model inference in C.
 *
 * A short tour:
 *
 *     struct vlm_model_params mp = vlm_model_default_params();
 *     struct vlm_model *model;
 *     if (vlm_model_load("models/vlm-demo", &mp, &model) != VLM_OK) {
 *         fprintf(stderr, "%s\n", vlm_last_error());
 *         return 1;
 *     }
 *     ...
 *     vlm_model_free(model);
 *
 * Conventions. Every fallible call returns an int: VLM_OK (0) or a negative VLM_E_* code;
 * vlm_strerror(code) names the code and vlm_last_error() gives the message of the calling
 * thread's last failure. Constructors fill an out-parameter. Whoever creates an object frees
 * it with the matching *_free. A loaded model is immutable and may be shared by threads; a
 * context belongs to one thread at a time.
 */
#ifndef VLM_H
#define VLM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(VLM_BUILDING)
#define VLM_API __attribute__((visibility("default")))
#else
#define VLM_API
#endif

#define VLM_VERSION "0.1.0"

/* Status codes: append-only, never renumbered. */
enum vlm_status {
    VLM_OK          =   0,
    VLM_E_NOMEM     =  -1,  /* an allocation failed or a cap on memory was reached */
    VLM_E_IO        =  -2,  /* a file could not be opened, read or mapped */
    VLM_E_FORMAT    =  -3,  /* bytes that do not follow their format (file or request) */
    VLM_E_INVALID   =  -4,  /* an argument or parameter out of its range */
    VLM_E_TOO_LARGE =  -5,  /* input past a configured cap (pixels, bytes, tokens) */
    VLM_E_UNSUPPORTED = -6, /* a valid input this build does not handle (architecture, dtype) */
    VLM_E_NOT_FOUND =  -7,  /* a named file, tensor, token or key is missing */
    VLM_E_LIMIT     =  -8,  /* a runtime limit was hit (template steps, recursion, time) */
    VLM_E_CANCELLED =  -9,  /* the caller cancelled the operation */
    VLM_E_FETCH     = -10,  /* remote media could not be fetched */
    VLM_E_FORBIDDEN = -11,  /* refused by policy (address, path, trust) */
    VLM_E_INTERNAL  = -12,  /* a bug: an invariant did not hold */
};

/* Name of a status code ("VLM_E_FORMAT"); never NULL; static storage. */
VLM_API const char *vlm_strerror(int code);

/* Message of the calling thread's last failed vlm_* call ("" if none). Valid until the
 * thread's next vlm_* call. Thread-safe (thread-local storage). */
VLM_API const char *vlm_last_error(void);

/* Library version string, e.g. "0.1.0". */
VLM_API const char *vlm_version(void);

/* Allocation hooks: every allocation of the library goes through these. Set them before any
 * other call; NULL restores the C library's malloc/realloc/free. Not thread-safe. */
typedef void *(*vlm_malloc_fn)(size_t size, void *user);
typedef void *(*vlm_realloc_fn)(void *ptr, size_t size, void *user);
typedef void  (*vlm_free_fn)(void *ptr, void *user);
VLM_API void vlm_set_allocator(vlm_malloc_fn m, vlm_realloc_fn r, vlm_free_fn f, void *user);

/* ---- models and generation: declared below by the engine (src/engine, src/models) ---- */

/* A loaded model: weights (mmap'd), config, tokenizer, chat template, image processor and
 * generation defaults. Immutable once loaded; may be shared by threads. */
struct vlm_model;

struct vlm_model_params {
    int n_threads;          /* threads for vlm_generate; 0 = all cores */
    int load_tokenizer;     /* 1 (default): load tokenizer, chat template and processor too;
                               0: weights and config only (parity tests, inspection) */
    const char *mmproj;     /* GGUF only: the vision mmproj file beside a text .gguf (NULL:
                               the one in the model's folder, or none); borrowed for the call */
    const char *dtype;      /* vLLM's --dtype: NULL or "auto" (a bf16 checkpoint is computed with
                               bf16 products and f32 sums, others in f32), "float32"/"float"
                               (exact f32 arithmetic), "bfloat16", "float16"/"half"; anything
                               else fails the load with VLM_E_INVALID. Borrowed for the call. */
    const char *quantization; /* vLLM's --quantization, applied on load to a safetensors model:
                               NULL (none), "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q4_k",
                               "q5_k", "q6_k": every 2-D weight but position embeddings is
                               quantized (llama.cpp's fallbacks where a width does not fit the
                               block; q4_k/q5_k keep the head and token embedding in Q6_K). */
    const char *tokenizer_dir; /* NULL (default): the model folder; else a folder whose tokenizer,
                                  tokenizer_config and chat template are used (vLLM's --tokenizer) */
};

/* Defaults: all cores, everything loaded. */
VLM_API struct vlm_model_params vlm_model_default_params(void);

/* Loads a Hugging Face model folder (config.json, *.safetensors, tokenizer and processor
 * files), or llama.cpp GGUF files: `dir` a text .gguf (its vision tower in params->mmproj) or
 * a folder holding a text .gguf and its mmproj .gguf and no config.json. On success *out owns the model (free with vlm_model_free); on failure *out is NULL
 * and vlm_last_error() names the file and tensor or key at fault. params may be NULL. */
VLM_API int vlm_model_load(const char *dir, const struct vlm_model_params *params,
                           struct vlm_model **out);
/* Frees a model; NULL is fine. No context may use it afterwards. */
VLM_API void vlm_model_free(struct vlm_model *model);

/* One encoded image file (JPEG, PNG, WebP, GIF bytes), borrowed for the call. */
struct vlm_image_bytes {
    const uint8_t *data;
    size_t         len;
};

struct vlm_generate_params {
    int      max_tokens;          /* new tokens at most; default 256 */
    float    temperature;         /* 0 = greedy; default: generation_config.json's, else 0 */
    int      top_k;               /* <= 0 off */
    float    top_p, min_p;        /* 1 / 0 = off */
    float    repetition_penalty, presence_penalty, frequency_penalty;
    uint64_t seed;
    int      has_seed;
    const char *const *stop;      /* stop strings (borrowed); n_stop of them */
    int      n_stop;
    int      n_threads;           /* 0 = the model params' */
    /* Streaming: called with each newly final piece of text; return non-zero to stop. */
    int    (*on_text)(const char *text, size_t len, void *user);
    void    *user;
    /* Image processor settings for this call, as vLLM's mm_processor_kwargs JSON object
     * ({"do_image_splitting": false}, {"size": {"longest_edge": 512}}, {"min_pixels": N,
     * "max_pixels": N}); NULL = as the model's processor config says. Borrowed. */
    const char *mm_processor_kwargs;
    /* Non-NULL: a plain text completion instead of a chat turn, as llama-completion runs a
     * prompt: BOS (when the tokenizer adds one) + the text's tokens (special-token spellings
     * matched), no chat template; messages_json and images are then not read. Borrowed. */
    const char *raw_prompt;
};
VLM_API struct vlm_generate_params vlm_generate_default_params(void);

struct vlm_generate_result {
    char    *text;                /* generated text (stop string cut off) */
    int32_t *token_ids;           /* (n_tokens) generated ids */
    float   *logprobs;            /* (n_tokens) log-probability of each generated token */
    int      n_tokens;
    int      n_prompt_tokens;     /* including image tokens */
    const char *finish_reason;    /* "stop" or "length" (static) */
    double   t_image_ms, t_prefill_ms, t_decode_ms;
    int32_t *prompt_ids;          /* (n_prompt_tokens) the prompt's token ids, image tokens included */
};
/* Frees what a result holds (not the struct itself). */
VLM_API void vlm_generate_result_free(struct vlm_generate_result *r);

/* One chat turn (or, with params->raw_prompt, a plain completion): messages_json is an OpenAI/HF-style array of {"role","content"} (content a
 * string or a list of {"type":"text"} / {"type":"image"} parts); the i-th image part is
 * images[i]. Applies the model's chat template with a generation prompt, encodes the images,
 * and generates. Thread-safe: each call makes its own context over the shared model. On
 * failure *out is zeroed and vlm_last_error() says why. */
VLM_API int vlm_generate(struct vlm_model *model, const char *messages_json,
                         const struct vlm_image_bytes *images, int n_images,
                         const struct vlm_generate_params *params, struct vlm_generate_result *out);

#ifdef __cplusplus
}
#endif
#endif /* VLM_H */
