/* error.c — status names, vlm_error helpers and the per-thread last-error message. */
#include "util/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[VLM_ERRMSG_MAX];

const char *vlm_strerror(int code) {
    switch (code) {
    case VLM_OK: return "VLM_OK";
    case VLM_E_NOMEM: return "VLM_E_NOMEM";
    case VLM_E_IO: return "VLM_E_IO";
    case VLM_E_FORMAT: return "VLM_E_FORMAT";
    case VLM_E_INVALID: return "VLM_E_INVALID";
    case VLM_E_TOO_LARGE: return "VLM_E_TOO_LARGE";
    case VLM_E_UNSUPPORTED: return "VLM_E_UNSUPPORTED";
    case VLM_E_NOT_FOUND: return "VLM_E_NOT_FOUND";
    case VLM_E_LIMIT: return "VLM_E_LIMIT";
    case VLM_E_CANCELLED: return "VLM_E_CANCELLED";
    case VLM_E_FETCH: return "VLM_E_FETCH";
    case VLM_E_FORBIDDEN: return "VLM_E_FORBIDDEN";
    case VLM_E_INTERNAL: return "VLM_E_INTERNAL";
    default: return "VLM_E_UNKNOWN";
    }
}

const char *vlm_last_error(void) { return last_error; }

const char *vlm_version(void) { return VLM_VERSION; }

void vlm_set_last_error(const char *msg) {
    snprintf(last_error, sizeof last_error, "%s", msg ? msg : "");
}

int vlm_error_set(struct vlm_error *err, int code, const char *fmt, ...) {
    char buf[VLM_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (err) {
        err->code = code;
        memcpy(err->msg, buf, sizeof buf);
    }
    vlm_set_last_error(buf);
    return code;
}

void vlm_error_prefix(struct vlm_error *err, const char *fmt, ...) {
    if (!err) return;
    char pre[VLM_ERRMSG_MAX], old[VLM_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", pre, old);
    vlm_set_last_error(err->msg);
}

void vlm_error_clear(struct vlm_error *err) {
    if (!err) return;
    err->code = VLM_OK;
    err->msg[0] = '\0';
}
