/* The AVX2/FMA (and AVX-512) GEMM register blocks shared by the 3x3 (winograd.c) and the
 * 2x2 transposed (upsample.c) convolutions, and the edge mask of 16-lane accesses.
 * Internal to CKernels. */
#ifndef F2A_MICROKERNEL_H
#define F2A_MICROKERNEL_H

#include <immintrin.h>
#include <stddef.h>

#define MK_ROWS 6  /* rows of M (output channels) per block */
#define MK_ROWS4 4 /* rows of the narrow block (gemm_4x16) */
#define MK_COLS 16 /* columns of M (pixels or tiles) per block: two vectors */

/* Rows of M per register block for `rows` output channels: 6 (gemm_6x16) unless 4 rows
 * pad a quarter fewer (8 output channels: 8 rows instead of 12, ~15 % off those layers);
 * elsewhere 6 rows need fewer loads per FMA, which measured as fast as the 4-row block even
 * for 16 or 32 channels. */
__attribute__((unused))
static inline int gemm_block_rows(int rows) {
    const int six = (rows + MK_ROWS - 1) / MK_ROWS * MK_ROWS, four = (rows + MK_ROWS4 - 1) / MK_ROWS4 * MK_ROWS4;
    return 4 * six >= 5 * four ? MK_ROWS4 : MK_ROWS;
}

/* Packed operands: u is [K][6] (6 rows interleaved), v is [K][16]. */
/* M[6 x 16] = U[6 x K] V[K x 16]: 12 accumulators; per k two column vectors
 * are loaded and each of 6 weights broadcast: 8 loads per 12 FMAs. */
__attribute__((target("avx2,fma"), unused))
static inline void gemm_6x16(int K, const float *u, const float *v, float *m, size_t ldm) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    for (int k = 0; k < K; k++, u += MK_ROWS, v += MK_COLS) {
        __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8), w;
        w = _mm256_broadcast_ss(u + 0); c00 = _mm256_fmadd_ps(w, v0, c00); c01 = _mm256_fmadd_ps(w, v1, c01);
        w = _mm256_broadcast_ss(u + 1); c10 = _mm256_fmadd_ps(w, v0, c10); c11 = _mm256_fmadd_ps(w, v1, c11);
        w = _mm256_broadcast_ss(u + 2); c20 = _mm256_fmadd_ps(w, v0, c20); c21 = _mm256_fmadd_ps(w, v1, c21);
        w = _mm256_broadcast_ss(u + 3); c30 = _mm256_fmadd_ps(w, v0, c30); c31 = _mm256_fmadd_ps(w, v1, c31);
        w = _mm256_broadcast_ss(u + 4); c40 = _mm256_fmadd_ps(w, v0, c40); c41 = _mm256_fmadd_ps(w, v1, c41);
        w = _mm256_broadcast_ss(u + 5); c50 = _mm256_fmadd_ps(w, v0, c50); c51 = _mm256_fmadd_ps(w, v1, c51);
    }
    _mm256_storeu_ps(m, c00); _mm256_storeu_ps(m + 8, c01); m += ldm;
    _mm256_storeu_ps(m, c10); _mm256_storeu_ps(m + 8, c11); m += ldm;
    _mm256_storeu_ps(m, c20); _mm256_storeu_ps(m + 8, c21); m += ldm;
    _mm256_storeu_ps(m, c30); _mm256_storeu_ps(m + 8, c31); m += ldm;
    _mm256_storeu_ps(m, c40); _mm256_storeu_ps(m + 8, c41); m += ldm;
    _mm256_storeu_ps(m, c50); _mm256_storeu_ps(m + 8, c51);
}

/* M[4 x 16] = U[4 x K] V[K x 16], u packed [K][4]: for row counts the
 * 6-row block would pad by a third or more (8 output channels: 12 rows).
 * 8 accumulators still cover the FMA latency. */
__attribute__((target("avx2,fma"), unused))
static inline void gemm_4x16(int K, const float *u, const float *v, float *m, size_t ldm) {
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
    for (int k = 0; k < K; k++, u += MK_ROWS4, v += MK_COLS) {
        __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8), w;
        w = _mm256_broadcast_ss(u + 0); c00 = _mm256_fmadd_ps(w, v0, c00); c01 = _mm256_fmadd_ps(w, v1, c01);
        w = _mm256_broadcast_ss(u + 1); c10 = _mm256_fmadd_ps(w, v0, c10); c11 = _mm256_fmadd_ps(w, v1, c11);
        w = _mm256_broadcast_ss(u + 2); c20 = _mm256_fmadd_ps(w, v0, c20); c21 = _mm256_fmadd_ps(w, v1, c21);
        w = _mm256_broadcast_ss(u + 3); c30 = _mm256_fmadd_ps(w, v0, c30); c31 = _mm256_fmadd_ps(w, v1, c31);
    }
    _mm256_storeu_ps(m, c00); _mm256_storeu_ps(m + 8, c01); m += ldm;
    _mm256_storeu_ps(m, c10); _mm256_storeu_ps(m + 8, c11); m += ldm;
    _mm256_storeu_ps(m, c20); _mm256_storeu_ps(m + 8, c21); m += ldm;
    _mm256_storeu_ps(m, c30); _mm256_storeu_ps(m + 8, c31);
}

/* The AVX-512 form of both blocks, on CPUs that have it (f2a_kernels_avx512()): one
 * 16-lane vector is one panel row, so a call takes `panels` adjacent panels (v, v + 16 K,
 * ...; written to m, m + 16, ...), 2 to 4, for rows x panels accumulators. Why up to 4:
 * the Xeon these were measured on issues about one load per cycle here, so the loads per
 * FMA decide the speed: per k `panels` vector loads and `rows` broadcasts for rows x panels
 * FMAs. Microbenchmark of the block alone (K = 64-520, data in L1/L2, one thread, FMA peak
 * 175 GFLOP/s): 6 x 2 panels 95-142 GFLOP/s, 6 x 3 164-175, 6 x 4 166-176; 4 x 2 124-125,
 * 4 x 3 150-159, 4 x 4 164-176. Same sums in the same order per element as gemm_6x16 /
 * gemm_4x16, so the results are bit-identical. `rows` and `panels` are constants where it
 * is called, so the accumulators stay in registers (6 x 4 + 4 + 1 of the 32). */
__attribute__((target("avx512f"), always_inline, unused))
static inline void gemm_panels_avx512(const int rows, const int panels, int K, const float *u, const float *v,
                                      float *m, size_t ldm) {
    __m512 c[MK_ROWS][4];
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < panels; q++) c[r][q] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++, u += rows, v += MK_COLS) {
        __m512 x[4];
        for (int q = 0; q < panels; q++) x[q] = _mm512_loadu_ps(v + (size_t) q * K * MK_COLS);
        for (int r = 0; r < rows; r++) {
            const __m512 w = _mm512_set1_ps(u[r]);
            for (int q = 0; q < panels; q++) c[r][q] = _mm512_fmadd_ps(w, x[q], c[r][q]);
        }
    }
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < panels; q++) _mm512_storeu_ps(m + r * ldm + q * MK_COLS, c[r][q]);
}

/* gemm_panels_avx512 with its constants spelled out, one copy per shape. */
#define F2A_GEMM_AVX512(rows, panels)                                                                      \
    __attribute__((target("avx512f"), unused)) static inline void gemm_##rows##x16x##panels(                \
        int K, const float *u, const float *v, float *m, size_t ldm) {                                     \
        gemm_panels_avx512(rows, panels, K, u, v, m, ldm);                                                 \
    }
F2A_GEMM_AVX512(6, 2)
F2A_GEMM_AVX512(6, 3)
F2A_GEMM_AVX512(6, 4)
F2A_GEMM_AVX512(4, 2)
F2A_GEMM_AVX512(4, 3)
F2A_GEMM_AVX512(4, 4)
#undef F2A_GEMM_AVX512

/* One 6-row panel in 16-lane vectors, for a single panel (gemm_panels leaves no other
 * alone): only 6 accumulators, so FMA latency bounds it, still at 1.5 times the lanes per
 * cycle of gemm_6x16. */
__attribute__((target("avx512f"), unused))
static inline void gemm_6x16_avx512(int K, const float *u, const float *v, float *m, size_t ldm) {
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    for (int k = 0; k < K; k++, u += MK_ROWS, v += MK_COLS) {
        __m512 v0 = _mm512_loadu_ps(v);
        c0 = _mm512_fmadd_ps(_mm512_set1_ps(u[0]), v0, c0);
        c1 = _mm512_fmadd_ps(_mm512_set1_ps(u[1]), v0, c1);
        c2 = _mm512_fmadd_ps(_mm512_set1_ps(u[2]), v0, c2);
        c3 = _mm512_fmadd_ps(_mm512_set1_ps(u[3]), v0, c3);
        c4 = _mm512_fmadd_ps(_mm512_set1_ps(u[4]), v0, c4);
        c5 = _mm512_fmadd_ps(_mm512_set1_ps(u[5]), v0, c5);
    }
    _mm512_storeu_ps(m, c0); m += ldm;
    _mm512_storeu_ps(m, c1); m += ldm;
    _mm512_storeu_ps(m, c2); m += ldm;
    _mm512_storeu_ps(m, c3); m += ldm;
    _mm512_storeu_ps(m, c4); m += ldm;
    _mm512_storeu_ps(m, c5);
}

/* A single panel of two neighbouring blocks of `rows` rows at once (u0, u1: their packed
 * rows; m0, m1: their output rows): 12 (8) accumulators where one block alone has 6 (4),
 * which leaves gemm_6x16_avx512 bound by the FMA latency. Per k one vector load and
 * 2 x rows broadcasts, so at one load per cycle (see above) it runs at about half the FMA
 * peak (88 GFLOP/s of 175 alone, in L1): bands of one panel are worth avoiding
 * (winograd.c's band sizes). Same sums in the same order as the blocks one at a time.
 * `rows` is a constant where it is called, so the accumulators stay in registers. */
__attribute__((target("avx512f"), always_inline, unused))
static inline void gemm_pair_x16_avx512(const int rows, int K, const float *u0, const float *u1, const float *v,
                                        float *m0, float *m1, size_t ldm) {
    __m512 a[MK_ROWS], b[MK_ROWS];
    for (int r = 0; r < rows; r++) a[r] = b[r] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++, u0 += rows, u1 += rows, v += MK_COLS) {
        const __m512 x = _mm512_loadu_ps(v);
        for (int r = 0; r < rows; r++) {
            a[r] = _mm512_fmadd_ps(_mm512_set1_ps(u0[r]), x, a[r]);
            b[r] = _mm512_fmadd_ps(_mm512_set1_ps(u1[r]), x, b[r]);
        }
    }
    for (int r = 0; r < rows; r++) {
        _mm512_storeu_ps(m0 + r * ldm, a[r]);
        _mm512_storeu_ps(m1 + r * ldm, b[r]);
    }
}

__attribute__((target("avx512f"), unused))
static inline void gemm_12x16_avx512(int K, const float *u0, const float *u1, const float *v, float *m0, float *m1,
                                     size_t ldm) {
    gemm_pair_x16_avx512(MK_ROWS, K, u0, u1, v, m0, m1, ldm);
}

__attribute__((target("avx512f"), unused))
static inline void gemm_8x16_avx512(int K, const float *u0, const float *u1, const float *v, float *m0, float *m1,
                                    size_t ldm) {
    gemm_pair_x16_avx512(MK_ROWS4, K, u0, u1, v, m0, m1, ldm);
}

/* The lanes of 16 floats from column x on that lie in [0, width): the mask of a
 * 16-lane load or store at the image's edges (winograd.c, weight_grad.c) or a block's
 * end (pointwise.c). */
__attribute__((unused))
static inline __mmask16 cols_in(int x, int width) {
    int lo = x < 0 ? -x : 0, hi = width - x < 16 ? width - x : 16;
    return hi <= lo ? 0 : (__mmask16) ((0xFFFFu >> (16 - hi)) & (0xFFFFu << lo));
}

/* The first n of 8 int32 lanes set (n <= 0: none, n >= 8: all): the mask of an AVX2
 * maskload or maskstore at a block's end (pointwise.c). */
__attribute__((target("avx2,fma"), unused))
static inline __m256i lanes_below(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* The sum of 8 lanes: halves, then pairs, then the last two. */
__attribute__((target("avx2,fma"), unused))
static inline float sum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* 16 x 16 floats, rows `src_stride` apart, transposed into dst (rows `dst_stride` apart):
 * 4 x 4 transposes within 128-bit lanes, then of the 4 x 4 blocks of lanes. For packing
 * operands whose rows are the GEMM's depth (upsample.c, shifted_gemm.c). */
__attribute__((target("avx512f"), unused))
static inline void transpose16(const float *src, size_t src_stride, float *dst, size_t dst_stride) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + src_stride * i);
    for (int i = 0; i < 16; i += 4) {
        const __m512 a = _mm512_unpacklo_ps(r[i], r[i + 1]), b = _mm512_unpackhi_ps(r[i], r[i + 1]);
        const __m512 c = _mm512_unpacklo_ps(r[i + 2], r[i + 3]), d = _mm512_unpackhi_ps(r[i + 2], r[i + 3]);
        /* t[i + m], lane 4 L + q: r[i + q] lane 4 L + m */
        t[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(a), _mm512_castps_pd(c)));
        t[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(a), _mm512_castps_pd(c)));
        t[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(b), _mm512_castps_pd(d)));
        t[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(b), _mm512_castps_pd(d)));
    }
    /* Output row 4 L + m takes 128-bit lane L of t[m], t[4 + m], t[8 + m], t[12 + m]. */
    for (int m = 0; m < 4; m++) {
        const __m512 a = _mm512_shuffle_f32x4(t[m], t[4 + m], 0x44), b = _mm512_shuffle_f32x4(t[m], t[4 + m], 0xEE);
        const __m512 c = _mm512_shuffle_f32x4(t[8 + m], t[12 + m], 0x44), d = _mm512_shuffle_f32x4(t[8 + m], t[12 + m], 0xEE);
        _mm512_storeu_ps(dst + dst_stride * m, _mm512_shuffle_f32x4(a, c, 0x88));
        _mm512_storeu_ps(dst + dst_stride * (4 + m), _mm512_shuffle_f32x4(a, c, 0xDD));
        _mm512_storeu_ps(dst + dst_stride * (8 + m), _mm512_shuffle_f32x4(b, d, 0x88));
        _mm512_storeu_ps(dst + dst_stride * (12 + m), _mm512_shuffle_f32x4(b, d, 0xDD));
    }
}

/* M[rows x cols] = U[rows x K] V[K x cols] for a block of `rows` (MK_ROWS or MK_ROWS4)
 * output rows over `cols` (a multiple of MK_COLS) columns stored as consecutive [K][16]
 * panels. When `wide`, the AVX-512 blocks on runs of 4 panels, the rest as one run of 2 or
 * 3 (5 panels: 3 + 2), so that a single panel is left only when `cols` is one panel; the
 * AVX2 blocks otherwise. */
__attribute__((unused))
static inline void gemm_panels(int rows, int wide, int K, const float *u, const float *v, float *m,
                               size_t ldm, int cols) {
    int t = 0;
    if (wide)
        for (int left = cols / MK_COLS; left >= 2;) {
            const int run = left == 3 || left == 5 ? 3 : left == 2 ? 2 : 4;
            const float *vt = v + (size_t) t * K;
            if (rows == MK_ROWS4) {
                if (run == 4) gemm_4x16x4(K, u, vt, m + t, ldm);
                else if (run == 3) gemm_4x16x3(K, u, vt, m + t, ldm);
                else gemm_4x16x2(K, u, vt, m + t, ldm);
            } else {
                if (run == 4) gemm_6x16x4(K, u, vt, m + t, ldm);
                else if (run == 3) gemm_6x16x3(K, u, vt, m + t, ldm);
                else gemm_6x16x2(K, u, vt, m + t, ldm);
            }
            t += run * MK_COLS;
            left -= run;
        }
    for (; t < cols; t += MK_COLS) {
        if (rows == MK_ROWS4) gemm_4x16(K, u, v + (size_t) t * K, m + t, ldm);
        else if (wide) gemm_6x16_avx512(K, u, v + (size_t) t * K, m + t, ldm);
        else gemm_6x16(K, u, v + (size_t) t * K, m + t, ldm);
    }
}

#endif
