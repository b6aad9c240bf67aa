/* file.h — reading and mapping files with size caps and clear errors naming the path. */
#ifndef VLM_UTIL_FILE_H
#define VLM_UTIL_FILE_H

#include <stddef.h>
#include <stdint.h>

struct vlm_error;

/* Reads a whole regular file into *out (vlm_malloc'd, NUL-terminated; *len excludes the NUL).
 * Fails with VLM_E_TOO_LARGE past max_bytes, VLM_E_IO if not a regular readable file. */
int vlm_read_file(const char *path, size_t max_bytes, char **out, size_t *len, struct vlm_error *err);

/* A read-only mapping of a whole file. */
struct vlm_mmap {
    const uint8_t *data;
    size_t size;
};
int  vlm_mmap_file(const char *path, struct vlm_mmap *m, struct vlm_error *err);
void vlm_munmap(struct vlm_mmap *m);

/* path_join: "dir" + "/" + "name" into a vlm_malloc'd string (NULL on allocation failure). */
char *vlm_path_join(const char *dir, const char *name);

/* 1 if path names an existing regular file, 0 otherwise. */
int vlm_file_exists(const char *path);
/* 1 if path names an existing directory. */
int vlm_dir_exists(const char *path);

#endif
