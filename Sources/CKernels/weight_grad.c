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
 * FMAs. Masked loads give the padding and the right edge (masked-off lanes are not
 * read, so their addresses may lie outside the plane).
 *
 * The reuse: one work item is a block of 8 output channels x 8 input channels over a
 * share of the images. It walks the images in bands of rows whose 8 dY rows fit in L1
 * (32 KB), and runs every (input channel, kernel row) of its block over the band, the
 * block's 8 x 3 x 24 accumulators parked in a per-thread buffer between them. So dY
 * comes from memory once per 8 input channels; a first version that streamed it once
 * per (input channel, kernel row) was bound by memory at 75-94 GFLOP/s.
 *
 * Items write disjoint parts of a per-share partial gradient, summed into dW share by
 * share at the end: no races, and for a given share count the same order of sums. */

#define CO_BLOCK 8
#define CI_BLOCK 8
#define ACC_VECTORS (CI_BLOCK * 3 * CO_BLOCK * 3)

struct job {
    const float *x, *dy;
    int n, cin, cout, h, w;
    int co_blocks, ci_blocks, shares, band;
    float *partial;           /* [shares][cout][cin][3][3] */
    __m512 *acc;              /* per thread: ACC_VECTORS */
    __mmask16 *masks;         /* per 16-pixel vector v: the lanes in the row from x0 - 1, x0, x0 + 1 */
};

__attribute__((target("avx512f")))
static void run_item(void *ctx, int item, int thread) {
    const struct job *j = ctx;
    const int share = item % j->shares, gb = item / j->shares % j->ci_blocks, cb = item / j->shares / j->ci_blocks;
    const int w = j->w, h = j->h, hw = h * w, vec = (w + 15) / 16;
    const int co0 = cb * CO_BLOCK, nco = j->cout - co0 < CO_BLOCK ? j->cout - co0 : CO_BLOCK;
    const int ci0 = gb * CI_BLOCK, nci = j->cin - ci0 < CI_BLOCK ? j->cin - ci0 : CI_BLOCK;
    const int b0 = j->n * share / j->shares, b1 = j->n * (share + 1) / j->shares;
    __m512 *acc = j->acc + (size_t) thread * ACC_VECTORS;
    for (int i = 0; i < ACC_VECTORS; i++) acc[i] = _mm512_setzero_ps();
    for (int b = b0; b < b1; b++) {
        const float *dyb = j->dy + ((size_t) b * j->cout + co0) * hw;
        for (int y0 = 0; y0 < h; y0 += j->band) {
            const int y1 = y0 + j->band < h ? y0 + j->band : h;
            for (int ci = 0; ci < nci; ci++) {
                const float *xplane = j->x + ((size_t) b * j->cin + ci0 + ci) * hw;
                for (int ky = 0; ky < 3; ky++) {
                    __m512 *a = acc + (ci * 3 + ky) * CO_BLOCK * 3, r[CO_BLOCK][3];
                    for (int c = 0; c < CO_BLOCK; c++)
                        for (int k = 0; k < 3; k++) r[c][k] = a[c * 3 + k];
                    for (int y = y0; y < y1; y++) {
                        const int sy = y + ky - 1;
                        if (sy < 0 || sy >= h) continue;
                        const float *xr = xplane + (size_t) sy * w, *dr = dyb + (size_t) y * w;
                        for (int v = 0; v < vec; v++) {
                            const int x0 = 16 * v;
                            const __mmask16 *mv = j->masks + 3 * v, m = mv[1];
                            const __m512 x0v = _mm512_maskz_loadu_ps(mv[0], xr + x0 - 1);
                            const __m512 x1v = _mm512_maskz_loadu_ps(m, xr + x0);
                            const __m512 x2v = _mm512_maskz_loadu_ps(mv[2], xr + x0 + 1);
                            for (int c = 0; c < CO_BLOCK; c++) {
                                const __m512 g = c < nco ? _mm512_maskz_loadu_ps(m, dr + (size_t) c * hw + x0)
                                                         : _mm512_setzero_ps();
                                r[c][0] = _mm512_fmadd_ps(g, x0v, r[c][0]);
                                r[c][1] = _mm512_fmadd_ps(g, x1v, r[c][1]);
                                r[c][2] = _mm512_fmadd_ps(g, x2v, r[c][2]);
                            }
                        }
                    }
                    for (int c = 0; c < CO_BLOCK; c++)
                        for (int k = 0; k < 3; k++) a[c * 3 + k] = r[c][k];
                }
            }
        }
    }
    float *part = j->partial + (size_t) share * j->cout * j->cin * 9;
    for (int ci = 0; ci < nci; ci++)
        for (int ky = 0; ky < 3; ky++)
            for (int c = 0; c < nco; c++)
                for (int kx = 0; kx < 3; kx++)
                    part[(((size_t) (co0 + c) * j->cin + ci0 + ci) * 3 + ky) * 3 + kx] =
                        _mm512_reduce_add_ps(acc[((ci * 3 + ky) * CO_BLOCK + c) * 3 + kx]);
}

int f2a_conv3x3_weight_grad(const float *x, const float *dy, int n, int cin, int cout, int height, int width,
                            float *dw, int threads) {
    if (!f2a_kernels_avx512()) return -1;
    if (n <= 0 || cin <= 0 || cout <= 0 || height <= 0 || width <= 0) return 0;
    if (threads < 1) threads = 1;
    if (threads > 16) threads = 16;
    struct job j = { x, dy, n, cin, cout, height, width, (cout + CO_BLOCK - 1) / CO_BLOCK,
                     (cin + CI_BLOCK - 1) / CI_BLOCK, 1, 1, NULL, NULL, NULL };
    /* Enough items for every thread twice over: split the images into shares when the
     * channel blocks alone are too few (the narrow layers). */
    int blocks = j.co_blocks * j.ci_blocks;
    j.shares = (2 * threads + blocks - 1) / blocks;
    if (j.shares > n) j.shares = n;
    /* The band's 8 dY rows fill at most 32 KB of L1. */
    j.band = 1024 / width > 1 ? 1024 / width : 1;
    size_t wsize = (size_t) j.shares * cout * cin * 9;
    int vec = (width + 15) / 16;
    j.partial = malloc(wsize * sizeof(float));
    j.acc = aligned_alloc(64, (size_t) threads * ACC_VECTORS * sizeof(__m512));
    j.masks = malloc((size_t) vec * 3 * sizeof(__mmask16));
    if (!j.partial || !j.acc || !j.masks) { free(j.partial); free(j.acc); free(j.masks); return -2; }
    for (int v = 0; v < vec; v++)
        for (int k = 0; k < 3; k++) j.masks[3 * v + k] = cols_in(16 * v + k - 1, width);
    f2a_parallel(run_item, &j, blocks * j.shares, threads);
    size_t per = (size_t) cout * cin * 9;
    for (int s = 0; s < j.shares; s++)
        for (size_t i = 0; i < per; i++) dw[i] += j.partial[s * per + i];
    free(j.partial);
    free(j.acc);
    free(j.masks);
    return 0;
}
