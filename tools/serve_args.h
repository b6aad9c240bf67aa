/* serve_args.h — vLLM-style command-line conveniences for `vlm serve` (serve_args.c). */
#ifndef VLM_TOOLS_SERVE_ARGS_H
#define VLM_TOOLS_SERVE_ARGS_H

#include <stddef.h>

/* Reads a vLLM --config YAML file (flat `flag-name: value` lines; `true` for switches; lists as
 * [a, b] or `- item` lines) into argv-style "--flag" "value" strings (*out, n_out; free with
 * vlm_serve_free_args). -1 with a message naming the file and line on error. */
int  vlm_serve_read_config(const char *path, char ***out, int *n_out, char *err, size_t err_len);
void vlm_serve_free_args(char **v, int n);

/* The flag of flags nearest to word (a mistyped "--flag" or "--flag=value"), or NULL when none
 * is close. */
const char *vlm_nearest_flag(const char *word, const char *const *flags, int n);

#endif
