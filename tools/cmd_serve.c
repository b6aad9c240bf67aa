/* cmd_serve.c — `vlm serve [MODEL]`: the OpenAI-compatible server with vLLM's flag names and
 * value formats, vLLM's media environment variables, and vlm.c's own safety caps. */
#include "commands.h"

#include "engine/engine.h"
#include "formats/weights_prepare.h"
#include "server/server.h"
#include "util/alloc.h"
#include "util/error.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

static void serve_help(FILE *f) {
    fprintf(f,
"usage: vlm serve [MODEL] [options]\n"
"\n"
"Serves MODEL (a local Hugging Face model folder, a llama.cpp .gguf file with --mmproj, or a\n"
"folder of .gguf files; default: the bundled demo model) over an\n"
"OpenAI-compatible HTTP API: /v1/chat/completions, /v1/completions, /v1/models, /health,\n"
"/version, /metrics, /tokenize, /detokenize. Flags use vLLM's names and value formats.\n"
"\n"
"vLLM flags:\n"
"  --host HOST                    address to listen on (default 0.0.0.0)\n"
"  --port PORT                    port (default 8000)\n"
"  --served-model-name N [N ...]  model name(s) requests may use (default: MODEL)\n"
"  --api-key KEY                  require `Authorization: Bearer KEY` on /v1/* (env VLLM_API_KEY)\n"
"  --max-model-len N              context length per sequence, e.g. 4096 or 8k (default: the model's)\n"
"  --max-num-seqs N               sequences decoded together; more requests queue (default 16)\n"
"  --limit-mm-per-prompt JSON     most items per prompt, e.g. '{\"image\":2}' (default 999; 0 disables images)\n"
"  --allowed-local-media-path DIR allow file:// image URLs, only for files inside DIR\n"
"  --allowed-media-domains H [H ...]  only fetch http(s) images from these host names\n"
"  --mm-processor-kwargs JSON     image processor settings, e.g. '{\"do_image_splitting\":false}';\n"
"                                 they are also the ceilings for per-request mm_processor_kwargs\n"
"  --media-io-kwargs JSON         e.g. '{\"image\":{\"rgba_background_color\":[0,0,0]}}'\n"
"  --chat-template FILE_OR_STRING the chat template to use instead of the model's\n"
"  --trust-request-chat-template  accept chat_template in requests (refused by default)\n"
"  --generation-config auto|vllm  sampling defaults from the model's generation_config.json (auto,\n"
"                                 the default) or vLLM's neutral defaults (vllm)\n"
"  --threads N                    compute threads (default: all cores)\n"
"  --dtype T                      auto (default: a bf16 checkpoint is computed with bf16 products\n"
"                                 and f32 sums, others in f32), float32 (exact f32 arithmetic),\n"
"                                 bfloat16, float16 (weights converted on load)\n"
"  --quantization Q, -q Q         quantize the weights on load: q8_0, q4_k, q5_k, q6_k, q4_0,\n"
"                                 q4_1, q5_0, q5_1 (llama.cpp's block types and fallbacks)\n"
"\n"
"vlm.c flags:\n"
"  --mmproj FILE                  the vision tower (llama.cpp's mmproj .gguf) of a .gguf MODEL\n"
"  --allow-private-media-urls     let image URLs reach loopback/private addresses (refused by\n"
"                                 default; cloud metadata addresses stay refused)\n"
"  --max-request-bytes N          largest request body (default 67108864); larger gets 413\n"
"  --max-image-bytes N            largest encoded image from any URL (default 20971520)\n"
"  --max-image-pixels N           largest width*height decoded (default 89478485; env VLLM_MAX_IMAGE_PIXELS)\n"
"  --image-cache-mb N             memory for decoded images and their embeddings (default 256)\n"
"  --prefill-chunk N              prompt tokens per scheduler step (default 256)\n"
"  --kv-cache-dtype T             auto (default: float32, what activations are computed in, as\n"
"                                 vLLM's auto), float16 or bfloat16: half the KV memory and the\n"
"                                 bytes each decode step reads, logits move by about 1e-3\n"
"  --kv-cache-tokens N            KV-cache capacity shared by all sequences, in tokens (default:\n"
"                                 max-model-len x max-num-seqs, taken block by block as needed)\n"
"\n"
"--max-num-batched-tokens N (vLLM's per-step token budget) sets the prefill chunk to N minus\n"
"--max-num-seqs, and the image tokens encoded between two decode steps (default 2048): images\n"
"that arrive together are encoded, then prefilled together; running requests pause while the\n"
"encoder runs (about 1.2 s per 64 SmolVLM-256M image tokens on 2 cores), so a lower N shortens\n"
"those pauses.\n"
"\n"
"Also accepted: vLLM flags that have\n"
"no effect on this engine (--gpu-memory-utilization, --tensor-parallel-size,\n"
"--trust-remote-code, --enforce-eager, --disable-log-requests, ...), so job scripts run unchanged.\n"
"\n"
"Environment (as vLLM): VLLM_IMAGE_FETCH_TIMEOUT (seconds, default 5), VLLM_MAX_IMAGE_PIXELS,\n"
"VLLM_MEDIA_URL_ALLOW_REDIRECTS (1 default; 0 refuses redirects), VLLM_API_KEY.\n");
}

static int parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end != s && (*end == 'k' || *end == 'K') && end[1] == 0 && v <= LONG_MAX / 1024) { v *= 1024; end++; }
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static json_t *parse_json_arg(const char *flag, const char *v) {
    json_error_t je;
    json_t *j = json_loads(v, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(j)) {
        fprintf(stderr, "vlm serve: %s expects a JSON object, e.g. '{\"image\":2}'\n", flag);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* --limit-mm-per-prompt: {"image": N} or {"image": {"count": N}}. */
static int image_limit(json_t *j, int *out) {
    json_t *v = json_object_get(j, "image");
    if (json_is_object(v)) v = json_object_get(v, "count");
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100000) return -1;
    *out = (int)json_integer_value(v);
    return 0;
}

/* vLLM flags that mean nothing on this engine: accepted (with a note) so that existing job
 * scripts run unchanged. The second field says whether the flag takes a value. */
static const struct { const char *name; int has_value; } vllm_ignored[] = {
    {"--gpu-memory-utilization", 1}, {"--tensor-parallel-size", 1}, {"--pipeline-parallel-size", 1},
    {"--trust-remote-code", 0}, {"--enforce-eager", 0}, {"--disable-log-requests", 0},
    {"--disable-log-stats", 0}, {"--uvicorn-log-level", 1}, {"--seed", 1}, {"--download-dir", 1},
    {"--swap-space", 1}, {"--enable-prefix-caching", 0}, {"--enable-chunked-prefill", 0},
    {"--max-log-len", 1}, {"--disable-frontend-multiprocessing", 0},
};

static int ignored_flag(const char *a, int *i, int argc) {
    for (size_t k = 0; k < sizeof vllm_ignored / sizeof vllm_ignored[0]; k++) {
        if (strcmp(a, vllm_ignored[k].name)) continue;
        if (vllm_ignored[k].has_value && *i + 1 < argc) (*i)++;
        fprintf(stderr, "vlm serve: note: %s has no effect here (accepted for vLLM compatibility)\n",
                vllm_ignored[k].name);
        return 1;
    }
    return 0;
}

static volatile sig_atomic_t got_signal;

int cmd_serve(int argc, char **argv) {
    struct vlm_server_config c;
    vlm_server_config_default(&c);
    static const char *names[64], *domains[256];
    static char local_root[PATH_MAX];
    int n_names = 0, n_domains = 0, rc = 2;
    long v;
    json_t *limit = NULL, *mmkw = NULL, *iokw = NULL;
    const char *env;
    /* argparse's --flag=value spelling: split into two arguments */
    char **split = vlm_calloc((size_t)argc * 2 + 1, sizeof *split);
    if (!split) { fprintf(stderr, "vlm serve: out of memory\n"); return 1; }
    int n_split = 0;
    for (int i = 0; i < argc; i++) {
        char *eq = strncmp(argv[i], "--", 2) == 0 ? strchr(argv[i], '=') : NULL;
        if (eq) { *eq = 0; split[n_split++] = argv[i]; split[n_split++] = eq + 1; }
        else split[n_split++] = argv[i];
    }
    argc = n_split;
    argv = split;
    if ((env = getenv("VLLM_API_KEY")) && *env) c.api_key = env;
    if ((env = getenv("VLLM_IMAGE_FETCH_TIMEOUT")) && *env) {
        if (parse_long(env, 1, 3600, &v)) { fprintf(stderr, "vlm serve: bad VLLM_IMAGE_FETCH_TIMEOUT\n"); goto out; }
        c.media.timeout_ms = v * 1000;
    }
    if ((env = getenv("VLLM_MAX_IMAGE_PIXELS")) && *env) {
        if (parse_long(env, 1, LONG_MAX, &v)) { fprintf(stderr, "vlm serve: bad VLLM_MAX_IMAGE_PIXELS\n"); goto out; }
        c.max_image_pixels = (uint64_t)v;
    }
    if ((env = getenv("VLLM_MEDIA_URL_ALLOW_REDIRECTS")) && *env)
        c.media.max_redirects = (!strcmp(env, "0") || !strcasecmp(env, "false")) ? 0 : 5;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL() do { if (!val) { fprintf(stderr, "vlm serve: %s needs a value\n", a); goto out; } i++; } while (0)
#define BAD_VAL() do { fprintf(stderr, "vlm serve: bad value for %s: '%s'\n", a, val); goto out; } while (0)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { serve_help(stdout); rc = 0; goto out; }
        else if (!strcmp(a, "--host")) { NEED_VAL(); c.host = val; }
        else if (!strcmp(a, "--port")) { NEED_VAL(); if (parse_long(val, 0, 65535, &v)) BAD_VAL(); c.port = (int)v; }
        else if (!strcmp(a, "--served-model-name")) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) && n_names < 64) names[n_names++] = argv[++i];
            if (!n_names) { fprintf(stderr, "vlm serve: --served-model-name needs a name\n"); goto out; }
        } else if (!strcmp(a, "--api-key")) { NEED_VAL(); c.api_key = val; }
        else if (!strcmp(a, "--max-model-len")) { NEED_VAL(); if (parse_long(val, 16, 1 << 24, &v)) BAD_VAL(); c.max_model_len = (int)v; }
        else if (!strcmp(a, "--max-num-seqs")) { NEED_VAL(); if (parse_long(val, 1, 1024, &v)) BAD_VAL(); c.max_num_seqs = (int)v; }
        else if (!strcmp(a, "--threads")) { NEED_VAL(); if (parse_long(val, 0, 1024, &v)) BAD_VAL(); c.threads = (int)v; }
        else if (!strcmp(a, "--dtype") || !strcmp(a, "--quantization") || !strcmp(a, "-q")) {
            NEED_VAL();   /* checked here so that a typo fails before the model loads */
            struct vlm_error e = {0};
            enum vlm_dtype_param dp;
            enum vlm_dtype qt;
            int bad = a[2] == 'd' ? vlm_dtype_param_parse(val, &dp, &e) : vlm_quant_param_parse(val, &qt, &e);
            if (bad) {
                fprintf(stderr, "vlm serve: %s\n", e.msg);
                goto out;
            }
            if (a[2] == 'd') c.dtype = val;
            else c.quantization = val;
        }
        else if (!strcmp(a, "--limit-mm-per-prompt")) {
            NEED_VAL();
            json_decref(limit);
            if (!(limit = parse_json_arg(a, val)) || image_limit(limit, &c.limit_images)) BAD_VAL();
        } else if (!strcmp(a, "--allowed-local-media-path")) {
            NEED_VAL();
            struct stat st;
            if (!realpath(val, local_root) || stat(local_root, &st) || !S_ISDIR(st.st_mode)) {
                fprintf(stderr, "vlm serve: --allowed-local-media-path '%s' is not a directory\n", val);
                goto out;
            }
            c.media.local_root = local_root;
        } else if (!strcmp(a, "--allowed-media-domains")) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) && n_domains < 256) domains[n_domains++] = argv[++i];
        } else if (!strcmp(a, "--mm-processor-kwargs")) {
            NEED_VAL();
            json_decref(mmkw);
            if (!(mmkw = parse_json_arg(a, val))) goto out;
        } else if (!strcmp(a, "--media-io-kwargs")) {
            NEED_VAL();
            json_decref(iokw);
            if (!(iokw = parse_json_arg(a, val))) goto out;
        } else if (!strcmp(a, "--chat-template")) { NEED_VAL(); c.chat_template = val; }
        else if (!strcmp(a, "--trust-request-chat-template")) c.trust_request_chat_template = 1;
        else if (!strcmp(a, "--generation-config")) {
            NEED_VAL();
            if (strcmp(val, "auto") && strcmp(val, "vllm")) {
                fprintf(stderr, "vlm serve: --generation-config takes 'auto' or 'vllm' (a separate folder is not supported yet)\n");
                goto out;
            }
            c.generation_config = val;
        } else if (!strcmp(a, "--allow-private-media-urls")) c.media.allow_private = 1;
        else if (!strcmp(a, "--max-request-bytes")) { NEED_VAL(); if (parse_long(val, 1024, 1L << 32, &v)) BAD_VAL(); c.max_body = (size_t)v; }
        else if (!strcmp(a, "--max-image-bytes")) { NEED_VAL(); if (parse_long(val, 1024, 1L << 32, &v)) BAD_VAL(); c.media.max_bytes = (size_t)v; }
        else if (!strcmp(a, "--max-image-pixels")) { NEED_VAL(); if (parse_long(val, 1, LONG_MAX, &v)) BAD_VAL(); c.max_image_pixels = (uint64_t)v; }
        else if (!strcmp(a, "--image-cache-mb")) { NEED_VAL(); if (parse_long(val, 0, 1 << 20, &v)) BAD_VAL(); c.image_cache_bytes = (size_t)v << 20; }
        else if (!strcmp(a, "--kv-cache-dtype")) {
            NEED_VAL();
            enum vlm_kv_dtype kt;
            if (vlm_kv_dtype_parse(val, &kt) != 0) {
                fprintf(stderr, "vlm serve: --kv-cache-dtype %s is not supported here (auto, float32, float16, bfloat16)\n", val);
                goto out;
            }
            c.kv_cache_dtype = (int)kt;
        }
        else if (!strcmp(a, "--kv-cache-tokens")) { NEED_VAL(); if (parse_long(val, 16, 1L << 30, &v)) BAD_VAL(); c.kv_cache_tokens = (int)v; }
        else if (!strcmp(a, "--mmproj")) { NEED_VAL(); c.mmproj = val; }
        else if (!strcmp(a, "--prefill-chunk")) { NEED_VAL(); if (parse_long(val, 16, 8192, &v)) BAD_VAL(); c.prefill_chunk = (int)v; }
        else if (!strcmp(a, "--max-num-batched-tokens")) {
            NEED_VAL();   /* vLLM's per-step token budget: decode rows + the prefill chunk */
            if (parse_long(val, 32, 1 << 20, &v)) BAD_VAL();
            c.prefill_chunk = (int)(v > c.max_num_seqs + 16 ? v - c.max_num_seqs : 16);
            c.max_num_batched_tokens = (int)v;   /* also the encoder's budget, as in vLLM */
        } else if (ignored_flag(a, &i, argc)) continue;
        else if (a[0] == '-') { fprintf(stderr, "vlm serve: unknown option %s (see vlm serve --help)\n", a); goto out; }
        else if (!c.model_dir) c.model_dir = a;
        else { fprintf(stderr, "vlm serve: more than one MODEL given\n"); goto out; }
#undef NEED_VAL
#undef BAD_VAL
    }
    if (!c.model_dir) c.model_dir = vlm_tool_default_model();
    c.served_names = names;
    c.n_served_names = n_names;
    c.media.domains = domains;
    c.media.n_domains = (size_t)n_domains;
    c.mm_processor_kwargs = mmkw;
    c.media_io_kwargs = iokw;

    /* signals: every thread inherits the blocked set; this thread waits for one */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct vlm_server *srv;
    struct vlm_error err;
    if (vlm_server_start(&c, &srv, &err) != VLM_OK) {
        fprintf(stderr, "vlm serve: %s\n", err.msg);
        rc = 1;
        goto out;
    }
    fprintf(stderr, "vlm serve: serving %s on http://%s:%d/v1 (max %d sequences, images per prompt %d)\n",
            n_names ? names[0] : c.model_dir, c.host, vlm_server_port(srv), c.max_num_seqs, c.limit_images);
    int sig = 0;
    sigwait(&set, &sig);
    got_signal = sig;
    fprintf(stderr, "vlm serve: shutting down\n");
    vlm_server_stop(srv);
    rc = 0;
out:
    vlm_free(split);
    json_decref(limit);
    json_decref(mmkw);
    json_decref(iokw);
    return rc;
}
