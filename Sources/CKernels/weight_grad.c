#include "f2a_kernels.h"

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
 * Here one work item is (input channel ci, block of 8 output channels, kernel row ky):
 * 24 accumulators (8 channels x 3 kernel columns) of 16 pixels each stay in registers
 * while the item walks every row of every image; per 16 pixels it loads 3 shifted input
 * vectors and 8 dY vectors for 24 FMAs. The shifted loads read a copy of the input row
 * with a zero on either side (the padding) and zeros past its end, so no load needs a
 * bounds test; dY's last partial vector is a masked load (zero lanes contribute 0).
 * Items write disjoint dW entries: no reduction between threads, and the sum over
 * pixels has the same order whatever the thread count. */

#define CO_BLOCK 8

struct job {
    const float *x, *dy;
    int n, cin, cout, h, w, co_blocks;
    float *dw;
    float *scratch; /* per thread: the padded row, then a row of zeros; only row[1..w] is ever written */
    size_t row_floats;
};

__attribute__((target("avx512f")))
static void run_item(void *ctx, int item, int thread) {
    const struct job *j = ctx;
    const int ky = item % 3, cb = item / 3 % j->co_blocks, ci = item / 3 / j->co_blocks;
    const int w = j->w, h = j->h, hw = h * w, vec = (w + 15) / 16;
    const int co0 = cb * CO_BLOCK, nco = j->cout - co0 < CO_BLOCK ? j->cout - co0 : CO_BLOCK;
    /* The padded row: [0, X row (w floats), 0 ...] with room for the last vector's +2;
     * then zeros, the dY of channels past cout in the last block. */
    float *row = j->scratch + (size_t) thread * 2 * j->row_floats, *zero = row + j->row_floats;
    const __mmask16 tail = (__mmask16) (w % 16 ? (1u << (w % 16)) - 1 : 0xFFFF);
    __m512 acc[CO_BLOCK][3];
    for (int c = 0; c < CO_BLOCK; c++) acc[c][0] = acc[c][1] = acc[c][2] = _mm512_setzero_ps();
    for (int b = 0; b < j->n; b++) {
        const float *xplane = j->x + ((size_t) b * j->cin + ci) * hw;
        const float *dyb = j->dy + ((size_t) b * j->cout + co0) * hw;
        for (int y = 0; y < h; y++) {
            const int sy = y + ky - 1;
            if (sy < 0 || sy >= h) continue;
            memcpy(row + 1, xplane + (size_t) sy * w, (size_t) w * sizeof(float));
            const float *d[CO_BLOCK];
            for (int c = 0; c < CO_BLOCK; c++) d[c] = c < nco ? dyb + (size_t) c * hw + (size_t) y * w : zero;
            for (int v = 0; v < vec; v++) {
                const int x0 = 16 * v;
                const __mmask16 m = v == vec - 1 ? tail : 0xFFFF;
                const __m512 x0v = _mm512_loadu_ps(row + x0), x1v = _mm512_loadu_ps(row + x0 + 1),
                             x2v = _mm512_loadu_ps(row + x0 + 2);
                for (int c = 0; c < CO_BLOCK; c++) {
                    const __m512 g = _mm512_maskz_loadu_ps(m, d[c] + x0);
                    acc[c][0] = _mm512_fmadd_ps(g, x0v, acc[c][0]);
                    acc[c][1] = _mm512_fmadd_ps(g, x1v, acc[c][1]);
                    acc[c][2] = _mm512_fmadd_ps(g, x2v, acc[c][2]);
                }
            }
        }
    }
    for (int c = 0; c < nco; c++)
        for (int kx = 0; kx < 3; kx++)
            j->dw[(((size_t) (co0 + c) * j->cin + ci) * 3 + ky) * 3 + kx] += _mm512_reduce_add_ps(acc[c][kx]);
}

int f2a_conv3x3_weight_grad(const float *x, const float *dy, int n, int cin, int cout, int height, int width,
                            float *dw, int threads) {
    if (!f2a_kernels_avx512()) return -1;
    if (n <= 0 || cin <= 0 || cout <= 0 || height <= 0 || width <= 0) return 0;
    if (threads < 1) threads = 1;
    if (threads > 16) threads = 16;
    struct job j = { x, dy, n, cin, cout, height, width, (cout + CO_BLOCK - 1) / CO_BLOCK, dw, NULL,
                     (size_t) (width + 15) / 16 * 16 + 32 };
    j.scratch = calloc(j.row_floats * 2 * (size_t) threads, sizeof(float));
    if (!j.scratch) return -2;
    f2a_parallel(run_item, &j, cin * j.co_blocks * 3, threads);
    free(j.scratch);
    return 0;
}
