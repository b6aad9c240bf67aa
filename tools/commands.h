/* commands.h — the subcommands of the `vlm` tool; each lives in tools/cmd_<name>.c and
 * returns a process exit status (0 ok, 1 failure, 2 usage). */
#ifndef VLM_TOOLS_COMMANDS_H
#define VLM_TOOLS_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>

struct vlm_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);  /* argv[0] is the subcommand name */
};

/* Default model folder: $VLM_DEMO_MODEL, else the bundled models/vlm-demo beside the
 * source tree this binary was built from, else ./models/vlm-demo. */
const char *vlm_tool_default_model(void);

int cmd_version(int argc, char **argv);
int cmd_serve(int argc, char **argv);      /* tools/cmd_serve.c */
int cmd_preprocess(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_chat_template(int argc, char **argv);
/* `vlm bench --tokenizer ...` (tools/bench_tokenizer.c); cmd_bench_tokenizer is its hidden
 * stand-alone row `vlm bench-tokenizer` until `vlm bench` dispatches to it. */
int vlm_bench_tokenizer(int argc, char **argv);
int cmd_bench_tokenizer(int argc, char **argv);
int cmd_generate(int argc, char **argv);   /* tools/cmd_generate.c */
int cmd_inspect(int argc, char **argv);    /* tools/cmd_inspect.c */
int cmd_quantize(int argc, char **argv);   /* tools/cmd_quantize.c */
int cmd_bench(int argc, char **argv);      /* tools/cmd_bench.c (dispatches --tokenizer) */
int cmd_perplexity(int argc, char **argv); /* tools/cmd_perplexity.c */
int cmd_pull(int argc, char **argv);       /* tools/cmd_pull.c */
int cmd_ls(int argc, char **argv);         /* tools/cmd_ls.c */

/* A model named on the command line: a folder, or a hub id (org/name) with these flags
 * (tools/model_ref.c). vlm_model_ref_flag consumes argv[*i] (and its value) when it is one of
 * --revision, --hf-token, --download-dir, --allow-pattern: 1 consumed, 0 not ours, -1 bad. */
struct vlm_model_ref {
    const char *revision, *hf_token, *download_dir;
    const char *allow[32];
    size_t n_allow;
    bool no_weights;   /* tokenizer/processor/template only: fetch no weights */
};
#define VLM_MODEL_REF_HELP \
    "MODEL is a folder or a Hugging Face hub id (org/name), found in or downloaded into the shared\n" \
    "cache ($HF_HUB_CACHE, $HF_HOME/hub, ~/.cache/huggingface/hub; HF_HUB_OFFLINE=1: cache only):\n" \
    "  --revision R        branch, tag or commit (default main)\n" \
    "  --hf-token T        token for gated or private repos (default $HF_TOKEN, then $HF_HOME/token)\n" \
    "  --download-dir D    cache root to use instead (vLLM's flag)\n" \
    "  --allow-pattern G   also fetch repo files matching glob G (e.g. '*Q4_K_M.gguf')\n"
int vlm_model_ref_flag(struct vlm_model_ref *r, const char *cmd, int argc, char **argv, int *i);
/* name -> *dir (vlm_free it); prints the error as "vlm CMD: ..." and returns 1 on failure.
 * check_arch: refuse (before any weights move) a config.json whose architecture no family runs. */
int vlm_model_ref_resolve(const char *cmd, const char *name, const struct vlm_model_ref *r, bool check_arch,
                          char **dir);
/* The check itself, as a src/hub check_config callback. */
struct vlm_error;
int vlm_tool_check_arch(const char *config_path, void *user, struct vlm_error *err);

/* Each subcommand adds its prototype here and a row in tools/vlm.c's table. */

/* inspect_gguf.c: lists a GGUF file's metadata and tensors; 0 or 1 (error printed). */
int vlm_inspect_gguf(const char *path);

#endif
