/* test_model_mllama.c — Llama 3.2 Vision (Mllama) parity with transformers on tiny random
 * models (fixtures from scripts/make_mllama_model_fixtures.py, inputs as transformers'
 * processor made them): logits of every prompt position and 16 greedy tokens per case, the same
 * when all cases of a model decode together in one batch (different image counts, chunked
 * prefill), the cross-attention K/V counted by the KV accounting and freed with the sequence,
 * and clear errors for a missing cross-attention tensor and bad image spans. */
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test.h"
#include "util/log.h"

#include "engine/engine.h"
#include "engine/sampler.h"
#include "engine/scheduler.h"
#include "formats/safetensors.h"
#include "formats/weights.h"
#include "models/mllama_processor.h"
#include "models/model.h"
#include "models/processor.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"

#define MAXI 4

/* Whether the 16 greedy tokens must match transformers' (a 16-bit KV cache may flip near-ties). */
static int check_greedy = 1;

struct mcase {
    int n_ids, n_images, n_vocab;
    int32_t ids[64], greedy[16];
    float *logits;                 /* (n_ids, n_vocab) */
    float *pixels;
    struct vlm_image_input img[MAXI];
    struct vlm_mllama_span span[MAXI];
    int n_tiles[MAXI];
    float *states[MAXI];
};

static void *read_all(const char *dir, const char *name, size_t *len) {
    char *p = vlm_path_join(dir, name), *data = NULL;
    struct vlm_error err;
    if (vlm_read_file(p, 1u << 28, &data, len, &err) != VLM_OK) data = NULL;
    vlm_free(p);
    return data;
}

/* Spans from transformers' dense cross_attention_mask (rows, images, tiles): the rows where an
 * image's first tile is attended, which the processor makes contiguous. */
static int spans_from_mask(json_t *cam, int n_ids, int n_images, struct vlm_mllama_span *sp) {
    for (int i = 0; i < n_images; i++) {
        sp[i].start = sp[i].end = -1;
        for (int r = 0; r < n_ids; r++) {
            int on = (int)json_integer_value(json_array_get(json_array_get(json_array_get(cam, (size_t)r), (size_t)i), 0));
            if (on && sp[i].start < 0) sp[i].start = r;
            if (on) {
                if (sp[i].end >= 0 && sp[i].end != r) return -1;   /* not contiguous */
                sp[i].end = r + 1;
            }
        }
        if (sp[i].start < 0) return -1;
    }
    return 0;
}

static int case_load(const char *dir, json_t *c, int k, int n_vocab, int tile, struct mcase *mc) {
    memset(mc, 0, sizeof *mc);
    json_t *ids = json_object_get(c, "input_ids"), *lg = json_object_get(c, "logits");
    mc->n_ids = (int)json_array_size(ids);
    mc->n_vocab = n_vocab;
    if (mc->n_ids > 64 || (int)json_array_size(lg) != mc->n_ids) return -1;
    for (int i = 0; i < mc->n_ids; i++) mc->ids[i] = (int32_t)json_integer_value(json_array_get(ids, (size_t)i));
    for (int i = 0; i < 16; i++) mc->greedy[i] = (int32_t)json_integer_value(json_array_get(json_object_get(c, "greedy"), (size_t)i));
    mc->logits = vlm_malloc(sizeof(float) * (size_t)mc->n_ids * n_vocab);
    for (int r = 0; r < mc->n_ids; r++) {
        json_t *row = json_array_get(lg, (size_t)r);
        if ((int)json_array_size(row) != n_vocab) return -1;
        for (int v = 0; v < n_vocab; v++) mc->logits[(size_t)r * n_vocab + v] = (float)json_number_value(json_array_get(row, (size_t)v));
    }
    mc->n_images = (int)json_integer_value(json_object_get(c, "n_images"));
    if (mc->n_images == 0) return 0;
    if (mc->n_images > MAXI) return -1;
    char name[64];
    size_t len, off = 0, tile_f = (size_t)3 * tile * tile;
    snprintf(name, sizeof name, "case%d.pixels.f32", k);
    mc->pixels = read_all(dir, name, &len);
    if (!mc->pixels) return -1;
    for (int i = 0; i < mc->n_images; i++) {
        struct vlm_image_input *in = &mc->img[i];
        in->n_tiles = mc->n_tiles[i] = (int)json_integer_value(json_array_get(json_object_get(c, "n_tiles"), (size_t)i));
        in->aspect_ratio_id = (int)json_integer_value(json_array_get(json_object_get(c, "aspect_ratio_ids"), (size_t)i));
        in->channels = 3;
        in->height = in->width = tile;
        in->pixels = mc->pixels + off * tile_f;
        off += (size_t)in->n_tiles;
    }
    if (len != off * tile_f * sizeof(float)) return -1;
    return spans_from_mask(json_object_get(c, "cross_attention_mask"), mc->n_ids, mc->n_images, mc->span);
}

static void case_free(struct mcase *mc) {
    vlm_free(mc->logits);
    vlm_free(mc->pixels);
    for (int i = 0; i < MAXI; i++) vlm_free(mc->states[i]);
}

static double max_abs_diff(const float *a, const float *b, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

static int encode_case(const struct vlm_model *m, struct vlm_ctx *ctx, struct mcase *mc) {
    const struct vlm_model_info *mi = vlm_model_get_info(m);
    struct vlm_error err;
    for (int i = 0; i < mc->n_images; i++) {
        if (!mc->states[i]) mc->states[i] = vlm_malloc(sizeof(float) * (size_t)mi->cross_image_rows * mi->d_model);
        int rc = vlm_ctx_encode_image(ctx, &mc->img[i], mc->states[i], &err);
        CHECK_MSG(rc == VLM_OK, "encode image %d: %s", i, err.msg);
        if (rc != VLM_OK) return rc;
    }
    return VLM_OK;
}

static int attach(struct vlm_ctx *ctx, int s, const struct mcase *mc) {
    struct vlm_error err;
    int rc = vlm_ctx_seq_set_images(ctx, s, mc->n_images, (const float *const *)mc->states, mc->n_tiles, mc->span,
                                    mc->n_ids, &err);
    CHECK_MSG(rc == VLM_OK, "set images: %s", err.msg);
    return rc;
}

/* One case alone on sequence 0: every prompt position's logits, then 16 greedy tokens. */
static void check_alone(const char *dir, int k, struct vlm_ctx *ctx, struct mcase *mc, double tol) {
    struct vlm_error err;
    int n = mc->n_ids;
    int32_t pos[64], seq[64];
    int8_t want[64];
    for (int i = 0; i < n; i++) { pos[i] = i; seq[i] = 0; want[i] = 1; }
    if (attach(ctx, 0, mc) != VLM_OK) return;
    CHECK_MSG((vlm_ctx_seq_state_tokens(ctx, 0) > 0) == (mc->n_images > 0), "%s case %d: image state tokens %d",
              dir, k, vlm_ctx_seq_state_tokens(ctx, 0));
    struct vlm_batch b = {n, mc->ids, NULL, pos, seq, want, NULL};
    int rc = vlm_ctx_decode(ctx, &b, &err);
    CHECK_MSG(rc == VLM_OK, "decode: %s", err.msg);
    if (rc != VLM_OK) return;
    double d = 0;
    for (int r = 0; r < n; r++) {
        double dr = max_abs_diff(vlm_ctx_logits(ctx, r), mc->logits + (size_t)r * mc->n_vocab, mc->n_vocab);
        if (!(dr <= d)) d = dr;
    }
    printf("  %s case %d: %d ids, %d images, logits of all positions max abs diff %.3g\n", dir, k, n, mc->n_images, d);
    CHECK_MSG(d <= tol, "%s case %d: logits differ by %g", dir, k, d);
    /* past the text before the first image, only the valid tiles' keys stay (and are counted) */
    const struct vlm_model_info *mi = vlm_model_get_info(vlm_ctx_model(ctx));
    int all_full = 1;
    for (int i = 0; i < mc->n_images; i++) all_full &= mc->n_tiles[i] == mi->max_tiles;
    int full = mc->n_images * mi->cross_image_tokens, now = vlm_ctx_seq_state_tokens(ctx, 0);
    CHECK_MSG(all_full ? now == full : now < full, "%s case %d: image state %d tokens after the prefill, %d before",
              dir, k, now, full);
    int32_t tok = vlm_argmax(vlm_ctx_logits(ctx, n - 1), mc->n_vocab), got[16];
    for (int i = 0; i < 16; i++) {
        got[i] = tok;
        int32_t p = n + i, s = 0;
        struct vlm_batch b1 = {1, &tok, NULL, &p, &s, NULL, NULL};
        if (vlm_ctx_decode(ctx, &b1, &err) != VLM_OK) { CHECK_MSG(0, "decode: %s", err.msg); break; }
        tok = vlm_argmax(vlm_ctx_logits(ctx, 0), mc->n_vocab);
    }
    if (check_greedy)
        CHECK_MSG(!memcmp(got, mc->greedy, sizeof got), "%s case %d: greedy continuation differs (first %d vs %d)",
                  dir, k, got[0], mc->greedy[0]);
    int free_before = vlm_ctx_kv_free(ctx);
    vlm_ctx_seq_clear(ctx, 0);
    CHECK_EQ_INT(vlm_ctx_seq_state_tokens(ctx, 0), 0);
    CHECK(vlm_ctx_kv_free(ctx) > free_before);
}

/* All cases together, case k on sequence k: each prompt prefilled in two chunks beside the
 * others, then 16 decode steps with one row per sequence; every sequence must give what it
 * gives alone (transformers' logits and greedy tokens). */
static void check_batched(const char *dir, struct vlm_ctx *ctx, struct mcase *mc, int n_cases, double tol) {
    struct vlm_error err;
    int32_t ids[256], pos[256], seq[256];
    int8_t want[256];
    for (int k = 0; k < n_cases; k++)
        if (attach(ctx, k, &mc[k]) != VLM_OK) return;
    for (int chunk = 0; chunk < 2; chunk++) {
        int n = 0;
        for (int k = 0; k < n_cases; k++) {
            int half = mc[k].n_ids / 2, from = chunk ? half : 0, to = chunk ? mc[k].n_ids : half;
            for (int p = from; p < to; p++) {
                ids[n] = mc[k].ids[p]; pos[n] = p; seq[n] = k; want[n] = chunk && p == to - 1;
                n++;
            }
        }
        struct vlm_batch b = {n, ids, NULL, pos, seq, want, NULL};
        CHECK_MSG(vlm_ctx_decode(ctx, &b, &err) == VLM_OK, "batched prefill: %s", err.msg);
    }
    int32_t tok[8], ok = 1;
    double d = 0;
    for (int k = 0; k < n_cases; k++) {
        const float *lg = vlm_ctx_logits(ctx, k);
        double dk = lg ? max_abs_diff(lg, mc[k].logits + (size_t)(mc[k].n_ids - 1) * mc[k].n_vocab, mc[k].n_vocab) : 1e9;
        if (!(dk <= d)) d = dk;
        tok[k] = lg ? vlm_argmax(lg, mc[k].n_vocab) : -1;
    }
    for (int i = 0; i < 16 && ok; i++) {
        for (int k = 0; k < n_cases; k++) {
            ok &= tok[k] == mc[k].greedy[i];
            pos[k] = mc[k].n_ids + i;
            seq[k] = k;
        }
        struct vlm_batch b = {n_cases, tok, NULL, pos, seq, NULL, NULL};
        if (vlm_ctx_decode(ctx, &b, &err) != VLM_OK) { CHECK_MSG(0, "batched decode: %s", err.msg); return; }
        for (int k = 0; k < n_cases; k++) tok[k] = vlm_argmax(vlm_ctx_logits(ctx, k), mc[k].n_vocab);
    }
    printf("  %s: %d sequences batched, prompt logits max abs diff %.3g, greedy %s\n", dir, n_cases, d, ok ? "same" : "DIFFERENT");
    CHECK_MSG(d <= tol, "%s: batched logits differ by %g", dir, d);
    CHECK_MSG(ok, "%s: batched greedy tokens differ", dir);
    for (int k = 0; k < n_cases; k++) vlm_ctx_seq_clear(ctx, k);
}

/* kv: the KV cache's type (the image K/V are stored in it too). */
static void check_folder_kv(const char *rel, double tol, int n_threads, enum vlm_kv_dtype kv) {
    const char *dir = test_path(rel);
    char dbuf[4096];
    snprintf(dbuf, sizeof dbuf, "%s", dir);
    size_t len;
    char *text = read_all(dbuf, "ref.json", &len);
    json_t *j = text ? json_loadb(text, len, 0, NULL) : NULL;
    vlm_free(text);
    CHECK_MSG(j != NULL, "%s: ref.json unreadable", rel);
    if (!j) return;
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = 0;
    mp.n_threads = n_threads;
    struct vlm_model *m = NULL;
    int rc = vlm_model_load(dbuf, &mp, &m);
    CHECK_MSG(rc == VLM_OK, "%s: %s", rel, vlm_last_error());
    if (rc != VLM_OK) { json_decref(j); return; }
    const struct vlm_model_info *mi = vlm_model_get_info(m);
    int n_vocab = (int)json_integer_value(json_object_get(j, "vocab"));
    CHECK_EQ_INT(mi->n_vocab, n_vocab);
    CHECK_EQ_INT(mi->n_embd_rows, n_vocab + 8);
    CHECK_EQ_INT(mi->image_token_id, json_integer_value(json_object_get(j, "image_token_id")));
    json_t *cases = json_object_get(j, "cases");
    int n_cases = (int)json_array_size(cases);
    struct mcase mc[4];
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_seq_max = 4;
    cp.n_batch_max = 256;
    cp.n_ctx = 96;
    cp.n_threads = n_threads;
    cp.kv_dtype = kv;
    struct vlm_ctx *ctx = NULL;
    struct vlm_error err;
    rc = vlm_ctx_new(m, &cp, &ctx, &err);
    CHECK_MSG(rc == VLM_OK, "ctx: %s", err.msg);
    if (kv != VLM_KV_AUTO) printf("  (KV cache %s)\n", vlm_kv_dtype_name(kv));
    int loaded = 0;
    for (int k = 0; k < n_cases && k < 4 && ctx; k++, loaded++) {
        json_t *c = json_array_get(cases, (size_t)k);
        int tile = (int)json_integer_value(json_object_get(c, "tile_size"));
        if (case_load(dbuf, c, k, n_vocab, tile, &mc[k]) != 0) {
            CHECK_MSG(0, "%s case %d: fixture unreadable", rel, k);
            loaded++;
            break;
        }
        /* the spans our processor computes from the ids are the ones transformers' mask holds */
        struct vlm_mllama_span sp[MAXI];
        int ni = vlm_mllama_cross_attention_spans(mc[k].ids, mc[k].n_ids, mi->image_token_id, sp, MAXI);
        CHECK_EQ_INT(ni, mc[k].n_images);
        for (int i = 0; i < ni && i < MAXI; i++)
            CHECK_MSG(sp[i].start == mc[k].span[i].start && sp[i].end == mc[k].span[i].end,
                      "%s case %d image %d: span %d..%d, transformers %d..%d", rel, k, i, sp[i].start, sp[i].end,
                      mc[k].span[i].start, mc[k].span[i].end);
        if (encode_case(m, ctx, &mc[k]) == VLM_OK) check_alone(rel, k, ctx, &mc[k], tol);
    }
    if (ctx && loaded == n_cases && check_greedy) check_batched(rel, ctx, mc, n_cases, tol);
    for (int k = 0; k < loaded; k++) case_free(&mc[k]);
    vlm_ctx_free(ctx);
    vlm_model_free(m);
    json_decref(j);
}

/* ---- through the scheduler ---- */

/* Submits every case of mllama-gqa-untied (0, 1 and 2 images) twice to a scheduler and checks
 * each sequence's 16 greedy tokens equal transformers'; with kv_tokens small, sequences wait
 * for image room and are preempted, and their images are given again. */
static void sched_run(int kv_tokens, int max_seqs) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_path("tests/fixtures/models/mllama-gqa-untied"));
    size_t len;
    char *text = read_all(dir, "ref.json", &len);
    json_t *j = text ? json_loadb(text, len, 0, NULL) : NULL;
    vlm_free(text);
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = 0;
    struct vlm_model *m = NULL;
    if (!j || vlm_model_load(dir, &mp, &m) != VLM_OK) { CHECK_MSG(0, "load %s", dir); json_decref(j); return; }
    json_t *cases = json_object_get(j, "cases");
    int n_cases = (int)json_array_size(cases), n_vocab = m->info.n_vocab;
    struct mcase mc[3];
    struct vlm_sched_params sp = vlm_sched_default_params();
    sp.max_num_seqs = max_seqs;
    sp.n_ctx = 64;
    sp.n_kv_tokens = kv_tokens;
    sp.prefill_chunk = 5;
    sp.n_threads = 1;
    struct vlm_sched *s = NULL;
    struct vlm_error err;
    CHECK_EQ_INT(vlm_sched_new(m, &sp, &s, &err), VLM_OK);
    struct vlm_ctx *ectx = NULL;
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    vlm_ctx_new(m, &cp, &ectx, &err);
    int n_ok = 0;
    for (int k = 0; k < n_cases && k < 3; k++) {
        json_t *c = json_array_get(cases, (size_t)k);
        if (case_load(dir, c, k, n_vocab, (int)json_integer_value(json_object_get(c, "tile_size")), &mc[k]) == 0 &&
            encode_case(m, ectx, &mc[k]) == VLM_OK)
            n_ok++;
    }
    CHECK_EQ_INT(n_ok, n_cases);
    struct vlm_seq *q[6] = {0};
    for (int i = 0; i < 6 && s && n_ok == n_cases; i++) {
        const struct mcase *c = &mc[i % n_cases];
        struct vlm_seq_params p = {0};
        p.ids = c->ids;
        p.n_ids = (size_t)c->n_ids;
        p.sampling = vlm_sampling_default_params();
        p.sampling.temperature = 0;
        p.max_new_tokens = 16;
        p.n_cross_images = c->n_images;
        p.cross_states = (const float *const *)c->states;
        p.cross_tiles = c->n_tiles;
        p.cross_spans = c->span;
        CHECK_EQ_INT(vlm_sched_submit(s, &p, &q[i], &err), VLM_OK);
    }
    int same = 0;
    for (int i = 0; i < 6 && q[i]; i++) {
        int32_t got[16];
        int n = 0, r;
        struct vlm_seq_event ev;
        while ((r = vlm_seq_wait(q[i], &ev, 5000)) == 1 && n < 16)
            if (ev.type == VLM_SEQ_TOKEN) got[n++] = ev.tok.id;
        same += n == 16 && !memcmp(got, mc[i % n_cases].greedy, sizeof got);
        vlm_seq_release(q[i]);
    }
    struct vlm_sched_stats st;
    vlm_sched_get_stats(s, &st);
    printf("  scheduler (KV %d tokens, %d slots): 6 sequences with 0-2 images, %d equal to transformers, %ld preemptions\n",
           st.kv_capacity, max_seqs, same, st.preemptions);
    CHECK_EQ_INT(same, 6);
    vlm_sched_free(s);
    for (int k = 0; k < n_ok; k++) case_free(&mc[k]);
    vlm_ctx_free(ectx);
    vlm_model_free(m);
    json_decref(j);
}

static void check_folder(const char *rel, double tol, int n_threads) {
    check_folder_kv(rel, tol, n_threads, VLM_KV_AUTO);
}

/* ---- bad input ---- */

/* Copies the fixture's weights to dir/model.safetensors without the tensor `drop`. */
static void write_without(const struct vlm_weights *w, const char *dir, const char *drop) {
    json_t *h = json_object();
    size_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct vlm_weight *e = &w->w[i];
        if (!strcmp(e->name, drop)) continue;
        json_t *shape = json_array();
        for (int k = 0; k < e->t.n_dims; k++) json_array_append_new(shape, json_integer(e->t.ne[k]));
        json_object_set_new(h, e->name, json_pack("{s:s, s:o, s:[I, I]}", "dtype", "F32", "shape", shape,
                                                  "data_offsets", (json_int_t)off, (json_int_t)(off + e->t.nbytes)));
        off += e->t.nbytes;
    }
    char *hs = json_dumps(h, JSON_COMPACT);
    size_t hl = strlen(hs);
    char *p = vlm_path_join(dir, "model.safetensors");
    FILE *f = fopen(p, "wb");
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    fwrite(len8, 1, 8, f);
    fwrite(hs, 1, hl, f);
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->w[i].name, drop)) fwrite(w->w[i].t.data, 1, w->w[i].t.nbytes, f);
    fclose(f);
    vlm_free(p);
    free(hs);
    json_decref(h);
}

static void check_missing_cross_tensor(void) {
    char src[4096], tmp[] = "/tmp/vlm_mllama_XXXXXX";
    snprintf(src, sizeof src, "%s", test_path("tests/fixtures/models/mllama-gqa-untied"));
    if (!mkdtemp(tmp)) { CHECK_MSG(0, "mkdtemp"); return; }
    struct vlm_weights w;
    struct vlm_error err;
    vlm_weights_init(&w);
    CHECK_EQ_INT(vlm_safetensors_load_dir(src, &w, &err), VLM_OK);
    const char *drop = "language_model.model.layers.3.cross_attn.k_norm.weight";
    write_without(&w, tmp, drop);
    vlm_weights_free(&w);
    size_t len;
    char *cfg = read_all(src, "config.json", &len);
    char *p = vlm_path_join(tmp, "config.json");
    FILE *f = fopen(p, "wb");
    if (f && cfg) fwrite(cfg, 1, len, f);
    if (f) fclose(f);
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = 0;
    struct vlm_model *m = NULL;
    int rc = vlm_model_load(tmp, &mp, &m);
    const char *msg = vlm_last_error();
    printf("  missing tensor: %s\n", msg);
    CHECK_EQ_INT(rc, VLM_E_NOT_FOUND);
    CHECK(m == NULL);
    CHECK_MSG(strstr(msg, drop) && strstr(msg, "model.safetensors"), "message '%s' names neither tensor nor file", msg);
    vlm_model_free(m);
    unlink(p);
    vlm_free(p);
    vlm_free(cfg);
    p = vlm_path_join(tmp, "model.safetensors");
    unlink(p);
    vlm_free(p);
    rmdir(tmp);
}

/* Spans past the prompt, too many tiles, images after the prefill began, a spliced-model call. */
static void check_bad_images(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", test_path("tests/fixtures/models/mllama-consecutive-2tiles"));
    struct vlm_model_params mp = vlm_model_default_params();
    mp.load_tokenizer = 0;
    struct vlm_model *m = NULL;
    if (vlm_model_load(dir, &mp, &m) != VLM_OK) { CHECK_MSG(0, "load: %s", vlm_last_error()); return; }
    struct vlm_ctx *ctx = NULL;
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.n_ctx = 64;
    struct vlm_error err;
    CHECK_EQ_INT(vlm_ctx_new(m, &cp, &ctx, &err), VLM_OK);
    const struct vlm_model_info *mi = vlm_model_get_info(m);
    float *st = vlm_calloc((size_t)mi->cross_image_rows * mi->d_model, sizeof(float));
    const float *sts[1] = {st};
    int nt = 1;
    struct vlm_mllama_span sp = {2, 9};
    CHECK_EQ_INT(vlm_ctx_seq_set_images(ctx, 0, 1, sts, &nt, &sp, 5, &err), VLM_E_INVALID);   /* span past the prompt */
    nt = 3;
    sp.end = 5;
    CHECK_EQ_INT(vlm_ctx_seq_set_images(ctx, 0, 1, sts, &nt, &sp, 5, &err), VLM_E_INVALID);   /* 3 of 2 tiles */
    nt = 1;
    CHECK_EQ_INT(vlm_ctx_seq_set_images(ctx, 0, 1, sts, &nt, &sp, 5, &err), VLM_OK);
    int32_t tok = 5, pos = 0, seq = 0;
    struct vlm_batch b = {1, &tok, NULL, &pos, &seq, NULL, NULL};
    CHECK_EQ_INT(vlm_ctx_decode(ctx, &b, &err), VLM_OK);
    CHECK_EQ_INT(vlm_ctx_seq_set_images(ctx, 0, 1, sts, &nt, &sp, 5, &err), VLM_E_INVALID);   /* after the prefill began */
    struct vlm_image_input in = {.n_tiles = 1, .channels = 3, .height = 14, .width = 14, .aspect_ratio_id = 2};
    in.pixels = vlm_calloc(3 * 14 * 14 * 2, sizeof(float));
    CHECK_EQ_INT(vlm_ctx_encode_image(ctx, &in, st, &err), VLM_E_INVALID);   /* ratio id 2 is 2 tiles */
    in.aspect_ratio_id = 1;
    CHECK_EQ_INT(vlm_ctx_encode_image(ctx, &in, st, &err), VLM_OK);
    in.height = in.width = 28;
    CHECK_EQ_INT(vlm_ctx_encode_image(ctx, &in, st, &err), VLM_E_INVALID);   /* not the tile size */
    /* a tiny KV capacity: the images do not fit, and nothing changes */
    vlm_ctx_free(ctx);
    cp.n_kv_tokens = 4;
    CHECK_EQ_INT(vlm_ctx_new(m, &cp, &ctx, &err), VLM_OK);
    CHECK_EQ_INT(vlm_ctx_seq_set_images(ctx, 0, 1, sts, &nt, &sp, 5, &err), VLM_E_NOMEM);
    CHECK_EQ_INT(vlm_ctx_kv_free(ctx), 4);
    vlm_free(in.pixels);
    vlm_free(st);
    vlm_ctx_free(ctx);
    vlm_model_free(m);
}

int main(void) {
    vlm_log_set_level(VLM_LOG_WARN);
    int nt = test_quick() ? 1 : 2;
    check_folder("tests/fixtures/models/mllama-gqa-untied", 1e-3, nt);
    check_folder("tests/fixtures/models/mllama-mha-tied-two-images", 1e-3, nt);
    check_folder("tests/fixtures/models/mllama-consecutive-2tiles", 1e-3, 1);
    check_greedy = 0;   /* K/V (self and image) rounded to 16 bits: logits near, near-ties may flip */
    check_folder_kv("tests/fixtures/models/mllama-gqa-untied", 2e-2, 2, VLM_KV_BF16);
    check_folder_kv("tests/fixtures/models/mllama-mha-tied-two-images", 5e-3, 1, VLM_KV_F16);
    check_greedy = 1;
    sched_run(0, 4);
    sched_run(140, 3);   /* two image sequences at most: waits and preemptions */
    check_missing_cross_tensor();
    check_bad_images();
    printf("%d passed, %d failed\n", test_pass, test_fail);
    return test_fail ? 1 : 0;
}
