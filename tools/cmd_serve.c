/* cmd_serve.c — `vlm serve [MODEL]`: the OpenAI-compatible server with vLLM's flag names and
 * value formats, vLLM's media environment variables, and vlm.c's own safety caps. */
#include "commands.h"
#include "serve_args.h"

#include "engine/engine.h"
#include "hub/hub.h"
#include "server/server.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/log.h"
#include "tensor/kernels.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static void serve_help(FILE *f) {
    fprintf(f,
"usage: vlm serve [MODEL] [options]\n"
"\n"
"Serves MODEL (a model folder, or a hub id such as HuggingFaceTB/SmolVLM-256M-Instruct found in\n"
"or downloaded into the Hugging Face cache; default: the bundled demo model) over an\n"
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
"\n"
"  --model MODEL                  the model (same as the positional MODEL)\n"
"  --tokenizer DIR                a folder whose tokenizer and chat template are used instead\n"
"  --config FILE.yaml             flags as YAML `flag-name: value` lines; the command line wins\n"
"  --max-logprobs N               largest logprobs / top_logprobs a request may ask (default 20)\n"
"  --chat-template-content-format auto|string|openai  how message content reaches the template\n"
"                                 (auto: a template that loops over parts gets parts)\n"
"  --response-role ROLE           the role of generated messages (default assistant)\n"
"  --allowed-origins JSON, --allowed-methods JSON, --allowed-headers JSON  CORS lists (default\n"
"                                 [\"*\"]: any origin); --allow-credentials\n"
"  --ssl-certfile F --ssl-keyfile F  serve HTTPS (PEM); --ssl-ca-certs F, --ssl-cert-reqs 0|1|2\n"
"                                 ask for / require client certificates\n"
"  --root-path P                  a path prefix a proxy leaves on requests (stripped)\n"
"  --log-level L, --uvicorn-log-level L  debug, info (default), warning, error, critical\n"
"  --disable-log-requests         no line per request; --disable-log-stats: no throughput line\n"
"  --timeout-keep-alive S         idle keep-alive connections close after S s (default 60)\n"
"  --limit-mm-per-prompt.image N  the dotted form of the JSON flags works too\n"
"\n"
"vlm.c flags:\n"
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
"  --max-connections N            open connections in total (default 1024)\n"
"  --max-connections-per-ip N     open connections from one client address (default 128); past a\n"
"                                 cap a connection gets a 503 JSON answer and is closed at once\n"
"  --request-header-timeout S     the whole request head must arrive within S s (default 20)\n"
"  --request-body-timeout S       the whole body within S s after the head (default 120); a\n"
"                                 slow sender gets 408\n"
"  --shutdown-timeout S           on SIGTERM/SIGINT: stop accepting, give running requests S s\n"
"                                 (default 30), then end each (streams: an error event and\n"
"                                 [DONE]; others: a 503 error body) and exit 0\n"
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
"no effect on this engine (--gpu-memory-utilization, --tensor-parallel-size/-tp,\n"
"--data-parallel-size/-dp, --trust-remote-code, --enforce-eager, ...), so job scripts run unchanged.\n"
"\n"
"Environment (as vLLM): VLLM_IMAGE_FETCH_TIMEOUT (seconds, default 5), VLLM_MAX_IMAGE_PIXELS,\n"
"VLLM_MEDIA_URL_ALLOW_REDIRECTS (1 default; 0 refuses redirects), VLLM_API_KEY,\n"
"VLLM_LOGGING_LEVEL (DEBUG, INFO, WARNING, ERROR), VLLM_LOG_STATS_INTERVAL (seconds, default 10),\n"
"VLLM_ALLOW_LONG_MAX_MODEL_LEN=1 (a --max-model-len past the model's positions).\n"
"\n"
"Logging (stderr, INFO by default): a start-up banner (model, load time, threads, KV cache,\n"
"kernels), one line per request (id, status, prompt and output tokens, seconds), and while\n"
"busy a line every 10 s with prompt and generation tokens/s, running/waiting requests and KV\n"
"cache usage. Fields the server does not implement (response_format json_object/json_schema,\n"
"guided_*, tools) are refused with a 400 naming the field, never ignored.\n\n" VLM_MODEL_REF_HELP);
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
    {"--gpu-memory-utilization", 1}, {"--tensor-parallel-size", 1}, {"-tp", 1}, {"--pipeline-parallel-size", 1},
    {"-pp", 1}, {"--data-parallel-size", 1}, {"-dp", 1}, {"--distributed-executor-backend", 1},
    {"--trust-remote-code", 0}, {"--enforce-eager", 0}, {"--seed", 1},
    {"--swap-space", 1}, {"--enable-prefix-caching", 0}, {"--enable-chunked-prefill", 0},
    {"--max-log-len", 1}, {"--disable-frontend-multiprocessing", 0}, {"--block-size", 1},
    {"--max-num-partial-prefills", 1}, {"--cpu-offload-gb", 1}, {"--kv-transfer-config", 1},
    {"--enable-log-requests", 0}, {"--tokenizer-mode", 1},
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

/* Every flag vlm serve knows, for the nearest-flag suggestion. */
static const char *const known_flags[] = {
    "--host", "--port", "--served-model-name", "--api-key", "--max-model-len", "--max-num-seqs", "--threads",
    "--limit-mm-per-prompt", "--allowed-local-media-path", "--allowed-media-domains", "--mm-processor-kwargs",
    "--media-io-kwargs", "--chat-template", "--trust-request-chat-template", "--generation-config",
    "--allow-private-media-urls", "--max-request-bytes", "--max-image-bytes", "--max-image-pixels",
    "--image-cache-mb", "--prefill-chunk", "--kv-cache-dtype", "--kv-cache-tokens", "--max-num-batched-tokens",
    "--model", "--tokenizer", "--max-logprobs", "--allowed-origins", "--allowed-methods", "--allowed-headers",
    "--allow-credentials", "--chat-template-content-format", "--response-role", "--config", "--log-level",
    "--uvicorn-log-level", "--disable-log-requests", "--disable-log-stats", "--ssl-keyfile", "--ssl-certfile",
    "--ssl-ca-certs", "--ssl-cert-reqs", "--root-path", "--timeout-keep-alive", "--max-connections",
    "--max-connections-per-ip", "--request-header-timeout", "--request-body-timeout", "--shutdown-timeout",
    "--gpu-memory-utilization", "--tensor-parallel-size", "--pipeline-parallel-size", "--data-parallel-size",
    "--dtype", "--trust-remote-code", "--enforce-eager", "--seed", "--download-dir", "--help", "--revision",
    "--hf-token", "--allow-pattern",
};

/* --allowed-origins '["http://a"]' (vLLM's JSON list) -> borrowed strings kept in *keep. */
static int json_list_arg(const char *flag, const char *v, json_t **keep, const char **out, int max, int *n) {
    json_error_t je;
    json_t *j = json_loads(v, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_array(j) || json_array_size(j) > (size_t)max) {
        fprintf(stderr, "vlm serve: %s expects a JSON list of strings, e.g. '[\"*\"]'\n", flag);
        json_decref(j);
        return -1;
    }
    *n = 0;
    for (size_t i = 0; i < json_array_size(j); i++) {
        const char *sv = json_string_value(json_array_get(j, i));
        if (!sv) { fprintf(stderr, "vlm serve: %s: every entry must be a string\n", flag); json_decref(j); return -1; }
        out[(*n)++] = sv;
    }
    json_decref(*keep);
    *keep = j;
    return 0;
}

/* uvicorn / vLLM level names -> ours. */
static int log_level_arg(const char *v) {
    static const struct { const char *name; int level; } lv[] = {
        {"critical", VLM_LOG_ERROR}, {"error", VLM_LOG_ERROR}, {"warning", VLM_LOG_WARN}, {"warn", VLM_LOG_WARN},
        {"info", VLM_LOG_INFO}, {"debug", VLM_LOG_DEBUG}, {"trace", VLM_LOG_DEBUG}};
    for (size_t i = 0; i < sizeof lv / sizeof lv[0]; i++)
        if (!strcasecmp(v, lv[i].name)) { vlm_log_set_level((enum vlm_log_level)lv[i].level); return 0; }
    return -1;
}

/* --limit-mm-per-prompt.image 2 (argparse's dotted form): sets key path "image" of *obj. */
static int dotted_arg(const char *path, const char *v, json_t **obj) {
    if (!*obj && !(*obj = json_object())) return -1;
    json_error_t je;
    json_t *val = json_loads(v, JSON_DECODE_ANY, &je);
    if (!val) val = json_string(v);
    json_t *cur = *obj;
    char key[128];
    for (;;) {
        size_t n = strcspn(path, ".");
        if (n == 0 || n >= sizeof key) { json_decref(val); return -1; }
        memcpy(key, path, n);
        key[n] = 0;
        if (!path[n]) return json_object_set_new(cur, key, val) ? -1 : 0;
        json_t *next = json_object_get(cur, key);
        if (!json_is_object(next)) { next = json_object(); json_object_set_new(cur, key, next); }
        cur = next;
        path += n + 1;
    }
}

static const char *const json_flags[] = {"--limit-mm-per-prompt", "--mm-processor-kwargs", "--media-io-kwargs"};

static volatile sig_atomic_t got_signal;

int cmd_serve(int argc, char **argv) {
    struct vlm_server_config c;
    vlm_server_config_default(&c);
    static const char *names[64], *domains[256], *origins[64], *methods[64], *headers[64];
    static char local_root[PATH_MAX];
    int n_names = 0, n_domains = 0, rc = 2, n_cfg = 0;
    long v;
    json_t *limit = NULL, *mmkw = NULL, *iokw = NULL, *dotted[3] = {NULL, NULL, NULL}, *lists[3] = {NULL, NULL, NULL};
    char **cfg_args = NULL, cfg_err[256];
    const char *env;
    struct vlm_model_ref ref = {0};
    char *resolved = NULL;
    /* --config FILE.yaml: its flags go first, so that the command line wins */
    for (int i = 1; i + 1 < argc; i++)
        if (!strcmp(argv[i], "--config") && vlm_serve_read_config(argv[i + 1], &cfg_args, &n_cfg, cfg_err, sizeof cfg_err)) {
            fprintf(stderr, "vlm serve: %s\n", cfg_err);
            return 2;
        }
    /* argparse's --flag=value spelling: split into two arguments */
    char **split = vlm_calloc(((size_t)argc + (size_t)n_cfg) * 2 + 1, sizeof *split);
    if (!split) { fprintf(stderr, "vlm serve: out of memory\n"); vlm_serve_free_args(cfg_args, n_cfg); return 1; }
    int n_split = 0;
    for (int i = 0; i < argc + n_cfg; i++) {
        char *arg = i == 0 ? argv[0] : i <= n_cfg ? cfg_args[i - 1] : argv[i - n_cfg];
        char *eq = strncmp(arg, "--", 2) == 0 ? strchr(arg, '=') : NULL;
        if (eq) { *eq = 0; split[n_split++] = arg; split[n_split++] = eq + 1; }
        else split[n_split++] = arg;
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
    /* vLLM logs at INFO by default: one line per request, throughput while busy */
    if (!getenv("VLM_LOG")) vlm_log_set_level(VLM_LOG_INFO);
    if ((env = getenv("VLLM_LOGGING_LEVEL")) && *env && log_level_arg(env)) {
        fprintf(stderr, "vlm serve: bad VLLM_LOGGING_LEVEL '%s' (DEBUG, INFO, WARNING, ERROR, CRITICAL)\n", env);
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VAL() do { if (!val) { fprintf(stderr, "vlm serve: %s needs a value\n", a); goto out; } i++; } while (0)
#define BAD_VAL() do { fprintf(stderr, "vlm serve: bad value for %s: '%s'\n", a, val); goto out; } while (0)
        int k_ = vlm_model_ref_flag(&ref, "serve", argc, argv, &i);
        if (k_ < 0) goto out;
        if (k_) continue;
        int jf = -1;
        for (int k = 0; k < 3; k++) {
            size_t fl = strlen(json_flags[k]);
            if (!strncmp(a, json_flags[k], fl) && a[fl] == '.') jf = k;
        }
        if (jf >= 0) {   /* --limit-mm-per-prompt.image 2 */
            NEED_VAL();
            if (dotted_arg(a + strlen(json_flags[jf]) + 1, val, &dotted[jf])) BAD_VAL();
        }
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { serve_help(stdout); rc = 0; goto out; }
        else if (!strcmp(a, "--host")) { NEED_VAL(); c.host = val; }
        else if (!strcmp(a, "--port")) { NEED_VAL(); if (parse_long(val, 0, 65535, &v)) BAD_VAL(); c.port = (int)v; }
        else if (!strcmp(a, "--model")) { NEED_VAL(); c.model_dir = val; }
        else if (!strcmp(a, "--config")) { NEED_VAL(); }   /* read above */
        else if (!strcmp(a, "--tokenizer")) { NEED_VAL(); c.tokenizer = val; }
        else if (!strcmp(a, "--served-model-name")) {
            while (i + 1 < argc && strncmp(argv[i + 1], "--", 2) && n_names < 64) names[n_names++] = argv[++i];
            if (!n_names) { fprintf(stderr, "vlm serve: --served-model-name needs a name\n"); goto out; }
        } else if (!strcmp(a, "--api-key")) { NEED_VAL(); c.api_key = val; }
        else if (!strcmp(a, "--max-model-len")) { NEED_VAL(); if (parse_long(val, 16, 1 << 24, &v)) BAD_VAL(); c.max_model_len = (int)v; }
        else if (!strcmp(a, "--max-num-seqs")) { NEED_VAL(); if (parse_long(val, 1, 1024, &v)) BAD_VAL(); c.max_num_seqs = (int)v; }
        else if (!strcmp(a, "--max-logprobs")) { NEED_VAL(); if (parse_long(val, 0, 1 << 20, &v)) BAD_VAL(); c.max_logprobs = (int)v; }
        else if (!strcmp(a, "--threads")) { NEED_VAL(); if (parse_long(val, 0, 1024, &v)) BAD_VAL(); c.threads = (int)v; }
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
        else if (!strcmp(a, "--chat-template-content-format")) {
            NEED_VAL();
            if (!strcmp(val, "auto")) c.content_format = -1;
            else if (!strcmp(val, "string")) c.content_format = 0;
            else if (!strcmp(val, "openai")) c.content_format = 1;
            else BAD_VAL();
        } else if (!strcmp(a, "--response-role")) { NEED_VAL(); c.response_role = val; }
        else if (!strcmp(a, "--trust-request-chat-template")) c.trust_request_chat_template = 1;
        else if (!strcmp(a, "--generation-config")) {
            NEED_VAL();
            if (strcmp(val, "auto") && strcmp(val, "vllm")) {
                fprintf(stderr, "vlm serve: --generation-config takes 'auto' or 'vllm' (a separate folder is not supported yet)\n");
                goto out;
            }
            c.generation_config = val;
        } else if (!strcmp(a, "--allowed-origins") || !strcmp(a, "--allowed-methods") || !strcmp(a, "--allowed-headers")) {
            NEED_VAL();
            int k = a[10] == 'o' ? 0 : a[10] == 'm' ? 1 : 2, n = 0;
            const char **dst = k == 0 ? origins : k == 1 ? methods : headers;
            if (json_list_arg(a, val, &lists[k], dst, 64, &n)) goto out;
            if (k == 0) { c.http.cors_origins = dst; c.http.n_cors_origins = n; }
            else if (k == 1) { c.http.cors_methods = dst; c.http.n_cors_methods = n; }
            else { c.http.cors_headers = dst; c.http.n_cors_headers = n; }
        } else if (!strcmp(a, "--allow-credentials")) c.http.cors_credentials = 1;
        else if (!strcmp(a, "--log-level") || !strcmp(a, "--uvicorn-log-level")) { NEED_VAL(); if (log_level_arg(val)) BAD_VAL(); }
        else if (!strcmp(a, "--disable-log-requests")) c.log_requests = 0;
        else if (!strcmp(a, "--disable-log-stats")) c.log_stats = 0;
        else if (!strcmp(a, "--ssl-keyfile")) { NEED_VAL(); c.http.tls_key = val; }
        else if (!strcmp(a, "--ssl-certfile")) { NEED_VAL(); c.http.tls_cert = val; }
        else if (!strcmp(a, "--ssl-ca-certs")) { NEED_VAL(); c.http.tls_ca = val; }
        else if (!strcmp(a, "--ssl-cert-reqs")) { NEED_VAL(); if (parse_long(val, 0, 2, &v)) BAD_VAL(); c.http.tls_verify = (int)v; }
        else if (!strcmp(a, "--root-path")) { NEED_VAL(); c.http.root_path = val; }
        else if (!strcmp(a, "--timeout-keep-alive")) { NEED_VAL(); if (parse_long(val, 1, 86400, &v)) BAD_VAL(); c.http.idle_timeout_s = (int)v; }
        else if (!strcmp(a, "--max-connections")) { NEED_VAL(); if (parse_long(val, 2, 100000, &v)) BAD_VAL(); c.http.max_connections = (int)v; }
        else if (!strcmp(a, "--max-connections-per-ip")) { NEED_VAL(); if (parse_long(val, 1, 100000, &v)) BAD_VAL(); c.http.max_per_ip = (int)v; }
        else if (!strcmp(a, "--request-header-timeout")) { NEED_VAL(); if (parse_long(val, 1, 3600, &v)) BAD_VAL(); c.http.head_timeout_s = (int)v; }
        else if (!strcmp(a, "--request-body-timeout")) { NEED_VAL(); if (parse_long(val, 1, 86400, &v)) BAD_VAL(); c.http.body_timeout_s = (int)v; }
        else if (!strcmp(a, "--shutdown-timeout")) { NEED_VAL(); if (parse_long(val, 0, 86400, &v)) BAD_VAL(); c.shutdown_timeout_s = (int)v; }
        else if (!strcmp(a, "--allow-private-media-urls")) c.media.allow_private = 1;
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
        else if (!strcmp(a, "--prefill-chunk")) { NEED_VAL(); if (parse_long(val, 16, 8192, &v)) BAD_VAL(); c.prefill_chunk = (int)v; }
        else if (!strcmp(a, "--max-num-batched-tokens")) {
            NEED_VAL();   /* vLLM's per-step token budget: decode rows + the prefill chunk */
            if (parse_long(val, 32, 1 << 20, &v)) BAD_VAL();
            c.prefill_chunk = (int)(v > c.max_num_seqs + 16 ? v - c.max_num_seqs : 16);
            c.max_num_batched_tokens = (int)v;   /* also the encoder's budget, as in vLLM */
        } else if (!strcmp(a, "--dtype")) {
            NEED_VAL();   /* vLLM's values; arithmetic is float32 whatever the weights */
            static const char *const dts[] = {"auto", "half", "float16", "bfloat16", "float", "float32"};
            int ok = 0;
            for (size_t k = 0; k < sizeof dts / sizeof dts[0]; k++) ok |= !strcmp(val, dts[k]);
            if (!ok) { fprintf(stderr, "vlm serve: --dtype %s is not one of auto, half, float16, bfloat16, float, float32\n", val); goto out; }
        } else if (ignored_flag(a, &i, argc)) continue;
        else if (a[0] == '-') {
            const char *near = vlm_nearest_flag(a, known_flags, (int)(sizeof known_flags / sizeof known_flags[0]));
            if (near) fprintf(stderr, "vlm serve: unknown option %s; did you mean %s? (see vlm serve --help)\n", a, near);
            else fprintf(stderr, "vlm serve: unknown option %s (see vlm serve --help)\n", a);
            goto out;
        }
        else if (!c.model_dir) c.model_dir = a;
        else { fprintf(stderr, "vlm serve: more than one MODEL given\n"); goto out; }
#undef NEED_VAL
#undef BAD_VAL
    }
    if (dotted[0]) {   /* the dotted form merges into the JSON one */
        if (!limit) limit = json_object();
        json_object_update(limit, dotted[0]);
        if (image_limit(limit, &c.limit_images)) { fprintf(stderr, "vlm serve: bad --limit-mm-per-prompt\n"); goto out; }
    }
    if (dotted[1]) { if (!mmkw) mmkw = json_object(); json_object_update_recursive(mmkw, dotted[1]); }
    if (dotted[2]) { if (!iokw) iokw = json_object(); json_object_update_recursive(iokw, dotted[2]); }
    if (!c.model_dir) c.model_dir = vlm_tool_default_model();
    if (vlm_hub_is_repo_id(c.model_dir) && !n_names) names[n_names++] = c.model_dir;   /* vLLM serves it by its id */
    if (vlm_model_ref_resolve("serve", c.model_dir, &ref, true, &resolved)) { rc = 1; goto out; }
    c.model_dir = resolved;
    c.served_names = names;
    c.n_served_names = n_names;
    c.media.domains = domains;
    c.media.n_domains = (size_t)n_domains;
    c.mm_processor_kwargs = mmkw;
    c.media_io_kwargs = iokw;

#ifdef __GLIBC__
    /* one malloc arena per core at most: hundreds of connection threads would otherwise each
       grow an arena of their own and keep it */
    mallopt(M_ARENA_MAX, 2 * (int)sysconf(_SC_NPROCESSORS_ONLN));
#endif
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
    /* IPv6 literals in brackets: http://[::]:8000 */
    const char *h = c.host && *c.host ? c.host : "0.0.0.0";
    int v6 = strchr(h, ':') != NULL;
    fprintf(stderr, "vlm serve: serving %s on %s://%s%s%s:%d/v1 (max %d sequences, images per prompt %d)\n",
            n_names ? names[0] : c.model_dir, c.http.tls_cert ? "https" : "http", v6 ? "[" : "", h, v6 ? "]" : "",
            vlm_server_port(srv), c.max_num_seqs, c.limit_images);
    char about[1024];
    vlm_server_describe(srv, about, sizeof about);
    fprintf(stderr, "vlm serve: %s; %d threads, %s kernels%s%s\n", about, c.threads > 0 ? c.threads : (int)sysconf(_SC_NPROCESSORS_ONLN),
            vlm_kernels()->name, c.log_requests ? "" : "; request log off", c.log_stats ? "" : "; stats log off");
    int sig = 0;
    sigwait(&set, &sig);
    got_signal = sig;
    fprintf(stderr, "vlm serve: shutting down (%s): no new connections; running requests get %d s to finish\n",
            sig == SIGTERM ? "SIGTERM" : "SIGINT", c.shutdown_timeout_s);
    vlm_server_shutdown(srv);
    fprintf(stderr, "vlm serve: stopped\n");
    rc = 0;
out:
    vlm_free(resolved);
    vlm_free(split);
    vlm_serve_free_args(cfg_args, n_cfg);
    json_decref(limit);
    json_decref(mmkw);
    json_decref(iokw);
    for (int k = 0; k < 3; k++) { json_decref(dotted[k]); json_decref(lists[k]); }
    return rc;
}
