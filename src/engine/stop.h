/* stop.h — when generation ends: an EOS id (generation_config.json / config.json), a stop
 * string in the decoded text (the text is cut before it, as OpenAI/vLLM do), or max tokens. */
#ifndef VLM_ENGINE_STOP_H
#define VLM_ENGINE_STOP_H

#include <stddef.h>
#include <stdint.h>

#define VLM_MAX_STOP_STRINGS 16
#define VLM_MAX_STOP_LEN     256

enum vlm_finish { VLM_FINISH_NONE = 0, VLM_FINISH_STOP, VLM_FINISH_LENGTH };

struct vlm_stop {
    const int32_t *eos_ids;  int n_eos;      /* borrowed */
    const char *const *strings; int n_strings; /* borrowed, each non-empty */
    int max_new_tokens;                       /* <= 0: no limit */
    int ignore_eos;
};

/* "stop", "length" or NULL. */
const char *vlm_finish_reason(enum vlm_finish f);

/* Checks a newly generated token: VLM_FINISH_STOP for an EOS id, VLM_FINISH_LENGTH when
 * n_generated (counting this token) reached max_new_tokens, else NONE. */
enum vlm_finish vlm_stop_token(const struct vlm_stop *s, int32_t id, int n_generated);

/* Looks for the earliest stop string in text[0..len); returns its offset or -1. Only matches
 * that end after `from` are searched for (text before it was checked already). */
long vlm_stop_find(const struct vlm_stop *s, const char *text, size_t len, size_t from);

/* How many trailing bytes of text[0..len) may still become the start of a stop string (a
 * stream holds them back until it knows). */
size_t vlm_stop_holdback(const struct vlm_stop *s, const char *text, size_t len);

#endif
