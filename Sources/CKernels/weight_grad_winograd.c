#include "f2a_kernels.h"
#include "winograd_f43.h"
#include "winograd_lanes.h"

#include <stddef.h>
#include <string.h>

/* Weight gradient of a 3x3 convolution (stride 1, zero padding 1) in the Winograd
 * domain of F(4x4, 3x3), for the wide layers (128-512 channels) where the direct
 * kernel (weight_grad.c) does not beat a GEMM.
 *
 * The forward pass computes each 4x4 output tile as Y = A^T [U (.) V] A with
 * U = G g G^T (the weights) and V = B^T d B (the tile's 6x6 input). It is linear in U,
 * so with dM = A dY A^T (the tile's 4x4 output gradient, 6x6 after the transform)
 *
 *     dU[xi][co][ci] = sum over tiles of dM[co][xi] * V[ci][xi]     (36 GEMMs)
 *     dW[co][ci]     = G^T dU[co][ci] G                             (3x3 per pair)
 *
 * Per tile and channel pair that is 36 multiplies instead of the 144 of the im2col
 * GEMM (9 taps x 16 pixels), for the price of transforming each input and output
 * gradient channel once per tile. The GEMMs are the caller's (the trainer's BLAS):
 * these functions only transform, in the layouts they need:
 *
 *   V[xi][c][t], dM[xi][c][t]   t = tile - tile0, rows of ld floats
 *   dU[xi][cout][cin]
 *
 * Tiles are numbered (image, tile row, tile column) over the padded grid of
 * ceil(h / 4) x ceil(w / 4) tiles; parts of a tile outside the image read zeros (the
 * padding, and output positions that do not exist). The transforms are those of
 * Lavin's F(4x4, 3x3) (G in winograd_f43.h, B^T in winograd_lanes.h). */

/* A (6x4, the transpose of the output transform A^T) applied to 4 rows of LANES values. */
LANE_INLINE void a4(const float *g, size_t gs, float *r, size_t rs) {
    for (int l = 0; l < LANES; l++) {
        const float g0 = g[l], g1 = g[gs + l], g2 = g[2 * gs + l], g3 = g[3 * gs + l];
        r[l] = g0;
        r[rs + l] = g0 + g1 + g2 + g3;
        r[2 * rs + l] = g0 - g1 + g2 - g3;
        r[3 * rs + l] = g0 + 2 * g1 + 4 * g2 + 8 * g3;
        r[4 * rs + l] = g0 - 2 * g1 + 4 * g2 - 8 * g3;
        r[5 * rs + l] = g3;
    }
}

struct tiles_job {
    const float *src; /* [n][channels][h][w] */
    int channels, h, w, th, tw, tile0, tiles, ld;
    int wide;         /* lane_gathers_wide */
    size_t xi_stride;
    float *out;
};

/* Lanes of size x size patches: lane l holds tile t0 + l's patch from (4 ty + offset,
 * 4 tx + offset) of channel c, zeros outside the plane and in lanes past the last tile.
 * p[(i * size + j) * LANES + lane]. */
LANE_INLINE void load_patches(const struct tiles_job *j, int c, int t0, int n, int size, int offset, float *p) {
    const struct lane_patches lp = lanes_of_tiles(j->src, j->channels, c, j->h, j->w, j->th, j->tw, 4, offset,
                                                  j->tile0 + t0, n);
    gather_lanes_fast(&lp, j->h, j->w, size, j->wide, p);
}

LANE_INLINE void input_channel_body(void *ctx, int c, int thread) {
    (void) thread;
    const struct tiles_job *j = ctx;
    for (int t0 = 0; t0 < j->tiles; t0 += LANES) {
        const int n = j->tiles - t0 < LANES ? j->tiles - t0 : LANES;
        float d[36 * LANES], r[36 * LANES];
        load_patches(j, c, t0, n, 6, -1, d);
        bt6_tiles(d, r);
        store_runs_fast(j->out + (size_t) c * j->ld + t0, j->xi_stride, n, r, j->wide);
    }
}
LANE_TASK(input_channel)

LANE_INLINE void gradient_channel_body(void *ctx, int c, int thread) {
    (void) thread;
    const struct tiles_job *j = ctx;
    for (int t0 = 0; t0 < j->tiles; t0 += LANES) {
        const int n = j->tiles - t0 < LANES ? j->tiles - t0 : LANES;
        float g[16 * LANES], rows[24 * LANES], r[36 * LANES];
        load_patches(j, c, t0, n, 4, 0, g);
        for (int i = 0; i < 4; i++) a4(g + 4 * i * LANES, LANES, rows + 6 * i * LANES, LANES); /* g A^T: 4 x 6 */
        for (int k = 0; k < 6; k++) a4(rows + k * LANES, 6 * LANES, r + k * LANES, 6 * LANES);  /* A (g A^T) */
        store_runs_fast(j->out + (size_t) c * j->ld + t0, j->xi_stride, n, r, j->wide);
    }
}
LANE_TASK(gradient_channel)

static void transform(f2a_task_fn fn, const float *src, int channels, int h, int w, int tile0, int tiles,
                      float *out, int ld, int out_channels, int threads) {
    const int th = (h + 3) / 4, tw = (w + 3) / 4, images = (tile0 + tiles + th * tw - 1) / (th * tw);
    struct tiles_job job = { src, channels, h, w, th, tw, tile0, tiles, ld, lane_gathers_wide(images, channels, h, w),
                             (size_t) out_channels * ld, out };
    f2a_parallel(fn, &job, channels, threads);
}

int f2a_winograd_tiles(int n, int height, int width) {
    return n * ((height + 3) / 4) * ((width + 3) / 4);
}

void f2a_winograd_dw_input(const float *x, int cin, int height, int width, int tile0, int tiles,
                           float *v, int ld, int v_channels, int threads) {
    transform(lane_task(input_channel), x, cin, height, width, tile0, tiles, v, ld, v_channels, threads);
}

void f2a_winograd_dw_gradient(const float *dy, int cout, int height, int width, int tile0, int tiles,
                              float *dm, int ld, int threads) {
    transform(lane_task(gradient_channel), dy, cout, height, width, tile0, tiles, dm, ld, cout, threads);
}

struct finish_job {
    const float *du;
    int cout, cin;
    float *dw;
    int wide; /* f2a_kernels_avx512: the runs' vector loads */
};

/* One output channel: LANES input channels side by side (contiguous in every dU[xi]). */
LANE_INLINE void finish_channel_body(void *ctx, int co, int thread) {
    (void) thread;
    const struct finish_job *j = ctx;
    const size_t xi_stride = (size_t) j->cout * j->cin;
    float g[6][3];
    for (int p = 0; p < 6; p++)
        for (int a = 0; a < 3; a++) g[p][a] = (float) f2a_winograd_g[p][a];
    for (int ci0 = 0; ci0 < j->cin; ci0 += LANES) {
        const int n = j->cin - ci0 < LANES ? j->cin - ci0 : LANES;
        float u[36][LANES], t[3][6][LANES] = { { { 0 } } }, d[9][LANES] = { { 0 } };
        load_runs_fast(j->du + (size_t) co * j->cin + ci0, xi_stride, n, &u[0][0], j->wide);
        for (int a = 0; a < 3; a++) /* G^T dU */
            for (int q = 0; q < 6; q++)
                for (int p = 0; p < 6; p++)
                    for (int l = 0; l < LANES; l++) t[a][q][l] += g[p][a] * u[6 * p + q][l];
        for (int a = 0; a < 3; a++) /* (G^T dU) G */
            for (int b = 0; b < 3; b++)
                for (int q = 0; q < 6; q++)
                    for (int l = 0; l < LANES; l++) d[3 * a + b][l] += t[a][q][l] * g[q][b];
        float *dw = j->dw + ((size_t) co * j->cin + ci0) * 9;
        for (int l = 0; l < n; l++)
            for (int k = 0; k < 9; k++) dw[9 * l + k] += d[k][l];
    }
}
LANE_TASK(finish_channel)

void f2a_winograd_dw_finish(const float *du, int cout, int cin, float *dw, int threads) {
    struct finish_job job = { du, cout, cin, dw, f2a_kernels_avx512() };
    f2a_parallel(lane_task(finish_channel), &job, cout, threads);
}
