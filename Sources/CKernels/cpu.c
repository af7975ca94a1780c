/* What this CPU can run: the one place that asks it. The compiler's checks include the
 * OS's consent (XCR0), so a feature reported here also has its registers saved. */
#include "f2a_kernels.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

int f2a_kernels_available(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

int f2a_cpu_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl");
}

/* The process's choice: -1 until first asked. */
static atomic_int avx512_blocks = -1;

/* A thread's own choice once it has made one (f2a_kernels_set_avx512), -1 before; pool
 * workers take their caller's for each job (f2a_kernels_adopt_avx512). Per thread because
 * the trainer's AVX-512-only kernels fall back to GEMMs with other roundings: a process-wide
 * switch flipped by one test changed the path, and the bits, of the tests running beside it. */
static _Thread_local int thread_blocks = -1;

int f2a_kernels_avx512(void) {
    if (thread_blocks >= 0) return thread_blocks;
    int v = atomic_load_explicit(&avx512_blocks, memory_order_relaxed);
    if (v >= 0) return v;
    const char *env = getenv("F2A_AVX512");
    v = f2a_cpu_has_avx512() && !(env && strcmp(env, "0") == 0);
    atomic_store_explicit(&avx512_blocks, v, memory_order_relaxed);
    return v;
}

int f2a_kernels_set_avx512(int enable) {
    int previous = f2a_kernels_avx512();
    thread_blocks = enable && f2a_cpu_has_avx512();
    return previous;
}

void f2a_kernels_adopt_avx512(int blocks) { thread_blocks = blocks; }
