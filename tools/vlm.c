/* vlm.c — the `vlm` command: dispatches to the subcommands in tools/cmd_*.c. */
#include "commands.h"
#include "vlm.h"
#include "tensor/kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* `vlm help [COMMAND]`: the command list, or COMMAND --help. */
static int cmd_help(int argc, char **argv);

static const struct vlm_command commands[] = {
    {"version", "print the version, commit, build and kernels", cmd_version},
    {"help", "list the commands, or describe one (vlm help serve)", cmd_help},
    {"generate", "one chat turn with images through the model (vlm generate [MODEL] --image F --prompt T)", cmd_generate},
    {"serve", "OpenAI-compatible server with vLLM's flags (vlm serve [MODEL] --port 8000)", cmd_serve},
    {"preprocess", "run a model's image processor on an image (shapes, tokens, .npy)", cmd_preprocess},
    {"tokenize", "print the token ids and pieces of a text (like llama-tokenize)", cmd_tokenize},
    {"chat-template", "render a model's chat template for a conversation (exact prompt text)", cmd_chat_template},
    {"inspect", "architecture, sizes, tensors and dtypes of a model folder", cmd_inspect},
    {"pull", "download a model from the Hugging Face hub into the shared cache (vlm pull org/name)", cmd_pull},
    {"ls", "cached hub models: size and whether this engine runs them (alias: list)", cmd_ls},
    {"list", NULL, cmd_ls},
    {"quantize", "write a model folder as llama.cpp's GGUF pair (vlm quantize SRC OUT.gguf --type q4_k_m)", cmd_quantize},
    {"perplexity", "perplexity of a text file as llama-perplexity measures it (vlm perplexity MODEL -f F -c 512)", cmd_perplexity},
    {"bench", "image encode, prefill and decode speed beside the machine's limits", cmd_bench},
    {"bench-tokenizer", "tokenizer encoding speed (same as `vlm bench --tokenizer`)", cmd_bench_tokenizer},
    /* one row per subcommand, in the order users meet them */
};

const char *vlm_tool_default_model(void) {
    const char *env = getenv("VLM_DEMO_MODEL");
    if (env && *env) return env;
#ifdef VLM_SOURCE_DIR
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/models/vlm-demo", VLM_SOURCE_DIR);
    if (access(buf, R_OK) == 0) return buf;
#endif
    return "models/vlm-demo";
}

#ifndef VLM_GIT_COMMIT
#define VLM_GIT_COMMIT "unknown"
#endif
#ifndef VLM_BUILD_INFO
#define VLM_BUILD_INFO "unknown"
#endif

int cmd_version(int argc, char **argv) {
    (void)argc; (void)argv;
    printf("vlm %s (commit %s)\nbuild: %s\nkernels: %s\n", vlm_version(), VLM_GIT_COMMIT, VLM_BUILD_INFO,
           vlm_kernels()->name);
    return 0;
}


static void usage(FILE *f) {
    fprintf(f, "usage: vlm <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (commands[i].summary) fprintf(f, "  %-16s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`vlm <command> --help` describes each command.\n");
}

static int cmd_help(int argc, char **argv) {
    if (argc < 2) { usage(stdout); return 0; }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name) && commands[i].run != cmd_help) {
            char *args[] = {argv[1], "--help", NULL};
            return commands[i].run(2, args);
        }
    fprintf(stderr, "vlm help: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) return cmd_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "vlm: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}
