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
                /* not chosen by default: its vdpbf16ps GEMM measured 0.72x the f32 GEMM on the
                   rounded activations (256x1536x576, this Xeon: one vdpbf16ps port against two
                   FMA ports), which computes the same bf16 products */
                supported[3] = 1;
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
