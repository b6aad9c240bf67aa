/* progress.c — what a download shows on stderr: on a terminal, one bar per file redrawn a few
 * times a second; otherwise (job logs) one line per finished file with its size and rate. */
#include "hub/hub_internal.h"
#include "util/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pfile {
    char name[48];
    uint64_t size, start_have;
    _Atomic uint64_t have;
    double t0, t1;
    atomic_int state;   /* 0 idle, 1 running, 2 done */
};

struct hub_progress {
    enum vlm_hub_progress mode;
    size_t n;
    struct pfile *f;
    pthread_t th;
    bool thread;
    atomic_int stop;
    pthread_mutex_t mu;
    int drawn;          /* lines drawn by the last redraw */
};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void human(uint64_t b, char *out, size_t cap) {
    if (b >= (1ull << 30)) snprintf(out, cap, "%.2f GiB", b / 1073741824.0);
    else if (b >= (1u << 20)) snprintf(out, cap, "%.1f MiB", b / 1048576.0);
    else if (b >= 1024) snprintf(out, cap, "%.1f KiB", b / 1024.0);
    else snprintf(out, cap, "%llu B", (unsigned long long)b);
}

static void draw(struct hub_progress *p, bool final) {
    pthread_mutex_lock(&p->mu);
    if (p->drawn) fprintf(stderr, "\033[%dA", p->drawn);
    int lines = 0;
    double t = now();
    for (size_t i = 0; i < p->n; i++) {
        struct pfile *f = &p->f[i];
        int st = atomic_load(&f->state);
        if (st == 0) continue;
        uint64_t have = atomic_load(&f->have);
        double dt = (st == 2 ? f->t1 : t) - f->t0;
        double rate = dt > 0 ? (have - f->start_have) / dt : 0;
        int width = 24, fill = f->size ? (int)(width * (double)have / (double)f->size) : (st == 2 ? width : 0);
        if (fill > width) fill = width;
        char a[32], b[32], r[32], bar[32];
        human(have, a, sizeof a), human(f->size, b, sizeof b), human((uint64_t)rate, r, sizeof r);
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '.', (size_t)(width - fill));
        bar[width] = 0;
        fprintf(stderr, "\r\033[K%-32.32s [%s] %10s / %-10s %10s/s\n", f->name, bar, a, b, r);
        lines++;
    }
    p->drawn = final ? 0 : lines;
    fflush(stderr);
    pthread_mutex_unlock(&p->mu);
}

static void *redraw(void *arg) {
    struct hub_progress *p = arg;
    while (!atomic_load(&p->stop)) {
        draw(p, false);
        struct timespec ts = {0, 200000000L};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

struct hub_progress *hub_progress_new(enum vlm_hub_progress mode, size_t n_files) {
    struct hub_progress *p = vlm_calloc(1, sizeof *p);
    if (!p) return NULL;
    if (mode == VLM_HUB_PROGRESS_AUTO) mode = isatty(2) ? VLM_HUB_PROGRESS_BARS : VLM_HUB_PROGRESS_LINES;
    p->mode = mode;
    p->n = n_files;
    p->f = vlm_calloc(n_files ? n_files : 1, sizeof *p->f);
    if (!p->f) { vlm_free(p); return NULL; }
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void hub_progress_start(struct hub_progress *p, size_t i, const char *name, uint64_t size, uint64_t have) {
    struct pfile *f = &p->f[i];
    size_t n = strlen(name);
    snprintf(f->name, sizeof f->name, "%s", n >= sizeof f->name ? name + n - (sizeof f->name - 1) : name);
    f->size = size, f->start_have = have, f->t0 = now();
    atomic_store(&f->have, have);
    atomic_store(&f->state, 1);
    if (p->mode == VLM_HUB_PROGRESS_BARS && !p->thread) p->thread = pthread_create(&p->th, NULL, redraw, p) == 0;
}

void hub_progress_add(struct hub_progress *p, size_t i, uint64_t n) { atomic_fetch_add(&p->f[i].have, n); }

void hub_progress_done(struct hub_progress *p, size_t i) {
    struct pfile *f = &p->f[i];
    f->t1 = now();
    atomic_store(&f->state, 2);
    if (p->mode != VLM_HUB_PROGRESS_LINES) return;
    uint64_t have = atomic_load(&f->have), got = have - f->start_have;
    double dt = f->t1 - f->t0;
    char a[32], r[32];
    human(have, a, sizeof a);
    human(dt > 0 ? (uint64_t)(got / dt) : got, r, sizeof r);
    fprintf(stderr, "vlm: downloaded %s (%s%s) in %.1f s, %s/s\n", f->name, a,
            f->start_have ? ", resumed" : "", dt, r);
}

void hub_progress_free(struct hub_progress *p) {
    if (!p) return;
    if (p->thread) {
        atomic_store(&p->stop, 1);
        pthread_join(p->th, NULL);
        draw(p, true);
    }
    pthread_mutex_destroy(&p->mu);
    vlm_free(p->f);
    vlm_free(p);
}
