/* Whether this CPU runs the kernels' AVX-512 code (VBMI's byte permutations): shared by resize.c and warp.c. */
#ifndef LOADER_KERNELS_CPU_H
#define LOADER_KERNELS_CPU_H

static inline int cpu_avx512_vbmi(void) {
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vbmi");
#else
    return 0;
#endif
}

#endif
