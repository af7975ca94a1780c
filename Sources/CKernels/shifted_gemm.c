#include "f2a_kernels.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

/* C[r][j] = sum over shifts s < 4 and depth d < depth of A(r, s, d) * B[d][j + off[s]]:
 * four GEMMs over shifted views of one matrix, summed, in one pass.
 *
 * The PatchGAN's 4x4 stride-2 layers are this over the phases of their input (forward)
 * and over their output gradient (input gradient); see the trainer's PhaseConvolution.
 * Through BLAS they were four GEMMs per chunk of 512 columns, each packing both operands
 * again and reading and writing the output chunk again (beta 1). Here A is packed once
 * per call, each slice of B's rows (its shifted views are address offsets) once per 48
 * columns, and the output is written once.
 *
 * The register block: 8 rows x 48 columns, 24 accumulators; per depth step 3 vector
 * loads of B and 8 broadcasts of A for 24 FMAs. A is packed [row block][s][d][8] (rows
 * past the last zero). One work item is a 48-column block over all rows (run_block).
 *
 * 16 images, the GEMMs alone, median of 31 alternating with the BLAS ones (ms): 6 -> 32
 * channels at 128^2 3.7 -> 3.0, 32 -> 64 at 64^2 6.0 -> 5.5, 64 -> 128 at 32^2 6.6 -> 5.2.
 * Reading B in place instead, in the same slices: 7.3-13 ms for the second. Its rows lie a
 * page apart and 64 bytes further in L1's sets each: probably the DTLB then, and for the
 * first layer, whose 96 rows of all four shifts ran at half speed, L1's ways.
 *
 * Each C element is summed over s, then d, in that order, whatever the threads. */

#define ROWS 8
#define COLS 48
#define DEPTH_SLICE 64

struct job {
    const float *b;
    size_t ldb;
    int depth, n, rows;
    ptrdiff_t off[4];
    const float *u; /* packed A: [rows / ROWS rounded up][4][depth][ROWS] */
    float *c;
    size_t ldc;
    float *scratch; /* per thread: a slice of B, [DEPTH_SLICE][COLS], then the block's sums, [rows][COLS] */
    size_t scratch_floats;
};

/* acc[r][p] += u[d][r] * b[d][16 p] for d < count (u: packed A from the slice's first row
 * on; b: the slice packed, [count][48]). */
__attribute__((target("avx512f"), always_inline))
static inline void accumulate(__m512 acc[ROWS][3], const float *u, const float *b, int count) {
    for (int d = 0; d < count; d++, u += ROWS, b += COLS) {
        const __m512 v0 = _mm512_load_ps(b), v1 = _mm512_load_ps(b + 16), v2 = _mm512_load_ps(b + 32);
        for (int r = 0; r < ROWS; r++) {
            const __m512 w = _mm512_set1_ps(u[r]);
            acc[r][0] = _mm512_fmadd_ps(w, v0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(w, v1, acc[r][1]);
            acc[r][2] = _mm512_fmadd_ps(w, v2, acc[r][2]);
        }
    }
}

/* One 48-column block over all rows, shift by shift, the depth in slices of DEPTH_SLICE
 * rows of B. Each slice is first copied to the thread's bp ([count][48], 12 KB: in L1 for
 * every row block, one page), the block's partial sums kept in its cp ([rows][48]) between
 * slices and stored to c at the end: B's and c's rows are each on a page of their own. */
__attribute__((target("avx512f")))
static void run_block(void *ctx, int item, int thread) {
    const struct job *j = ctx;
    const int j0 = item * COLS, depth = j->depth, left = j->n - j0;
    /* Lanes of the three panels inside [0, n): all of them but in the last block. */
    __mmask16 m[3];
    for (int p = 0; p < 3; p++) {
        const int l = left - 16 * p;
        m[p] = l >= 16 ? (__mmask16) 0xFFFF : l <= 0 ? (__mmask16) 0 : (__mmask16) ((1u << l) - 1);
    }
    const int blocks = (j->rows + ROWS - 1) / ROWS;
    const size_t ldb = j->ldb;
    float *bp = j->scratch + (size_t) thread * j->scratch_floats, *cp = bp + DEPTH_SLICE * COLS;
    /* The depth of all four shifts in order, t = s * depth + d, in equal slices. */
    const int total = 4 * depth, slices = (total + DEPTH_SLICE - 1) / DEPTH_SLICE;
    for (int sl = 0; sl < slices; sl++) {
        const int t0 = total * sl / slices, t1 = total * (sl + 1) / slices;
        /* Masked-off lanes are not read: past n the shifted columns may leave B. */
        for (int t = t0; t < t1; t++) {
            const float *b = j->b + j->off[t / depth] + j0 + (size_t) (t % depth) * ldb;
            for (int p = 0; p < 3; p++) _mm512_store_ps(bp + (t - t0) * COLS + 16 * p, _mm512_maskz_loadu_ps(m[p], b + 16 * p));
        }
        for (int rb = 0; rb < blocks; rb++) {
            float *c = cp + (size_t) rb * ROWS * COLS;
            __m512 acc[ROWS][3];
            for (int r = 0; r < ROWS; r++)
                for (int p = 0; p < 3; p++) acc[r][p] = sl == 0 ? _mm512_setzero_ps() : _mm512_load_ps(c + r * COLS + 16 * p);
            accumulate(acc, j->u + ((size_t) rb * total + t0) * ROWS, bp, t1 - t0);
            for (int r = 0; r < ROWS; r++)
                for (int p = 0; p < 3; p++) _mm512_store_ps(c + r * COLS + 16 * p, acc[r][p]);
        }
    }
    for (int r = 0; r < j->rows; r++)
        for (int p = 0; p < 3; p++)
            _mm512_mask_storeu_ps(j->c + (size_t) r * j->ldc + j0 + 16 * p, m[p], _mm512_load_ps(cp + r * COLS + 16 * p));
}

int f2a_shifted_gemm(const float *a, ptrdiff_t a_row, ptrdiff_t a_shift, ptrdiff_t a_depth, int rows, int depth,
                     const float *b, size_t ldb, const ptrdiff_t off[4], int n, float *c, size_t ldc, int threads) {
    if (!f2a_kernels_avx512()) return -1;
    if (rows <= 0 || n <= 0) return 0;
    if (depth <= 0) {
        for (int r = 0; r < rows; r++) memset(c + (size_t) r * ldc, 0, (size_t) n * sizeof(float));
        return 0;
    }
    if (threads < 1) threads = 1;
    const int blocks = (rows + ROWS - 1) / ROWS;
    float *u = aligned_alloc(64, ((size_t) blocks * 4 * depth * ROWS * sizeof(float) + 63) / 64 * 64);
    if (!u) return -2;
    for (int rb = 0; rb < blocks; rb++)
        for (int s = 0; s < 4; s++)
            for (int d = 0; d < depth; d++) {
                float *dst = u + (((size_t) rb * 4 + s) * depth + d) * ROWS;
                for (int r = 0; r < ROWS; r++) {
                    const int row = rb * ROWS + r;
                    dst[r] = row < rows ? a[(ptrdiff_t) row * a_row + s * a_shift + d * a_depth] : 0.0f;
                }
            }
    const size_t scratch_floats = (size_t) (DEPTH_SLICE + blocks * ROWS) * COLS;
    float *scratch = aligned_alloc(64, (size_t) threads * scratch_floats * sizeof(float));
    if (!scratch) { free(u); return -2; }
    struct job j = { b, ldb, depth, n, rows, { off[0], off[1], off[2], off[3] }, u, c, ldc, scratch, scratch_floats };
    f2a_parallel(run_block, &j, (n + COLS - 1) / COLS, threads);
    free(u);
    free(scratch);
    return 0;
}
