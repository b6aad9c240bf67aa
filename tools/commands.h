/* commands.h — the subcommands of the `vlm` tool; each lives in tools/cmd_<name>.c and
 * returns a process exit status (0 ok, 1 failure, 2 usage). */
#ifndef VLM_TOOLS_COMMANDS_H
#define VLM_TOOLS_COMMANDS_H

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
/* Each subcommand adds its prototype here and a row in tools/vlm.c's table. */

/* inspect_gguf.c: lists a GGUF file's metadata and tensors; 0 or 1 (error printed). */
int vlm_inspect_gguf(const char *path);

#endif
