/* probe.h — quick measurements of this machine's limits, the denominators of `vlm bench`:
 * streaming memory bandwidth and peak f32 FMA rate, both on all threads of a pool.
 * Each figure is the larger of the wall-clock rate and the sum of the threads' rates over
 * their own CPU time, so that other processes on a busy machine lower neither (the second
 * assumes the threads could run at once, which is what the limit means). */
#ifndef VLM_TENSOR_PROBE_H
#define VLM_TENSOR_PROBE_H

struct vlm_pool;

/* Bytes per second of a streaming read of a buffer several times the L3 size, all pool
 * threads reading disjoint parts (best of a few passes). About 0.3 s; 0 if it cannot
 * allocate its 256 MiB buffer. */
double vlm_probe_mem_bandwidth(struct vlm_pool *pool);

/* f32 FLOP/s (an FMA counts 2) of register-only FMA loops with the kernel table in use, on
 * all pool threads (best of a few passes). About 0.2 s. */
double vlm_probe_peak_flops(struct vlm_pool *pool);

#endif
