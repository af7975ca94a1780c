#include "f2a_kernels.h"
#include "microkernel.h"

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
 * Each C element is summed over s, then d, in that order, whatever the threads.
 *
 * Without AVX-512 (run_block_avx2) the same items and slices run a 6 x 16 block, 12
 * accumulators in AVX2's 16 registers, three of them across a 48-column item; each element
 * is summed in the same order, so the bits are the same. Side by side with OpenBLAS's
 * Haswell kernels doing the four GEMMs over all columns (16 images, 2 threads, medians of
 * 11, ms, two runs): 6 -> 32 channels at 128^2 4.1 / 3.7 against 6.2 / 4.8, 32 -> 64 at
 * 64^2 8.2 / 7.9 against 8.1 / 8.3, 64 -> 128 at 32^2 8.7 / 8.2 against 9.8 / 8.3 (the
 * AVX-512 blocks: 2.5, 5.5, 5.1). */

#define ROWS 8
#define COLS 48
#define DEPTH_SLICE 64
#define ROWS_AVX2 6 /* the AVX2 block: 6 rows x 16 columns, 12 accumulators (gemm_6x16's) */

struct job {
    const float *b;
    size_t ldb;
    int depth, n, rows;
    ptrdiff_t off[4];
    const float *u; /* packed A: [row blocks][4][depth][block rows], ROWS (run_block) or ROWS_AVX2 (run_block_avx2) */
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
    for (int p = 0; p < 3; p++) m[p] = cols_in(16 * p, left);
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

/* acc[r][p] += u[d][r] * b[d][8 p] for d < count, the AVX2 block (b: the slice packed,
 * [count][48], from one of its three 16-column blocks on). */
__attribute__((target("avx2,fma"), always_inline))
static inline void accumulate_avx2(__m256 acc[ROWS_AVX2][2], const float *u, const float *b, int count) {
    for (int d = 0; d < count; d++, u += ROWS_AVX2, b += COLS) {
        const __m256 v0 = _mm256_load_ps(b), v1 = _mm256_load_ps(b + 8);
        for (int r = 0; r < ROWS_AVX2; r++) {
            const __m256 w = _mm256_broadcast_ss(u + r);
            acc[r][0] = _mm256_fmadd_ps(w, v0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(w, v1, acc[r][1]);
        }
    }
}

/* run_block on CPUs without AVX-512: the same slices and partial sums, each 48-column
 * block run as three 16-column ones by the 6 x 16 register block. */
__attribute__((target("avx2,fma")))
static void run_block_avx2(void *ctx, int item, int thread) {
    const struct job *j = ctx;
    const int j0 = item * COLS, depth = j->depth, left = j->n - j0 < COLS ? j->n - j0 : COLS;
    const int blocks = (j->rows + ROWS_AVX2 - 1) / ROWS_AVX2;
    const size_t ldb = j->ldb;
    float *bp = j->scratch + (size_t) thread * j->scratch_floats, *cp = bp + DEPTH_SLICE * COLS;
    const int total = 4 * depth, slices = (total + DEPTH_SLICE - 1) / DEPTH_SLICE;
    for (int sl = 0; sl < slices; sl++) {
        const int t0 = total * sl / slices, t1 = total * (sl + 1) / slices;
        /* Columns past n are not read: past n the shifted columns may leave B. */
        for (int t = t0; t < t1; t++) {
            const float *b = j->b + j->off[t / depth] + j0 + (size_t) (t % depth) * ldb;
            float *d = bp + (t - t0) * COLS;
            if (left == COLS) {
                for (int p = 0; p < COLS / 8; p++) _mm256_store_ps(d + 8 * p, _mm256_loadu_ps(b + 8 * p));
            } else {
                for (int x = 0; x < COLS; x++) d[x] = x < left ? b[x] : 0.0f;
            }
        }
        for (int rb = 0; rb < blocks; rb++)
            for (int cb = 0; cb < COLS / 16; cb++) {
                float *c = cp + (size_t) rb * ROWS_AVX2 * COLS + 16 * cb;
                __m256 acc[ROWS_AVX2][2];
                for (int r = 0; r < ROWS_AVX2; r++)
                    for (int p = 0; p < 2; p++) acc[r][p] = sl == 0 ? _mm256_setzero_ps() : _mm256_load_ps(c + r * COLS + 8 * p);
                accumulate_avx2(acc, j->u + ((size_t) rb * total + t0) * ROWS_AVX2, bp + 16 * cb, t1 - t0);
                for (int r = 0; r < ROWS_AVX2; r++)
                    for (int p = 0; p < 2; p++) _mm256_store_ps(c + r * COLS + 8 * p, acc[r][p]);
            }
    }
    for (int r = 0; r < j->rows; r++) memcpy(j->c + (size_t) r * j->ldc + j0, cp + r * COLS, (size_t) left * sizeof(float));
}

int f2a_shifted_gemm(const float *a, ptrdiff_t a_row, ptrdiff_t a_shift, ptrdiff_t a_depth, int rows, int depth,
                     const float *b, size_t ldb, const ptrdiff_t off[4], int n, float *c, size_t ldc, int threads) {
    const int wide = f2a_kernels_avx512();
    if (!wide && !f2a_kernels_available()) return -1;
    if (rows <= 0 || n <= 0) return 0;
    if (depth <= 0) {
        for (int r = 0; r < rows; r++) memset(c + (size_t) r * ldc, 0, (size_t) n * sizeof(float));
        return 0;
    }
    if (threads < 1) threads = 1;
    const int br = wide ? ROWS : ROWS_AVX2, blocks = (rows + br - 1) / br;
    float *u = aligned_alloc(64, ((size_t) blocks * 4 * depth * br * sizeof(float) + 63) / 64 * 64);
    if (!u) return -2;
    for (int rb = 0; rb < blocks; rb++)
        for (int s = 0; s < 4; s++)
            for (int d = 0; d < depth; d++) {
                float *dst = u + (((size_t) rb * 4 + s) * depth + d) * br;
                for (int r = 0; r < br; r++) {
                    const int row = rb * br + r;
                    dst[r] = row < rows ? a[(ptrdiff_t) row * a_row + s * a_shift + d * a_depth] : 0.0f;
                }
            }
    const size_t scratch_floats = (size_t) (DEPTH_SLICE + blocks * br) * COLS;
    float *scratch = aligned_alloc(64, (size_t) threads * scratch_floats * sizeof(float));
    if (!scratch) { free(u); return -2; }
    struct job j = { b, ldb, depth, n, rows, { off[0], off[1], off[2], off[3] }, u, c, ldc, scratch, scratch_floats };
    f2a_parallel(wide ? run_block : run_block_avx2, &j, (n + COLS - 1) / COLS, threads);
    free(u);
    free(scratch);
    return 0;
}

/* The weight gradient of the same layers: four GEMMs against shifted views of one matrix,
 *
 *   c[r][s * depth + d] = sum over j < n of a[r * lda + j] * b[d * ldb + j + off[s]],
 *
 * (dY on the phase grid against the phases P, each shift a tap group's gradient). Through
 * OpenBLAS these were four NT GEMMs per chunk of columns, each packing its dY chunk and its
 * shifted P chunk again (113-154 GFLOP/s in the step). Here a chunk of dY is packed once,
 * [rows / 8][chunk][8], and P's chunk once, transposed into [depth / 48][chunk + halo][48]
 * (the halo: the largest offset), so that a shift is an offset of whole 48-float rows; then
 * `accumulate`'s 8 x 48 block runs on it for every shift. The columns are cut into a fixed
 * number of slices, each summing into a partial of its own (added in slice order at the end):
 * the sums do not depend on the threads.
 *
 * A depth of 16 to 24 (the first layer's 4 x 6 phase rows) would leave half of every
 * 48-column block zeros. There the shifts go in pairs: row x of the packed chunk holds
 * b's column j0 + x in its first `depth` floats and column j0 + x + off[1] - off[0] after
 * them, so that one block at row offset off[0] gives shifts 0 and 1 and one at off[2]
 * shifts 2 and 3 (off[3] - off[2] = off[1] - off[0], as on the phase grid). The PatchGAN's
 * first layer (16 images, 6 -> 32 channels at 128^2) took OpenBLAS's GEMMs, which beat this
 * kernel padded to 48; paired, f2a-train bench --layers, D.conv0 x16 backward, 3
 * alternations: 5.3-5.5 -> 3.5-4.9 ms. */

#define WG_CHUNK 256

struct wg_job {
    const float *a, *b;
    size_t lda, ldb;
    ptrdiff_t off[4], halo;
    int rows, depth, n, slices, rowsp, depthp; /* rowsp, depthp: rounded up to 8 and 48 */
    int paired;                                /* shifts in pairs (see above); depthp is then 48 */
    float *partial;                            /* [slices][rowsp][4][depthp], paired [slices][rowsp][2][48] */
    float *scratch;                            /* per thread: scratch_floats */
    size_t scratch_floats;
};

/* c[r][p] (ROWS rows ldc apart, 48 columns) = its sums so far (none if `fresh`) plus
 * accumulate's over `count` columns of packed u and b. */
__attribute__((target("avx512f"), always_inline))
static inline void accumulate_into(float *c, size_t ldc, int fresh, const float *u, const float *b, int count) {
    __m512 acc[ROWS][3];
    for (int r = 0; r < ROWS; r++)
        for (int p = 0; p < 3; p++) acc[r][p] = fresh ? _mm512_setzero_ps() : _mm512_loadu_ps(c + r * ldc + 16 * p);
    accumulate(acc, u, b, count);
    for (int r = 0; r < ROWS; r++)
        for (int p = 0; p < 3; p++) _mm512_storeu_ps(c + r * ldc + 16 * p, acc[r][p]);
}

/* a's rows r < rowsp, columns j0 ..< j0 + count, into up ([rowsp / 8][WG_CHUNK][8], rows
 * past `rows` zero). Whole groups of 16 rows go 16 columns at a time through transpose16,
 * each transposed row's halves to their two blocks. One element at a time it cost about
 * as much as the first layer's accumulation (32 rows: 4 blocks per column): 16 images,
 * 2 threads, medians of 31 alternating, element by element / this, ms: 32 rows x 24 deep
 * (paired) 2.56-2.65 / 2.10-2.14, 64 x 128 4.91-4.96 / 4.65-4.68, 128 x 256 4.96-5.03 /
 * 4.79-4.85; the same bits. */
__attribute__((target("avx512f")))
static void pack_rows(const struct wg_job *j, int j0, int count, float *up) {
    int r0 = 0;
    for (; r0 + 16 <= j->rows; r0 += 16) {
        float *lo = up + (size_t) (r0 / ROWS) * WG_CHUNK * ROWS, *hi = lo + (size_t) WG_CHUNK * ROWS;
        const float *src = j->a + (size_t) r0 * j->lda + j0;
        int x = 0;
        for (; x + 16 <= count; x += 16) {
            float t[16 * 16] __attribute__((aligned(64)));
            transpose16(src + x, j->lda, t, 16);
            for (int i = 0; i < 16; i++) {
                _mm256_storeu_ps(lo + (size_t) (x + i) * ROWS, _mm256_load_ps(t + 16 * i));
                _mm256_storeu_ps(hi + (size_t) (x + i) * ROWS, _mm256_load_ps(t + 16 * i + 8));
            }
        }
        for (; x < count; x++)
            for (int r = 0; r < 16; r++) (r < 8 ? lo : hi)[(size_t) x * ROWS + r % 8] = src[(size_t) r * j->lda + x];
    }
    for (int r = r0; r < j->rowsp; r++) {
        float *dst = up + ((size_t) (r / ROWS) * WG_CHUNK) * ROWS + r % ROWS;
        const float *src = j->a + (size_t) r * j->lda + j0;
        if (r < j->rows) for (int x = 0; x < count; x++) dst[(size_t) x * ROWS] = src[x];
        else for (int x = 0; x < count; x++) dst[(size_t) x * ROWS] = 0;
    }
}

/* The paired chunk: rows x < width of bp ([width][48]) get b's rows d < depth at column
 * j0 + x, then at column j0 + x + off[1] - off[0]; the floats after 2 depth are zeros. The
 * 16-row transposes start at row 0 and at depth - 16 (overlapping for a depth under 32:
 * the same values written twice). */
__attribute__((target("avx512f")))
static void pack_pairs(const struct wg_job *j, int j0, int width, float *bp) {
    const int depth = j->depth;
    const ptrdiff_t delta = j->off[1] - j->off[0];
    int x = 0;
    for (; x + 16 <= width; x += 16) {
        for (int h = 0; h < 2; h++) {
            const float *src = j->b + j0 + x + h * delta;
            transpose16(src, j->ldb, bp + (size_t) x * COLS + h * depth, COLS);
            transpose16(src + (size_t) (depth - 16) * j->ldb, j->ldb, bp + (size_t) x * COLS + h * depth + depth - 16, COLS);
        }
        for (int i = 0; i < 16; i++) memset(bp + (size_t) (x + i) * COLS + 2 * depth, 0, (size_t) (COLS - 2 * depth) * sizeof(float));
    }
    for (; x < width; x++) {
        float *row = bp + (size_t) x * COLS;
        for (int h = 0; h < 2; h++)
            for (int d = 0; d < depth; d++) row[h * depth + d] = j->b[(size_t) d * j->ldb + j0 + x + h * delta];
        memset(row + 2 * depth, 0, (size_t) (COLS - 2 * depth) * sizeof(float));
    }
}

__attribute__((target("avx512f")))
static void wg_slice(void *ctx, int slice, int thread) {
    const struct wg_job *j = ctx;
    const int rows = j->rows, depth = j->depth, rowsp = j->rowsp, depthp = j->depthp, halo = (int) j->halo;
    float *up = j->scratch + (size_t) thread * j->scratch_floats; /* a's chunk: [rowsp / 8][WG_CHUNK][8] */
    float *bp = up + (size_t) rowsp * WG_CHUNK;                   /* b's chunk: [depthp / 48][WG_CHUNK + halo][48] */
    float *part = j->partial + (size_t) slice * rowsp * 4 * depthp;
    const size_t bstride = (size_t) (WG_CHUNK + halo) * COLS;     /* floats per 48-row block of bp */
    const int first = (int) ((long) j->n * slice / j->slices), end = (int) ((long) j->n * (slice + 1) / j->slices);
    for (int j0 = first; j0 < end; j0 += WG_CHUNK) {
        const int count = end - j0 < WG_CHUNK ? end - j0 : WG_CHUNK, width = count + halo;
        pack_rows(j, j0, count, up);
        if (j->paired) {
            pack_pairs(j, j0, count + (int) j->off[2], bp);
            for (int rb = 0; rb < rowsp / ROWS; rb++)
                for (int pr = 0; pr < 2; pr++)
                    accumulate_into(part + ((size_t) rb * ROWS * 2 + pr) * COLS, 2 * COLS, j0 == first,
                                    up + (size_t) rb * WG_CHUNK * ROWS, bp + (size_t) j->off[2 * pr] * COLS, count);
            continue;
        }
        /* b's rows d, columns j0 ... j0 + width: every one exists (the caller's contract). */
        for (int d0 = 0; d0 < depthp; d0 += 16) {
            float *blk = bp + (size_t) (d0 / COLS) * bstride + d0 % COLS;
            int x = 0;
            if (d0 >= depth) {
                for (; x < width; x++) _mm512_storeu_ps(blk + (size_t) x * COLS, _mm512_setzero_ps());
                continue;
            }
            if (d0 + 16 <= depth)
                for (; x + 16 <= width; x += 16) transpose16(j->b + (size_t) d0 * j->ldb + j0 + x, j->ldb, blk + (size_t) x * COLS, COLS);
            for (; x < width; x++)
                for (int i = 0; i < 16; i++)
                    blk[(size_t) x * COLS + i] = d0 + i < depth ? j->b[(size_t) (d0 + i) * j->ldb + j0 + x] : 0;
        }
        for (int rb = 0; rb < rowsp / ROWS; rb++)
            for (int db = 0; db < depthp / COLS; db++)
                for (int s = 0; s < 4; s++)
                    accumulate_into(part + (((size_t) rb * ROWS) * 4 + s) * depthp + (size_t) db * COLS, (size_t) 4 * depthp,
                                    j0 == first, up + (size_t) rb * WG_CHUNK * ROWS,
                                    bp + (size_t) db * bstride + (size_t) j->off[s] * COLS, count);
    }
}

/* Row r of c: the slices' partials added in slice order. */
struct wg_sum {
    const struct wg_job *j;
    float *c;
    size_t ldc;
};

static void wg_sum_row(void *ctx, int r, int thread) {
    const struct wg_sum *w = ctx;
    const struct wg_job *j = w->j;
    const size_t per = (size_t) j->rowsp * 4 * j->depthp;
    (void) thread;
    for (int s = 0; s < 4; s++)
        for (int d = 0; d < j->depth; d++) {
            /* Paired: shift s is half s % 2 of pair s / 2. */
            const size_t at = j->paired ? ((size_t) r * 2 + s / 2) * COLS + (size_t) (s % 2) * j->depth + d
                                        : ((size_t) r * 4 + s) * j->depthp + d;
            float sum = 0;
            for (int sl = 0; sl < j->slices; sl++) sum += j->partial[sl * per + at];
            w->c[(size_t) r * w->ldc + (size_t) s * j->depth + d] = sum;
        }
}

int f2a_shifted_weight_grad(const float *a, size_t lda, const float *b, size_t ldb, const ptrdiff_t off[4], int rows,
                            int depth, int n, int slices, float *c, size_t ldc, int threads) {
    if (!f2a_kernels_avx512()) return -1;
    if (rows <= 0 || depth <= 0) return 0;
    if (threads < 1) threads = 1;
    if (slices < 1) slices = 1;
    struct wg_job j = { .a = a, .b = b, .lda = lda, .ldb = ldb, .rows = rows, .depth = depth, .n = n, .slices = slices,
                        .rowsp = (rows + ROWS - 1) / ROWS * ROWS, .depthp = (depth + COLS - 1) / COLS * COLS };
    j.halo = 0;
    for (int s = 0; s < 4; s++) { j.off[s] = off[s]; if (off[s] > j.halo) j.halo = off[s]; }
    j.paired = depth >= 16 && depth <= COLS / 2 && off[3] - off[2] == off[1] - off[0] && off[1] >= off[0] && off[2] >= off[0];
    /* Paired: [rowsp][2][48] per slice, which this size covers (depthp = 48: 4 x 48 >= 2 x 48). */
    const size_t per = (size_t) j.rowsp * 4 * j.depthp;
    j.scratch_floats = (size_t) j.rowsp * WG_CHUNK + (size_t) (j.depthp / COLS) * (WG_CHUNK + j.halo) * COLS;
    j.partial = malloc((size_t) slices * per * sizeof(float));
    /* 64-byte aligned, and so is every packed row: `accumulate` takes aligned loads. */
    j.scratch = aligned_alloc(64, ((size_t) threads * j.scratch_floats * sizeof(float) + 63) / 64 * 64);
    if (!j.partial || !j.scratch) { free(j.partial); free(j.scratch); return -2; }
    for (int sl = 0; sl < slices; sl++)
        if ((long) n * sl / slices == (long) n * (sl + 1) / slices) memset(j.partial + sl * per, 0, per * sizeof(float));
    f2a_parallel(wg_slice, &j, slices, threads);
    struct wg_sum w = { &j, c, ldc };
    f2a_parallel(wg_sum_row, &w, rows, threads);
    free(j.partial);
    free(j.scratch);
    return 0;
}
