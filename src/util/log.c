/* log.c — leveled logging; one line per call, written with a single fputs so lines from
 * different threads do not interleave. */
#include "util/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static _Atomic int log_level = -1;   /* -1: not yet read from VLM_LOG */

static int level_from_env(void) {
    const char *s = getenv("VLM_LOG");
    if (!s) return VLM_LOG_WARN;
    if (!strcmp(s, "error")) return VLM_LOG_ERROR;
    if (!strcmp(s, "info")) return VLM_LOG_INFO;
    if (!strcmp(s, "debug")) return VLM_LOG_DEBUG;
    return VLM_LOG_WARN;
}

void vlm_log_set_level(enum vlm_log_level level) { atomic_store(&log_level, (int)level); }

void vlm_log(enum vlm_log_level level, const char *fmt, ...) {
    int cur = atomic_load(&log_level);
    if (cur < 0) {
        cur = level_from_env();
        atomic_store(&log_level, cur);
    }
    if ((int)level > cur) return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    char line[2048];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%02d:%02d:%02d.%03ld vlm %s: ", tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    if (len + 1 < sizeof line && (len == 0 || line[len - 1] != '\n')) {
        line[len] = '\n';
        line[len + 1] = '\0';
    }
    fputs(line, stderr);
}
