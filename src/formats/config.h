/* config.h — a model folder's config.json (and generation_config.json): the parsed JSON plus
 * typed, range-checked getters whose errors name the file and key. Nested text_config /
 * vision_config objects are reached with vlm_config_sub. */
#ifndef VLM_FORMATS_CONFIG_H
#define VLM_FORMATS_CONFIG_H

#include <jansson.h>

struct vlm_error;

struct vlm_config {
    char       *path;        /* config.json path, for messages */
    json_t     *root;
    const char *arch;        /* architectures[0], or "" */
    const char *model_type;  /* "model_type", or "" */
};

#define VLM_CONFIG_MAX_BYTES (16u << 20)

/* Reads dir/config.json (JSON object, no duplicate keys). */
int  vlm_config_load(const char *dir, struct vlm_config *c, struct vlm_error *err);
void vlm_config_free(struct vlm_config *c);

/* The nested object `key` of c->root (e.g. "text_config") in *out, NULL when absent (getters
 * take a NULL object and return their defaults); VLM_E_FORMAT if it holds a non-object. */
int vlm_config_sub(const struct vlm_config *c, const char *key, json_t **out, struct vlm_error *err);

/* Typed getters on obj (root or a sub-object): absent or null -> def; present with the wrong
 * type or outside [lo, hi] -> VLM_E_FORMAT naming file and key. */
int vlm_config_int(const struct vlm_config *c, json_t *obj, const char *key, long long def,
                   long long lo, long long hi, long long *out, struct vlm_error *err);
int vlm_config_num(const struct vlm_config *c, json_t *obj, const char *key, double def,
                   double lo, double hi, double *out, struct vlm_error *err);
int vlm_config_bool(const struct vlm_config *c, json_t *obj, const char *key, int def,
                    int *out, struct vlm_error *err);
/* String value (borrowed from obj) or def. */
int vlm_config_str(const struct vlm_config *c, json_t *obj, const char *key, const char *def,
                   const char **out, struct vlm_error *err);

#endif
