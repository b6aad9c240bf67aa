/* image_cache.c — a small hash-keyed cache under one mutex. Work (decode, encode) runs outside
 * the lock; an entry's BUSY state makes other requests for the same image wait on the cache's
 * condition variable instead of doing the work twice. */
#include "server/image_cache.h"

#include "util/alloc.h"
#include "util/error.h"
#include "util/sha256.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

enum { ST_NONE, ST_BUSY, ST_READY };

struct vlm_cache_entry {
    char   key[2 * VLM_SHA256_LEN + 1 + 128];
    int    refs;
    int    img_state, embd_state;
    struct vlm_image img;
    float *embd;
    size_t embd_rows, embd_width;
    size_t bytes;
    unsigned long last_use;
    struct vlm_cache_entry *next;
};

struct vlm_image_cache {
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    struct vlm_cache_entry *head;
    size_t n_entries, bytes, max_bytes;
    unsigned long clock;
};

struct vlm_image_cache *vlm_image_cache_new(size_t max_bytes) {
    struct vlm_image_cache *c = vlm_calloc(1, sizeof *c);
    if (!c) return NULL;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->max_bytes = max_bytes;
    return c;
}

static void entry_free(struct vlm_cache_entry *e) {
    vlm_image_free(&e->img);
    vlm_free(e->embd);
    vlm_free(e);
}

void vlm_image_cache_free(struct vlm_image_cache *c) {
    if (!c) return;
    while (c->head) {
        struct vlm_cache_entry *e = c->head;
        c->head = e->next;
        entry_free(e);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    vlm_free(c);
}

/* Evicts unreferenced entries, least recently used first, until under the cap. */
static void evict_locked(struct vlm_image_cache *c) {
    while (c->bytes > c->max_bytes) {
        struct vlm_cache_entry **victim = NULL;
        for (struct vlm_cache_entry **pp = &c->head; *pp; pp = &(*pp)->next)
            if ((*pp)->refs == 0 && (!victim || (*pp)->last_use < (*victim)->last_use)) victim = pp;
        if (!victim) return;
        struct vlm_cache_entry *e = *victim;
        *victim = e->next;
        c->bytes -= e->bytes;
        c->n_entries--;
        entry_free(e);
    }
}

struct vlm_cache_entry *vlm_image_cache_acquire(struct vlm_image_cache *c, const uint8_t *bytes,
                                                size_t len, const char *variant, int *hit) {
    uint8_t d[VLM_SHA256_LEN];
    char key[sizeof ((struct vlm_cache_entry *)0)->key];
    if (vlm_sha256(bytes, len, d) != 0) return NULL;
    vlm_sha256_hex(d, key);
    snprintf(key + 2 * VLM_SHA256_LEN, sizeof key - 2 * VLM_SHA256_LEN, "|%s", variant ? variant : "");
    pthread_mutex_lock(&c->mu);
    struct vlm_cache_entry *e = c->head;
    while (e && strcmp(e->key, key)) e = e->next;
    *hit = e != NULL;
    if (!e && (e = vlm_calloc(1, sizeof *e))) {
        memcpy(e->key, key, sizeof key);
        e->next = c->head;
        c->head = e;
        c->n_entries++;
    }
    if (e) {
        e->refs++;
        e->last_use = ++c->clock;
    }
    pthread_mutex_unlock(&c->mu);
    return e;
}

void vlm_image_cache_release(struct vlm_image_cache *c, struct vlm_cache_entry *e) {
    if (!e) return;
    pthread_mutex_lock(&c->mu);
    if (--e->refs == 0 && e->img_state != ST_READY) {   /* failed to decode: nothing to keep */
        for (struct vlm_cache_entry **pp = &c->head; *pp; pp = &(*pp)->next)
            if (*pp == e) {
                *pp = e->next;
                c->n_entries--;
                c->bytes -= e->bytes;
                entry_free(e);
                break;
            }
    }
    evict_locked(c);
    pthread_mutex_unlock(&c->mu);
}

/* Waits while *state is BUSY; returns 1 if the caller must do the work (state set BUSY). */
static int claim_locked(struct vlm_image_cache *c, int *state) {
    while (*state == ST_BUSY) pthread_cond_wait(&c->cv, &c->mu);
    if (*state == ST_READY) return 0;
    *state = ST_BUSY;
    return 1;
}

int vlm_image_cache_image(struct vlm_image_cache *c, struct vlm_cache_entry *e, const uint8_t *bytes,
                          size_t len, const struct vlm_image_limits *lim, const struct vlm_image **img,
                          struct vlm_error *err) {
    pthread_mutex_lock(&c->mu);
    int mine = claim_locked(c, &e->img_state);
    pthread_mutex_unlock(&c->mu);
    if (mine) {
        struct vlm_image tmp = {0};
        int rc = vlm_image_decode(bytes, len, lim, &tmp, err);
        pthread_mutex_lock(&c->mu);
        if (rc == VLM_OK) {
            e->img = tmp;
            e->img_state = ST_READY;
            size_t b = (size_t)tmp.width * (size_t)tmp.height * 3;
            e->bytes += b;
            c->bytes += b;
        } else {
            e->img_state = ST_NONE;   /* a waiter retries and reports its own error */
        }
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        if (rc != VLM_OK) return rc;
    }
    *img = &e->img;
    return VLM_OK;
}

int vlm_image_cache_embd(struct vlm_image_cache *c, struct vlm_cache_entry *e, size_t n_rows,
                         size_t width, int (*encode)(void *user, float *out, struct vlm_error *err),
                         void *user, const float **embd, int *computed, struct vlm_error *err) {
    *computed = 0;
    pthread_mutex_lock(&c->mu);
    int mine = claim_locked(c, &e->embd_state);
    if (!mine && (e->embd_rows != n_rows || e->embd_width != width)) {
        pthread_mutex_unlock(&c->mu);
        return vlm_error_set(err, VLM_E_INTERNAL, "cached image embeddings have another shape");
    }
    pthread_mutex_unlock(&c->mu);
    if (mine) {
        size_t n = 0;
        float *buf = NULL;
        int rc = vlm_mul3_ok(n_rows, width, sizeof(float), &n) && (buf = vlm_malloc(n ? n : 1))
                     ? encode(user, buf, err) : vlm_error_set(err, VLM_E_NOMEM, "out of memory");
        pthread_mutex_lock(&c->mu);
        if (rc == VLM_OK) {
            e->embd = buf;
            e->embd_rows = n_rows;
            e->embd_width = width;
            e->embd_state = ST_READY;
            e->bytes += n;
            c->bytes += n;
            *computed = 1;
        } else {
            vlm_free(buf);
            e->embd_state = ST_NONE;
        }
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->mu);
        if (rc != VLM_OK) return rc;
    }
    *embd = e->embd;
    return VLM_OK;
}

void vlm_image_cache_stats(struct vlm_image_cache *c, size_t *entries, size_t *bytes) {
    pthread_mutex_lock(&c->mu);
    *entries = c->n_entries;
    *bytes = c->bytes;
    pthread_mutex_unlock(&c->mu);
}
