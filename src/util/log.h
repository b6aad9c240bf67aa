/* log.h — leveled logging to stderr; the level comes from VLM_LOG (error|warn|info|debug). */
#ifndef VLM_UTIL_LOG_H
#define VLM_UTIL_LOG_H

enum vlm_log_level { VLM_LOG_ERROR, VLM_LOG_WARN, VLM_LOG_INFO, VLM_LOG_DEBUG };

void vlm_log(enum vlm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void vlm_log_set_level(enum vlm_log_level level);

#define VLM_LOGE(...) vlm_log(VLM_LOG_ERROR, __VA_ARGS__)
#define VLM_LOGW(...) vlm_log(VLM_LOG_WARN, __VA_ARGS__)
#define VLM_LOGI(...) vlm_log(VLM_LOG_INFO, __VA_ARGS__)
#define VLM_LOGD(...) vlm_log(VLM_LOG_DEBUG, __VA_ARGS__)

#endif
