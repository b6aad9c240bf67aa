/* kernels.c — picks the kernel table once from CPU features: generic first, then AVX2+FMA,
 * then AVX-512 (F/BW/VL/DQ) overrides. VLM_FORCE_GENERIC=1 keeps the scalar reference;
 * VLM_KERNELS=generic|avx2|avx512|avx512bf16 picks a supported table by name. */
#include "tensor/kernels.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static struct vlm_kernels tables[VLM_KERNELS_N_VARIANTS];
static int                supported[VLM_KERNELS_N_VARIANTS];
static int                chosen;
static pthread_once_t     once = PTHREAD_ONCE_INIT;

#if defined(__x86_64__)
static int cpu_has_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

static int cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
}

static int cpu_has_avx512bf16(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
}

/* On an EPYC Zen 5 the vdpbf16ps GEMM measured 1.5x the f32 one (bf16 dot products halve its
 * instructions); on a Xeon 0.72x (one vdpbf16ps port against two FMA ports). Zen 4, the other
 * AMD core with AVX512-BF16, was not measured. A fixed rule per CPU, so a machine always picks
 * the same table. */
static int cpu_prefers_bf16_dot(void) {
    __builtin_cpu_init();
    return __builtin_cpu_is("amd");
}

static int cpu_has_avx512vnni(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512vnni");
}
#endif

static void choose(void) {
    vlm_kernels_init_generic(&tables[0]);
    supported[0] = 1;
    chosen = 0;
#if defined(__x86_64__)
    if (cpu_has_avx2()) {
        tables[1] = tables[0];
        vlm_kernels_init_avx2(&tables[1]);
        vlm_kernels_init_q_avx2(&tables[1]);
        vlm_kernels_init_gemm_q_avx2(&tables[1]);
        supported[1] = 1;
        chosen = 1;
        if (cpu_has_avx512()) {
            tables[2] = tables[1];
            vlm_kernels_init_avx512(&tables[2]);
            vlm_kernels_init_q_avx512(&tables[2], cpu_has_avx512vnni() && !getenv("VLM_NO_VNNI"));
            supported[2] = 1;
            chosen = 2;
            if (cpu_has_avx512bf16()) {
                tables[3] = tables[2];
                vlm_kernels_init_avx512bf16(&tables[3]);
                /* the default on AMD only: its vdpbf16ps GEMM measured 0.72x the f32 GEMM on the
                   rounded activations on a Xeon (256x1536x576: one vdpbf16ps port against two
                   FMA ports), and 1.45x (vision tile) to 1.5x (prefill) on an EPYC Zen 5 */
                supported[3] = 1;
                if (cpu_prefers_bf16_dot()) chosen = 3;
            }
        }
    }
#endif
    /* VLM_KERNELS=generic|avx2|avx512|avx512bf16 picks a supported table by name */
    const char *want = getenv("VLM_KERNELS");
    if (want)
        for (int i = 0; i < VLM_KERNELS_N_VARIANTS; i++)
            if (supported[i] && !strcmp(want, tables[i].name)) chosen = i;
    const char *g = getenv("VLM_FORCE_GENERIC");
    if (g && *g && *g != '0') chosen = 0;
}

const struct vlm_kernels *vlm_kernels(void) {
    pthread_once(&once, choose);
    return &tables[chosen];
}

const struct vlm_kernels *vlm_kernels_variant(int i) {
    pthread_once(&once, choose);
    if (i < 0 || i >= VLM_KERNELS_N_VARIANTS || !supported[i]) return NULL;
    return &tables[i];
}
