/* fma_peak.c — the machine's single-precision FMA peak, for `make bench`.
 *
 *     cc -O2 -mavx2 -mfma -pthread -o f2a-fma-peak bench/fma_peak.c
 *     f2a-fma-peak [THREADS [SECONDS]]        (default 2 threads, 0.25 s)
 *
 * Each thread runs 12 independent chains of vfmadd231ps (enough to hide the FMA latency on
 * two FMA pipes), 16 lanes wide on AVX-512 CPUs and 8 otherwise, for about SECONDS, then
 * all threads' flops are summed: GFLOP/s = 2 flops x lanes x FMAs / wall time. Prints one
 * JSON line:
 *     {"threads": 2, "seconds": 0.25, "lanes": 16, "gflops": 123.4}
 * The bench runs it a few times and keeps the best (a peak); on a busy machine every
 * figure is lower, which is why it is measured in the same run as the engines.
 */
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12
#define INNER 4096

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct job {
	double seconds;
	double fmas;    /* out: vector FMAs executed (8 or 16 lanes) */
	float sink;     /* out: keeps the result alive */
};

/* One thread's chains in vectors of VEC (intrinsics prefix P, LANES floats). Both widths
 * come from this one body, so they measure the same loop. */
#define DEFINE_RUN(NAME, ATTR, VEC, P, LANES)                                          \
	ATTR static void *NAME(void *arg)                                               \
	{                                                                              \
		struct job *job = arg;                                                 \
		VEC acc[CHAINS];                                                       \
		for (int i = 0; i < CHAINS; i++)                                       \
			acc[i] = P##_set1_ps(1.0f + i * 1e-3f);                        \
		const VEC a = P##_set1_ps(0.999999f), b = P##_set1_ps(1e-7f);          \
		double start = now(), fmas = 0;                                        \
		do {                                                                   \
			for (int k = 0; k < INNER; k++) {                              \
				/* 12 independent chains: acc = acc * a + b (stays     \
				 * near 1, no denormals), unrolled into registers */   \
				_Pragma("GCC unroll 12")                               \
				for (int c = 0; c < CHAINS; c++)                       \
					acc[c] = P##_fmadd_ps(acc[c], a, b);           \
			}                                                              \
			fmas += (double)INNER * CHAINS;                                \
		} while (now() - start < job->seconds);                                \
		VEC s = acc[0];                                                        \
		for (int i = 1; i < CHAINS; i++)                                       \
			s = P##_add_ps(s, acc[i]);                                     \
		float lanes[LANES];                                                    \
		P##_storeu_ps(lanes, s);                                               \
		job->sink = lanes[0];                                                  \
		job->fmas = fmas;                                                      \
		return NULL;                                                           \
	}

DEFINE_RUN(run, , __m256, _mm256, 8)
DEFINE_RUN(run512, __attribute__((target("avx512f"))), __m512, _mm512, 16)

int main(int argc, char **argv)
{
	int threads = argc > 1 ? atoi(argv[1]) : 2;
	double seconds = argc > 2 ? atof(argv[2]) : 0.25;
	if (threads < 1 || threads > 256 || !(seconds > 0 && seconds < 60)) {
		fprintf(stderr, "usage: %s [THREADS [SECONDS]]\n", argv[0]);
		return 64;
	}
	/* The widest FMAs the CPU has: on AVX-512 machines the kernels' 16-lane blocks and
	 * OpenVINO's kernels use them, and the 8-lane figure would be half the real peak. */
	__builtin_cpu_init();
	int lanes = __builtin_cpu_supports("avx512f") ? 16 : 8;
	pthread_t tid[256];
	struct job jobs[256];
	double start = now();
	for (int t = 0; t < threads; t++) {
		jobs[t] = (struct job){ .seconds = seconds };
		if (pthread_create(&tid[t], NULL, lanes == 16 ? run512 : run, &jobs[t]) != 0) {
			perror("pthread_create");
			return 1;
		}
	}
	double fmas = 0, sink = 0;
	for (int t = 0; t < threads; t++) {
		pthread_join(tid[t], NULL);
		fmas += jobs[t].fmas;
		sink += jobs[t].sink;
	}
	double wall = now() - start;
	printf("{\"threads\": %d, \"seconds\": %.3f, \"lanes\": %d, \"gflops\": %.2f, \"check\": %g}\n",
	       threads, wall, lanes, fmas * 2 * lanes / wall / 1e9, sink);
	return 0;
}
