/* cmd_bench.c — `vlm bench`: image-encode ms per tile, prefill and decode tokens/s, each beside
 * its fraction of this machine's limit (peak FMA rate for the vision tower and prefill, memory
 * bandwidth for decode: bytes of weights read per token), and peak RSS beside the weights.
 * `vlm bench --tokenizer ...` runs the tokenizer benchmark instead. */
#include "commands.h"
#include "engine/engine.h"
#include "image/image.h"
#include "models/mllama_processor.h"
#include "models/model.h"
#include "models/processor.h"
#include "models/qwen25vl.h"
#include "tensor/probe.h"
#include "util/alloc.h"
#include "util/error.h"
#include "util/file.h"
#include "util/threadpool.h"
#include "vlm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

/* Process CPU time (all threads): on a shared machine the wall time of a phase includes
 * time our threads waited for a CPU; CPU time / threads is the time with the cores to
 * ourselves (pessimistic: pool threads spinning at barriers count as busy). */
static double cpu_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void print_owned(double wall, double cpu, int nt) {
    double own = cpu / nt;
    printf("               (wall %.3f s, CPU %.3f s on %d thread(s): %.0f%% of the wall time on a CPU)\n",
           wall, cpu, nt, 100.0 * own / wall);
}

static void usage(FILE *f) {
    fprintf(f, "usage: vlm bench [MODEL_DIR] [--image FILE] [--threads N] [--prompt-tokens N]\n"
               "                 [--tokens N] [--batch B] [--no-image] [--kv-cache-dtype T]\n"
               "                 [--dtype T] [--quantization Q] [--mmproj FILE]\n"
               "       vlm bench --tokenizer MODEL_DIR|tokenizer.json --file TEXT   (tokenizer speed)\n\n"
               "Measures image encoding (ms per tile; one synthetic full tile without --image; for\n"
               "Qwen2-VL/Qwen2.5-VL one synthetic 640x448 image through the processor), prompt\n"
               "prefill and one-token decode on MODEL_DIR (default: the demo model), and prints each\n"
               "with its fraction of this machine's limits, measured by built-in probes: peak f32 FMA\n"
               "rate (vision, prefill) and memory bandwidth (decode: weight bytes read per token).\n"
               "  --prompt-tokens N  prefill length (default 256)    --tokens N  decode steps (default 32)\n"
               "  --batch B          also decode B sequences per step (continuous batching) and print\n"
               "                     the aggregate tokens/s\n"
               "  --kv-cache-dtype T auto (float32), float16 or bfloat16: the KV cache's element type\n"
               "  --dtype T          auto (bf16 products for a bf16 checkpoint), float32, bfloat16, float16\n"
               "  --quantization Q   quantize on load: q8_0, q4_k, q5_k, q6_k, q4_0, q4_1, q5_0, q5_1\n\n"
               VLM_MODEL_REF_HELP);
}

static int is_qwen(const struct vlm_model *m) {
    return m->family == &vlm_family_qwen25vl || m->family == &vlm_family_qwen2vl;
}

/* Qwen2-VL / Qwen2.5-VL: one image (the file, or a smooth synthetic 640x448 one) through the
 * processor and the tower; ms per image, GFLOP/s beside peak FMA. */
static int bench_image_qwen(struct vlm_model *m, struct vlm_pool *pool, const char *image, double peak) {
    const struct vlm_qwen25vl *f = m->impl;
    struct vlm_image img = {0};
    struct vlm_image_input in;
    struct vlm_error err;
    memset(&in, 0, sizeof in);
    int rc = m->proc ? VLM_OK : vlm_error_set(&err, VLM_E_UNSUPPORTED, "the model has no image processor");
    if (rc == VLM_OK && image) {
        char *bytes = NULL;
        size_t len = 0;
        rc = vlm_read_file(image, 256u << 20, &bytes, &len, &err);
        if (rc == VLM_OK) rc = vlm_image_decode((const uint8_t *)bytes, len, NULL, &img, &err);
        vlm_free(bytes);
    } else if (rc == VLM_OK && (rc = vlm_image_alloc(&img, 640, 448, &err)) == VLM_OK) {
        for (int y = 0; y < 448; y++)
            for (int x = 0; x < 640; x++)
                for (int c = 0; c < 3; c++)
                    img.rgb[((size_t)y * 640 + x) * 3 + c] = (uint8_t)(128 + 100 * sinf((float)(x * (c + 1)) / 90.0f + (float)y / 70.0f));
    }
    if (rc == VLM_OK) rc = vlm_processor_run(m->proc, &img, NULL, &in, &err);
    vlm_image_free(&img);
    float *emb = rc == VLM_OK ? vlm_malloc(sizeof(float) * (size_t)in.n_image_tokens * m->info.d_model) : NULL;
    if (rc == VLM_OK && !emb) rc = vlm_error_set(&err, VLM_E_NOMEM, "out of memory");
    double best = 1e30, best_cpu = 0;
    for (int r = 0; r < 2 && rc == VLM_OK; r++) {
        double t0 = now_s(), c0 = cpu_s();
        rc = vlm_model_encode_image(m, pool, &in, emb, &err);
        double t = now_s() - t0;
        if (t < best) { best = t; best_cpu = cpu_s() - c0; }
    }
    if (rc == VLM_OK) {
        const struct vlm_qwen_vision_hparams *vh = &f->vision.hp;
        double fl = vlm_qwen_vision_flops(vh, in.grid_thw);
        int nt = vlm_pool_size(pool);
        printf("image encode   %dx%d px = %d patches -> %d tokens: %.1f ms, %.1f GFLOP/s = %.0f%% of peak FMA\n",
               in.grid_thw[2] * vh->patch_size, in.grid_thw[1] * vh->patch_size, in.n_tiles, in.n_image_tokens,
               best * 1e3, fl / best / 1e9, 100.0 * fl / best / peak);
        printf("               with the cores to itself: %.1f ms = %.0f%% of peak FMA\n", best_cpu / nt * 1e3,
               100.0 * fl / (best_cpu / nt) / peak);
        print_owned(best, best_cpu, nt);
    } else {
        fprintf(stderr, "vlm bench: image encode: %s\n", err.msg);
    }
    vlm_free(emb);
    vlm_image_input_free(&in);
    return rc == VLM_OK ? 0 : 1;
}

static int bench_image(struct vlm_model *m, struct vlm_pool *pool, const char *image, double peak,
                       const struct vlm_family_costs *c) {
    struct vlm_image_input in;
    memset(&in, 0, sizeof in);
    struct vlm_error err;
    float *own_pixels = NULL;
    int rc = VLM_OK;
    if (image) {
        char *bytes = NULL;
        size_t len = 0;
        struct vlm_image img = {0};
        if (!m->proc) { fprintf(stderr, "vlm bench: the model has no image processor\n"); return 1; }
        rc = vlm_read_file(image, 256u << 20, &bytes, &len, &err);
        if (rc == VLM_OK) rc = vlm_image_decode((const uint8_t *)bytes, len, NULL, &img, &err);
        if (rc == VLM_OK) rc = vlm_processor_run(m->proc, &img, NULL, &in, &err);
        vlm_free(bytes);
        vlm_image_free(&img);
        if (rc != VLM_OK) { fprintf(stderr, "vlm bench: %s: %s\n", image, err.msg); return 1; }
    } else {   /* one full tile of smooth synthetic pixels */
        int tiles = c->image_tiles > 0 ? c->image_tiles : 1;
        size_t n = (size_t)tiles * 3 * c->image_size * c->image_size;
        own_pixels = vlm_malloc(sizeof(float) * n);
        if (!own_pixels) return 1;
        for (size_t i = 0; i < n; i++) own_pixels[i] = (float)((i * 2654435761u) % 2001) / 1000.0f - 1.0f;
        in.n_tiles = tiles; in.channels = 3; in.height = in.width = c->image_size;
        in.aspect_ratio_id = c->image_aspect_ratio_id;
        in.pixels = own_pixels;
        in.n_image_tokens = c->image_tokens;
    }
    /* cross-attention families encode to their states, not to prompt rows */
    int rows = m->info.cross_image_rows > 0 ? m->info.cross_image_rows : in.n_image_tokens;
    float *emb = vlm_malloc(sizeof(float) * (size_t)rows * m->info.d_model);
    double best = 1e30, best_cpu = 0;
    for (int r = 0; r < 2 && emb && rc == VLM_OK; r++) {
        double t0 = now_s(), c0 = cpu_s();
        rc = vlm_model_encode_image(m, pool, &in, emb, &err);
        double t = now_s() - t0;
        if (t < best) { best = t; best_cpu = cpu_s() - c0; }
    }
    if (rc == VLM_OK && emb) {
        double fl = c->image_flops * in.n_tiles;   /* every tile is a full one */
        printf("image encode   %d tile(s) of %dx%d: %.1f ms per tile, %.1f GFLOP/s = %.0f%% of peak FMA\n",
               in.n_tiles, in.width, in.height, best * 1e3 / in.n_tiles, fl / best / 1e9, 100.0 * fl / best / peak);
        int nt = vlm_pool_size(pool);
        double own = best_cpu / nt;
        printf("               with the cores to itself: %.1f ms per tile = %.0f%% of peak FMA\n",
               own * 1e3 / in.n_tiles, 100.0 * fl / own / peak);
        print_owned(best, best_cpu, nt);
    } else {
        fprintf(stderr, "vlm bench: image encode: %s\n", err.msg);
    }
    vlm_free(emb);
    if (own_pixels) vlm_free(own_pixels);
    else vlm_image_input_free(&in);
    return rc == VLM_OK ? 0 : 1;
}

/* Prefill n_prompt random tokens into seq 0, then decode n_tok single steps. */
static int bench_text(struct vlm_model *m, int n_threads, int n_prompt, int n_tok, int batch,
                      enum vlm_kv_dtype kvt, double peak, double bw, const struct vlm_family_costs *c) {
    struct vlm_ctx_params cp = vlm_ctx_default_params();
    cp.kv_dtype = kvt;
    int kv_es = kvt == VLM_KV_F16 || kvt == VLM_KV_BF16 ? 2 : 4;   /* bytes per cached K or V element */
    cp.n_seq_max = batch > 1 ? batch : 1;
    cp.n_ctx = n_prompt + n_tok + 8;
    cp.n_batch_max = n_prompt > 512 ? 512 : n_prompt;
    if (cp.n_batch_max < batch) cp.n_batch_max = batch;
    cp.n_threads = n_threads;
    struct vlm_ctx *ctx;
    struct vlm_error err;
    int n_img = m->info.cross_image_rows ? 1 : 0;   /* cross-attention families: each sequence holds one image */
    cp.n_kv_tokens = cp.n_ctx * cp.n_seq_max + cp.n_seq_max * n_img * m->info.cross_image_tokens;
    if (vlm_ctx_new(m, &cp, &ctx, &err) != VLM_OK) { fprintf(stderr, "vlm bench: %s\n", err.msg); return 1; }
    float *img_states = n_img ? vlm_calloc((size_t)m->info.cross_image_rows * m->info.d_model, sizeof(float)) : NULL;
    int img_tiles = m->info.max_tiles;
    struct vlm_mllama_span span = {0, n_prompt};
    if (n_img && (!img_states || vlm_ctx_seq_set_images(ctx, 0, 1, (const float *const *)&img_states, &img_tiles, &span,
                                                        n_prompt, &err) != VLM_OK)) {
        fprintf(stderr, "vlm bench: images: %s\n", img_states ? err.msg : "out of memory");
        vlm_free(img_states);
        vlm_ctx_free(ctx);
        return 1;
    }
    int32_t *ids = vlm_malloc(sizeof(int32_t) * (size_t)(n_prompt + batch)), *pos = vlm_malloc(sizeof(int32_t) * (size_t)(n_prompt + batch)),
            *seq = vlm_malloc(sizeof(int32_t) * (size_t)(n_prompt + batch));
    int rc = ids && pos && seq ? VLM_OK : VLM_E_NOMEM;
    for (int i = 0; i < n_prompt + batch && rc == VLM_OK; i++) ids[i] = 100 + (i * 7919) % (m->info.n_vocab - 200);
    int nt = vlm_pool_size(vlm_ctx_pool(ctx));
    double t0 = now_s(), c0 = cpu_s();
    for (int at = 0; at < n_prompt && rc == VLM_OK; at += cp.n_batch_max) {
        int n = n_prompt - at < cp.n_batch_max ? n_prompt - at : cp.n_batch_max;
        for (int i = 0; i < n; i++) { pos[i] = at + i; seq[i] = 0; }
        struct vlm_batch b = {n, ids + at, NULL, pos, seq, NULL, NULL};
        rc = vlm_ctx_decode(ctx, &b, &err);
    }
    double t_pre = now_s() - t0, c_pre = cpu_s() - c0;
    if (rc == VLM_OK) {
        double fl = (c->token_flops + c->token_flops_ctx * (n_prompt / 2.0)) * n_prompt, own = c_pre / nt;
        printf("prefill        %d tokens: %.1f tokens/s, %.1f GFLOP/s = %.0f%% of peak FMA\n",
               n_prompt, n_prompt / t_pre, fl / t_pre / 1e9, 100.0 * fl / t_pre / peak);
        printf("               with the cores to itself: %.1f tokens/s = %.0f%% of peak FMA\n",
               n_prompt / own, 100.0 * fl / own / peak);
        print_owned(t_pre, c_pre, nt);
    }
    double wbytes = (double)c->decode_bytes;
    double img_kv = n_img ? c->cross_kv_bytes * kv_es / 4 : 0;   /* the image's cross-attention K/V, read each step */
    double t1 = now_s(), c1 = cpu_s();
    for (int s = 0; s < n_tok && rc == VLM_OK; s++) {
        int32_t tok = ids[s % n_prompt], p = n_prompt + s, sq = 0;
        struct vlm_batch b = {1, &tok, NULL, &p, &sq, NULL, NULL};
        rc = vlm_ctx_decode(ctx, &b, &err);
    }
    double t_dec = now_s() - t1, c_dec = cpu_s() - c1;
    if (rc == VLM_OK) {
        double tps = n_tok / t_dec, kv = (double)m->info.n_layer * m->info.kv_dim * 2 * kv_es * (n_prompt + n_tok / 2.0) + img_kv;
        double own_tps = n_tok / (c_dec / nt);
        printf("decode         %d tokens after %d: %.1f tokens/s, %.0f MB of weights per token -> %.2f GB/s = %.0f%% of memory bandwidth\n",
               n_tok, n_prompt, tps, wbytes / 1e6, (wbytes + kv) * tps / 1e9, 100.0 * (wbytes + kv) * tps / bw);
        printf("               with the cores to itself: %.1f tokens/s -> %.2f GB/s = %.0f%% of memory bandwidth\n",
               own_tps, (wbytes + kv) * own_tps / 1e9, 100.0 * (wbytes + kv) * own_tps / bw);
        print_owned(t_dec, c_dec, nt);
    }
    if (rc == VLM_OK && batch > 1) {   /* B sequences, each one token per step */
        vlm_ctx_seq_clear(ctx, 0);
        /* every sequence starts after the same prompt the single-sequence decode had */
        for (int s = 0; s < batch && rc == VLM_OK; s++) {
            if (n_img) rc = vlm_ctx_seq_set_images(ctx, s, 1, (const float *const *)&img_states, &img_tiles, &span, n_prompt, &err);
            for (int at = 0; at < n_prompt && rc == VLM_OK; at += cp.n_batch_max) {
                int n = n_prompt - at < cp.n_batch_max ? n_prompt - at : cp.n_batch_max;
                for (int i = 0; i < n; i++) { pos[i] = at + i; seq[i] = s; }
                struct vlm_batch b = {n, ids + at, NULL, pos, seq, NULL, NULL};
                rc = vlm_ctx_decode(ctx, &b, &err);
            }
        }
        int32_t *tok = vlm_malloc(sizeof(int32_t) * (size_t)batch);
        if (!tok) rc = vlm_error_set(&err, VLM_E_NOMEM, "out of memory");
        double t2 = now_s();
        for (int step = 0; step < n_tok && rc == VLM_OK; step++) {
            for (int s = 0; s < batch; s++) {
                pos[s] = n_prompt + step;
                seq[s] = s;
                tok[s] = ids[(step + s) % n_prompt];
            }
            struct vlm_batch b = {batch, tok, NULL, pos, seq, NULL, NULL};
            rc = vlm_ctx_decode(ctx, &b, &err);
        }
        vlm_free(tok);
        double t = now_s() - t2;
        if (rc == VLM_OK)
            printf("batched decode %d sequences x %d steps: %.1f tokens/s aggregate (%.2fx one sequence)\n",
                   batch, n_tok, batch * n_tok / t, (batch * n_tok / t) / (n_tok / t_dec));
    }
    if (rc != VLM_OK) fprintf(stderr, "vlm bench: %s\n", err.msg);
    vlm_free(ids); vlm_free(pos); vlm_free(seq);
    vlm_free(img_states);
    vlm_ctx_free(ctx);
    return rc == VLM_OK ? 0 : 1;
}

/* Runs the probes in a child process so that the bandwidth probe's 256 MiB buffer does not
 * count in this process's peak RSS. Falls back to probing here if fork fails. */
static void probe_limits(int threads, double *bw, double *peak) {
    int fd[2];
    double v[2] = {0, 0};
    pid_t pid = pipe(fd) == 0 ? fork() : -1;
    if (pid == 0) {
        close(fd[0]);
        struct vlm_pool *pool = vlm_pool_new(threads);
        v[0] = vlm_probe_mem_bandwidth(pool);
        v[1] = vlm_probe_peak_flops(pool);
        vlm_pool_free(pool);
        ssize_t w = write(fd[1], v, sizeof v);
        _exit(w == (ssize_t)sizeof v ? 0 : 1);
    }
    if (pid > 0) {
        close(fd[1]);
        ssize_t r = read(fd[0], v, sizeof v);
        close(fd[0]);
        waitpid(pid, NULL, 0);
        if (r == (ssize_t)sizeof v) { *bw = v[0]; *peak = v[1]; return; }
    }
    struct vlm_pool *pool = vlm_pool_new(threads);
    *bw = vlm_probe_mem_bandwidth(pool);
    *peak = vlm_probe_peak_flops(pool);
    vlm_pool_free(pool);
}

int cmd_bench(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);   /* each figure as soon as it is measured, also into a pipe or log */
    const char *dir = NULL, *image = NULL, *mmproj = NULL;
    int threads = 0, n_prompt = 256, n_tok = 32, batch = 1, no_image = 0;
    enum vlm_kv_dtype kv = VLM_KV_AUTO;
    const char *dtype = NULL, *quant = NULL;
    struct vlm_model_ref ref = {0};
    char *resolved = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer")) return vlm_bench_tokenizer(argc, argv);
        { int k_ = vlm_model_ref_flag(&ref, "bench", argc, argv, &i); if (k_ < 0) return 2; if (k_) continue; }
        const char *a = argv[i];
        int has = i + 1 < argc;
        if (!strcmp(a, "--tokenizer")) return vlm_bench_tokenizer(argc, argv);
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { usage(stdout); return 0; }
        else if (!strcmp(a, "--image") && has) image = argv[++i];
        else if (!strcmp(a, "--threads") && has) threads = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--prompt-tokens") && has) n_prompt = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--tokens") && has) n_tok = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--batch") && has) batch = (int)strtol(argv[++i], NULL, 10);
        else if (!strcmp(a, "--no-image")) no_image = 1;
        else if (!strcmp(a, "--mmproj") && has) mmproj = argv[++i];
        else if (!strcmp(a, "--dtype") && has) dtype = argv[++i];
        else if ((!strcmp(a, "--quantization") || !strcmp(a, "-q")) && has) quant = argv[++i];
        else if (!strcmp(a, "--kv-cache-dtype") && has) {
            if (vlm_kv_dtype_parse(argv[++i], &kv) != 0) {
                fprintf(stderr, "vlm bench: --kv-cache-dtype %s: use auto, float32, float16 or bfloat16\n", argv[i]);
                return 2;
            }
        }
        else if (a[0] != '-' && !dir) dir = a;
        else { usage(stderr); return 2; }
    }
    if (n_prompt < 1 || n_tok < 1 || batch < 1 || batch > 256) { usage(stderr); return 2; }
    if (!dir) dir = vlm_tool_default_model();
    if (vlm_model_ref_resolve("bench", dir, &ref, true, &resolved)) return 1;
    dir = resolved;
    struct vlm_model_params mp = vlm_model_default_params();
    mp.n_threads = threads;
    mp.load_tokenizer = 1;   /* and the processor: Qwen2-VL encodes a synthetic image through it */
    mp.mmproj = mmproj;
    mp.dtype = dtype;
    mp.quantization = quant;
    struct vlm_model *m;
    struct timespec l0, l1;
    clock_gettime(CLOCK_MONOTONIC, &l0);
    if (vlm_model_load(dir, &mp, &m) != VLM_OK) {
        fprintf(stderr, "vlm bench: %s\n", vlm_last_error());
        vlm_free(resolved);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &l1);
    if (!m->family->costs) {
        fprintf(stderr, "vlm bench: %s is not handled by the benchmark yet\n", m->info.arch);
        vlm_model_free(m);
        vlm_free(resolved);
        return 1;
    }
    struct vlm_family_costs costs;
    memset(&costs, 0, sizeof costs);
    m->family->costs(m, &costs);
    double bw, peak;
    probe_limits(threads, &bw, &peak);
    struct vlm_pool *pool = vlm_pool_new(threads);
    int nt = vlm_pool_size(pool);
    printf("model          %s (%s), weights %.1f MiB, --dtype %s, --quantization %s, loaded in %.3f s\n", dir,
           m->info.arch, m->info.weight_bytes / 1048576.0, dtype ? dtype : "auto", quant ? quant : "none",
           (double)(l1.tv_sec - l0.tv_sec) + (l1.tv_nsec - l0.tv_nsec) * 1e-9);
    printf("limits         %d thread(s): memory bandwidth %.2f GB/s, peak FMA %.1f GFLOP/s (probes)\n",
           nt, bw / 1e9, peak / 1e9);
    int rc = 0;
    if (!no_image && m->info.image_token_id < 0)
        printf("image encode   skipped: this model takes no images\n");
    else if (!no_image && is_qwen(m)) rc |= bench_image_qwen(m, pool, image, peak);   /* its own grid per image */
    else if (!no_image && !image && costs.image_size <= 0)
        printf("image encode   skipped: this model's images are tiled by their size; pass --image FILE\n");
    else if (!no_image) rc |= bench_image(m, pool, image, peak, &costs);
    vlm_pool_free(pool);
    rc |= bench_text(m, threads, n_prompt, n_tok, batch, kv, peak, bw, &costs);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double bw2, peak2;   /* probes again: a busy machine shows here as a different limit */
    probe_limits(threads, &bw2, &peak2);
    printf("limits (again) memory bandwidth %.2f GB/s, peak FMA %.1f GFLOP/s: fractions above are of the first probes\n",
           bw2 / 1e9, peak2 / 1e9);
    printf("memory         peak RSS %.1f MiB, weights %.1f MiB (mmap'd)\n", ru.ru_maxrss / 1024.0,
           m->info.weight_bytes / 1048576.0);
    vlm_model_free(m);
    vlm_free(resolved);
    return rc;
}
