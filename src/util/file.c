/* file.c — whole-file reads and read-only mappings, refusing non-regular files
 * (FIFOs and devices would block or be endless). */
#include "util/file.h"
#include "util/alloc.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int open_regular(const char *path, struct stat *st, struct vlm_error *err) {
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return vlm_error_set(err, VLM_E_IO, "%s: cannot open: %s", path, strerror(errno)), -1;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        vlm_error_set(err, VLM_E_IO, "%s: not a regular file", path);
        return -1;
    }
    return fd;
}

int vlm_read_file(const char *path, size_t max_bytes, char **out, size_t *len, struct vlm_error *err) {
    struct stat st;
    int fd = open_regular(path, &st, err);
    if (fd < 0) return err ? err->code : VLM_E_IO;
    if ((uint64_t)st.st_size > max_bytes) {
        close(fd);
        return vlm_error_set(err, VLM_E_TOO_LARGE, "%s: %lld bytes is over the limit of %zu", path,
                             (long long)st.st_size, max_bytes);
    }
    size_t size = (size_t)st.st_size;
    char *buf = vlm_malloc(size + 1);
    if (!buf) {
        close(fd);
        return vlm_error_set(err, VLM_E_NOMEM, "%s: out of memory reading %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (got != size) {
        vlm_free(buf);
        return vlm_error_set(err, VLM_E_IO, "%s: short read (%zu of %zu bytes)", path, got, size);
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    return VLM_OK;
}

int vlm_mmap_file(const char *path, struct vlm_mmap *m, struct vlm_error *err) {
    struct stat st;
    m->data = NULL;
    m->size = 0;
    int fd = open_regular(path, &st, err);
    if (fd < 0) return err ? err->code : VLM_E_IO;
    if (st.st_size == 0) {
        close(fd);
        return VLM_OK;
    }
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return vlm_error_set(err, VLM_E_IO, "%s: mmap failed: %s", path, strerror(errno));
    m->data = p;
    m->size = (size_t)st.st_size;
    return VLM_OK;
}

void vlm_munmap(struct vlm_mmap *m) {
    if (m->data) munmap((void *)m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

char *vlm_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = vlm_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

int vlm_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int vlm_dir_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}
