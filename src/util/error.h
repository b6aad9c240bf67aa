/* error.h — errors as values: a status code plus a message, carried in a caller-owned
 * struct vlm_error that every fallible internal function takes as its last argument. */
#ifndef VLM_UTIL_ERROR_H
#define VLM_UTIL_ERROR_H

#include "vlm.h"

#define VLM_ERRMSG_MAX 512

struct vlm_error {
    int  code;                  /* VLM_OK or a VLM_E_* code */
    char msg[VLM_ERRMSG_MAX];   /* human-readable; names the file/offset/tensor where known */
};

/* Records code and a printf-style message in err (err may be NULL) and in the thread's
 * last-error slot; returns code so callers can write `return vlm_error_set(err, ...)`. */
int vlm_error_set(struct vlm_error *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes err->msg with "prefix: " (for adding context such as a file name). */
void vlm_error_prefix(struct vlm_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Resets err to VLM_OK and an empty message. */
void vlm_error_clear(struct vlm_error *err);

/* Stores msg as the calling thread's last error (what vlm_last_error() returns). */
void vlm_set_last_error(const char *msg);

#endif
