#include "f2a_kernels.h"
#include "microkernel.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

/* Weight gradient of a 3x3 convolution (stride 1, zero padding 1), computed directly:
 *
 *     dW[co][ci][ky][kx] += sum over images b, pixels (y, x) of
 *                           dY[b][co][y][x] * X[b][ci][y + ky - 1][x + kx - 1]
 *
 * The trainer used to lower X to a column matrix (9 times its size) and run one GEMM of
 * [cout x pixels] x [pixels x 9 cin] per image. For the narrow full-resolution layers
 * (8-16 channels at 128^2) that GEMM is [8 x 16384] x [16384 x 72]: too few rows and
 * columns for OpenBLAS to reach more than 15-30 GFLOP/s, after writing and reading a
 * 9x copy of the input.
 *
 * The register block: 8 output channels x 3 kernel columns, 24 accumulators of 16
 * pixels; per 16 pixels 3 shifted input vectors and 8 dY vectors are loaded for 24
 * FMAs (accumulate_row). A block of fewer than 8 output channels stages its last one's
 * rows again for the missing ones (their sums are dropped): no branch in the loop.
 *
 * The loads: the kernel used to read both planes in place with masked loads, and masked
 * loads that straddle a cache line - the input shifted by a column always does, and so
 * does everything in Swift arrays, whose elements start 32 or 48 bytes into a line - held
 * it at ~200 GFLOP/s on 2 threads, whatever its blocking or bands (all data in L1 too).
 * Now each band's dY rows are copied to aligned rows (read 3 x 8 times each there), and
 * the input is read in place with plain loads. Best of 5 on 2 threads, 8 images, arrays 32
 * bytes off a line, masked / these, GFLOP/s: 16 -> 16 at 128^2 193 / 253, 32 -> 32 at 64^2
 * 198 / 245, 32 -> 64 at 32^2 205 / 219, 64 -> 64 at 128^2 188 / 244, 3 -> 16 at 128^2
 * 181 / 206. Aligning the input too (a copy per input row) measured slower: 229, 232, 227,
 * 221, 189; with both arrays 64-byte aligned, and no copies, 280, 276, 247, 273, 245.
 *
 * The reuse: one work item is a block of 8 output channels x 8 input channels (16 from
 * 32 input channels on) over a share of the images. It walks the images in bands of rows
 * whose 8 dY rows fit in L1 (32 KB), and runs every (input channel, kernel row) of its
 * block over the band, the block's accumulators (24 vectors per input channel and kernel
 * row) parked in a per-thread buffer between them. So dY is staged once per block of
 * input channels; a first version that streamed it once per (input channel, kernel row)
 * was bound by memory at 75-94 GFLOP/s. Blocks of 16 against 8, the width-0.25
 * generator's layers of 32 and more input channels (8 images), medians of 21
 * alternating in one process: 37.7 -> 34.8 ms in all, the same gradients.
 *
 * Items write disjoint parts of a per-share partial gradient, summed into dW share by
 * share at the end: no races, and for a given share count the same order of sums.
 *
 * The bias gradient is the sum of each dY plane: the items of the first input-channel
 * block add up each band's rows right after staging them (a pass of its own read ~50 MB
 * of dY per step of the width-0.25 generator). The plane's 16-float chunks in 16 float
 * lanes, the lanes then added in double and the tail after them: the order, and so the
 * bits, of the trainer's laneSum (plain C: each lane is a sequence of float adds, whatever
 * the vector width the compiler picks).
 *
 * CPUs without AVX-512 (the AMD Zen 3 class the project targets) run the same items with
 * AVX2 blocks (band_avx2): the trainer used to lower these layers to im2col + OpenBLAS
 * there, at 20-56 GFLOP/s in the step. Side by side on the AVX-512 Xeon, 8 images, 2
 * threads, a busy host (medians of 11, GFLOP/s, AVX-512 / AVX2 blocks): 16 -> 16 at 128^2
 * 116 / 76, 32 -> 32 at 64^2 112 / 75, 32 -> 16 at 128^2 129 / 83, 64 -> 32 at 64^2
 * 112 / 73 - two thirds, at half the vector width. The width-0.25 + PatchGAN step with
 * F2A_AVX512=0 and OpenBLAS's Haswell kernels: 653-682 -> 587-609 ms. */

#define CO_BLOCK 8
#define CI_BLOCK_MAX 16
#define ACC_VECTORS (CI_BLOCK_MAX * 3 * CO_BLOCK * 3)
#define SLOT 16 /* floats per accumulator slot: one AVX-512 vector, or an AVX2 one in its first half */

struct job {
    const float *x, *x2, *dy; /* the input: channels 0..<c1 of x, c1..<cin of x2 */
    int n, c1, cin, cout, h, w;
    int wp;                   /* w rounded up to 16 */
    int ci_block;             /* input channels per item: CI_BLOCK_MAX from 32 on, else 8 */
    int co_blocks, ci_blocks, shares, band;
    float *partial;           /* [shares][cout][cin][3][3] */
    double *plane_sums;       /* NULL or [n][cout] */
    int wide;                 /* f2a_kernels_avx512(): the AVX-512 blocks, else the AVX2 ones */
    float *acc;               /* per thread: ACC_VECTORS slots of SLOT floats, 64-byte aligned */
    float *stage;             /* per thread: stage_floats (stage_dy_floats) */
    __mmask16 *masks;         /* AVX-512, per 16-pixel vector v: the lanes in the row from x0 - 1, x0, x0 + 1 */
    int *masks8;              /* AVX2, per 8-pixel vector v and shift k: 8 lanes, -1 where column x0 + k - 1 + lane is in the row */
    size_t stage_floats;
};

/* A thread's staging of a band's dY rows for one block, [CO_BLOCK][band][wp]: every row 64-byte
 * aligned, zeros past w. */
static inline size_t stage_dy_floats(int band, int wp) { return (size_t) CO_BLOCK * band * wp; }

/* r[c][kx] += dY[c] * X shifted by kx - 1 for one 16-pixel vector (x0v, x1v, x2v: X at
 * columns x0 - 1, x0, x0 + 1; d: the staged, aligned dY rows, dstride apart). */
__attribute__((target("avx512f"), always_inline))
static inline void accumulate(__m512 r[CO_BLOCK][3], __m512 x0v, __m512 x1v, __m512 x2v, const float *d, size_t dstride) {
    for (int c = 0; c < CO_BLOCK; c++) {
        const __m512 g = _mm512_load_ps(d + c * dstride);
        r[c][0] = _mm512_fmadd_ps(g, x0v, r[c][0]);
        r[c][1] = _mm512_fmadd_ps(g, x1v, r[c][1]);
        r[c][2] = _mm512_fmadd_ps(g, x2v, r[c][2]);
    }
}

/* One input row against the staged dY rows of its output row. Rows of a multiple of 16
 * pixels (every trainer shape) take plain loads, the zero padding left and right of the
 * row shifted in with valignd on the first and last vector; other widths a mask per shift
 * (masked-off lanes are not read, so their addresses may lie outside the plane). */
__attribute__((target("avx512f"), always_inline))
static inline void accumulate_row(__m512 r[CO_BLOCK][3], const float *xr, const float *dr, int w, size_t dstride,
                                  const __mmask16 *masks) {
    const int vec = (w + 15) / 16;
    if (w % 16 == 0) {
        const __m512i zero = _mm512_setzero_si512();
        const int last = 16 * (vec - 1);
        __m512 x1v = _mm512_loadu_ps(xr);
        const __m512 x0v = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(x1v), zero, 15));
        if (vec == 1) {
            accumulate(r, x0v, x1v, _mm512_castsi512_ps(_mm512_alignr_epi32(zero, _mm512_castps_si512(x1v), 1)), dr, dstride);
            return;
        }
        accumulate(r, x0v, x1v, _mm512_loadu_ps(xr + 1), dr, dstride);
        for (int x0 = 16; x0 < last; x0 += 16)
            accumulate(r, _mm512_loadu_ps(xr + x0 - 1), _mm512_loadu_ps(xr + x0), _mm512_loadu_ps(xr + x0 + 1), dr + x0, dstride);
        x1v = _mm512_loadu_ps(xr + last);
        accumulate(r, _mm512_loadu_ps(xr + last - 1), x1v,
                   _mm512_castsi512_ps(_mm512_alignr_epi32(zero, _mm512_castps_si512(x1v), 1)), dr + last, dstride);
        return;
    }
    for (int v = 0; v < vec; v++) {
        const int x0 = 16 * v;
        const __mmask16 *mv = masks + 3 * v;
        accumulate(r, _mm512_maskz_loadu_ps(mv[0], xr + x0 - 1), _mm512_maskz_loadu_ps(mv[1], xr + x0),
                   _mm512_maskz_loadu_ps(mv[2], xr + x0 + 1), dr + x0, dstride);
    }
}

/* The accumulators of one input channel and kernel row (`a`: CO_BLOCK x 3 slots) += the
 * band's rows y0 ..< y1 of the input plane against the staged dY rows (`ds`). */
__attribute__((target("avx512f")))
static void band_avx512(const struct job *j, float *a, const float *xplane, const float *ds, int y0, int y1, int ky) {
    const size_t dstride = (size_t) j->band * j->wp;
    __m512 r[CO_BLOCK][3];
    for (int c = 0; c < CO_BLOCK; c++)
        for (int k = 0; k < 3; k++) r[c][k] = _mm512_load_ps(a + (c * 3 + k) * SLOT);
    for (int y = y0; y < y1; y++) {
        const int sy = y + ky - 1;
        if (sy < 0 || sy >= j->h) continue;
        accumulate_row(r, xplane + (size_t) sy * j->w, ds + (size_t) (y - y0) * j->wp, j->w, dstride, j->masks);
    }
    for (int c = 0; c < CO_BLOCK; c++)
        for (int k = 0; k < 3; k++) _mm512_store_ps(a + (c * 3 + k) * SLOT, r[c][k]);
}

/* The same with AVX2's 16 registers: 8-pixel vectors, and the block's output channels in
 * two halves of 4 (12 accumulators, 3 shifted inputs and one dY vector), each over the
 * whole band, so the input rows are read twice (from L1). Vectors whose shifted reads
 * stay inside the row take plain loads, the ones at its ends masked loads (masked-off
 * lanes are not read: the row's neighbours or the plane's end). */
__attribute__((target("avx2,fma")))
static void band_avx2(const struct job *j, float *a, const float *xplane, const float *ds, int y0, int y1, int ky) {
    const int w = j->w, vec = (w + 7) / 8;
    const size_t dstride = (size_t) j->band * j->wp;
    for (int half = 0; half < 2; half++) {
        float *ah = a + half * 4 * 3 * SLOT;
        const float *dh = ds + half * 4 * dstride;
        __m256 r[4][3];
        for (int c = 0; c < 4; c++)
            for (int k = 0; k < 3; k++) r[c][k] = _mm256_load_ps(ah + (c * 3 + k) * SLOT);
        for (int y = y0; y < y1; y++) {
            const int sy = y + ky - 1;
            if (sy < 0 || sy >= j->h) continue;
            const float *xr = xplane + (size_t) sy * w, *dr = dh + (size_t) (y - y0) * j->wp;
            for (int v = 0; v < vec; v++) {
                const int x0 = 8 * v;
                __m256 xv[3];
                if (x0 >= 1 && x0 + 9 <= w) {
                    for (int k = 0; k < 3; k++) xv[k] = _mm256_loadu_ps(xr + x0 + k - 1);
                } else {
                    const int *m = j->masks8 + (size_t) (3 * v) * 8;
                    for (int k = 0; k < 3; k++)
                        xv[k] = _mm256_maskload_ps(xr + x0 + k - 1, _mm256_loadu_si256((const __m256i *) (m + 8 * k)));
                }
                for (int c = 0; c < 4; c++) {
                    const __m256 g = _mm256_load_ps(dr + c * dstride + x0);
                    for (int k = 0; k < 3; k++) r[c][k] = _mm256_fmadd_ps(g, xv[k], r[c][k]);
                }
            }
        }
        for (int c = 0; c < 4; c++)
            for (int k = 0; k < 3; k++) _mm256_store_ps(ah + (c * 3 + k) * SLOT, r[c][k]);
    }
}

/* The sum of an accumulator slot's lanes. */
__attribute__((target("avx512f")))
static float slot_sum_avx512(const float *slot) { return _mm512_reduce_add_ps(_mm512_load_ps(slot)); }

__attribute__((target("avx2,fma")))
static float slot_sum_avx2(const float *slot) { return sum8(_mm256_load_ps(slot)); }

static void run_item(void *ctx, int item, int thread) {
    const struct job *j = ctx;
    const int share = item % j->shares, gb = item / j->shares % j->ci_blocks, cb = item / j->shares / j->ci_blocks;
    const int w = j->w, wp = j->wp, h = j->h, hw = h * w, band = j->band;
    const int co0 = cb * CO_BLOCK, nco = j->cout - co0 < CO_BLOCK ? j->cout - co0 : CO_BLOCK;
    const int ci0 = gb * j->ci_block, nci = j->cin - ci0 < j->ci_block ? j->cin - ci0 : j->ci_block;
    const int b0 = j->n * share / j->shares, b1 = j->n * (share + 1) / j->shares;
    const size_t dstride = (size_t) band * wp;
    float *acc = j->acc + (size_t) thread * ACC_VECTORS * SLOT;
    float *ds = j->stage + (size_t) thread * j->stage_floats;
    const int sums = j->plane_sums != NULL && gb == 0;
    memset(acc, 0, (size_t) nci * 3 * CO_BLOCK * 3 * SLOT * sizeof(float));
    for (int b = b0; b < b1; b++) {
        float lanes[CO_BLOCK][16];
        memset(lanes, 0, sizeof lanes);
        size_t pos = 0; /* the plane's elements before this are in lanes */
        for (int y0 = 0; y0 < h; y0 += band) {
            const int y1 = y0 + band < h ? y0 + band : h;
            /* Output channels past the block's last repeat it; their sums are dropped. */
            for (int c = 0; c < CO_BLOCK; c++) {
                const float *src = j->dy + ((size_t) b * j->cout + co0 + (c < nco ? c : nco - 1)) * hw;
                for (int y = y0; y < y1; y++) {
                    float *row = ds + c * dstride + (size_t) (y - y0) * wp;
                    memcpy(row, src + (size_t) y * w, (size_t) w * sizeof(float));
                    memset(row + w, 0, (size_t) (wp - w) * sizeof(float));
                }
                /* The plane's 16-float chunks that end in this band (just read: in cache). */
                if (sums && c < nco)
                    for (size_t p = pos; p + 16 <= (size_t) y1 * w; p += 16)
                        for (int l = 0; l < 16; l++) lanes[c][l] += src[p + l];
            }
            while (sums && pos + 16 <= (size_t) y1 * w) pos += 16;
            for (int ci = 0; ci < nci; ci++) {
                const int ch = ci0 + ci;
                const float *xplane = ch < j->c1 ? j->x + ((size_t) b * j->c1 + ch) * hw
                                                 : j->x2 + ((size_t) b * (j->cin - j->c1) + ch - j->c1) * hw;
                for (int ky = 0; ky < 3; ky++) {
                    float *a = acc + (size_t) (ci * 3 + ky) * CO_BLOCK * 3 * SLOT;
                    if (j->wide) band_avx512(j, a, xplane, ds, y0, y1, ky);
                    else band_avx2(j, a, xplane, ds, y0, y1, ky);
                }
            }
        }
        for (int c = 0; sums && c < nco; c++) {
            const float *src = j->dy + ((size_t) b * j->cout + co0 + c) * hw;
            double sum = 0;
            for (int i = 0; i < 16; i++) sum += lanes[c][i];
            for (size_t p = pos; p < (size_t) hw; p++) sum += src[p];
            j->plane_sums[(size_t) b * j->cout + co0 + c] = sum;
        }
    }
    float *part = j->partial + (size_t) share * j->cout * j->cin * 9;
    for (int ci = 0; ci < nci; ci++)
        for (int ky = 0; ky < 3; ky++)
            for (int c = 0; c < nco; c++)
                for (int kx = 0; kx < 3; kx++) {
                    const float *slot = acc + (size_t) (((ci * 3 + ky) * CO_BLOCK + c) * 3 + kx) * SLOT;
                    part[(((size_t) (co0 + c) * j->cin + ci0 + ci) * 3 + ky) * 3 + kx] =
                        j->wide ? slot_sum_avx512(slot) : slot_sum_avx2(slot);
                }
}

int f2a_conv3x3_weight_grad(const float *x, int c1, const float *x2, const float *dy, int n, int cin, int cout,
                            int height, int width, float *dw, double *plane_sums, int threads) {
    const int wide = f2a_kernels_avx512();
    if (!wide && !f2a_kernels_available()) return -1;
    if (n <= 0 || cin <= 0 || cout <= 0 || height <= 0 || width <= 0) return 0;
    if (c1 < 0 || c1 > cin || (c1 < cin && !x2)) return -3;
    if (threads < 1) threads = 1;
    if (threads > 16) threads = 16;
    struct job j = { .x = x, .x2 = x2, .dy = dy, .n = n, .c1 = c1, .cin = cin, .cout = cout, .h = height, .w = width,
                     .wp = (width + 15) / 16 * 16, .ci_block = cin >= 32 ? CI_BLOCK_MAX : 8,
                     .co_blocks = (cout + CO_BLOCK - 1) / CO_BLOCK, .plane_sums = plane_sums, .wide = wide };
    j.ci_blocks = (cin + j.ci_block - 1) / j.ci_block;
    /* Enough items for every thread twice over: split the images into shares when the
     * channel blocks alone are too few (the narrow layers). */
    int blocks = j.co_blocks * j.ci_blocks;
    j.shares = (2 * threads + blocks - 1) / blocks;
    if (j.shares > n) j.shares = n;
    /* The band's 8 dY rows fill at most 32 KB of L1. */
    j.band = 1024 / j.wp > 1 ? 1024 / j.wp : 1;
    j.stage_floats = stage_dy_floats(j.band, j.wp); /* whole cache lines: no two threads share one */
    size_t wsize = (size_t) j.shares * cout * cin * 9;
    j.partial = malloc(wsize * sizeof(float));
    j.acc = aligned_alloc(64, (size_t) threads * ACC_VECTORS * SLOT * sizeof(float));
    j.stage = aligned_alloc(64, (size_t) threads * j.stage_floats * sizeof(float));
    int vec = (width + 15) / 16, vec8 = (width + 7) / 8;
    j.masks = malloc((size_t) vec * 3 * sizeof(__mmask16));
    j.masks8 = malloc((size_t) vec8 * 3 * 8 * sizeof(int));
    if (!j.partial || !j.acc || !j.stage || !j.masks || !j.masks8) {
        free(j.partial); free(j.acc); free(j.stage); free(j.masks); free(j.masks8);
        return -2;
    }
    for (int v = 0; v < vec; v++)
        for (int k = 0; k < 3; k++) j.masks[3 * v + k] = cols_in(16 * v + k - 1, width);
    for (int v = 0; v < vec8; v++)
        for (int k = 0; k < 3; k++)
            for (int l = 0; l < 8; l++) {
                const int col = 8 * v + k - 1 + l;
                j.masks8[(3 * v + k) * 8 + l] = col >= 0 && col < width ? -1 : 0;
            }
    f2a_parallel(run_item, &j, blocks * j.shares, threads);
    size_t per = (size_t) cout * cin * 9;
    for (int s = 0; s < j.shares; s++)
        for (size_t i = 0; i < per; i++) dw[i] += j.partial[s * per + i];
    free(j.partial);
    free(j.acc);
    free(j.stage);
    free(j.masks);
    free(j.masks8);
    return 0;
}
