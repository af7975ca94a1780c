#include "f2a_kernels.h"
#include "winograd_lanes.h"

#include <stddef.h>
#include <string.h>

/* 4x4 convolution, stride 1 (the PatchGAN's C512 layer), by Winograd F(3x3, 4x4):
 * each 3x3 output tile from a 6x6 input tile with 36 multiplies per channel pair
 * instead of 144.
 *
 * F(3x3, 4x4) uses the same six points (0, 1, -1, 2, -2, inf) as F(4x4, 3x3): the
 * input transform B^T is Lavin's, A^T is the first three rows of F(4x4, 3x3)'s (with
 * the point at infinity in the last row), G is F(4x4, 3x3)'s G with a fourth power.
 * Checked in numpy against direct correlation to 1e-14.
 *
 *   forward   V = B^T d B,  M[xi] = U[xi] V[xi] (GEMM),  y = A^T M A + bias
 *   backward  dM = A dy A^T,  dU[xi] += dM[xi] V[xi]^T,  dV[xi] = U[xi]^T dM[xi] (GEMMs),
 *             dw += G^T dU G,  dx += B dV B^T (overlapping tiles add up)
 *
 * As in weight_grad_winograd.c the GEMMs are the caller's (the trainer's BLAS); these
 * functions transform, in the layouts
 *
 *   U[xi][cout][cin], dU the same
 *   V[xi][c][t], M[xi][c][t], dM, dV     t = tile - tile0, rows of ld floats
 *
 * Tiles are numbered (image, tile row, tile column) over ceil(oh / 3) x ceil(ow / 3)
 * tiles of each output plane; tile (ty, tx) reads input rows 3 ty - pad ... + 5 (zeros
 * outside the plane). Each function splits its channels over the thread pool: every
 * channel's planes are written by one thread, so the overlapping tiles of dx add up
 * without races. */

struct k4_job {
    const float *src;
    float *dst;
    const float *bias;
    int channels, h, w, pad, oh, ow, th, tw, tile0, tiles, ld;
    int wide; /* lane_gathers_wide, for planes of the input's size or the output's, whichever is larger */
    size_t xi_stride;
};

static struct k4_job job_of(const float *src, float *dst, int channels, int h, int w, int pad, int oh, int ow,
                            int tile0, int tiles, int ld) {
    const int th = (oh + 2) / 3, tw = (ow + 2) / 3, images = (tile0 + tiles - 1) / (th * tw) + 1;
    struct k4_job j = { src, dst, NULL, channels, h, w, pad, oh, ow, th, tw, tile0, tiles, ld,
                        lane_gathers_wide(images, channels, h > oh ? h : oh, w > ow ? w : ow), (size_t) channels * ld };
    return j;
}

/* size x size patches of plane c (of planes h x w), from each tile's corner + offset, zeros
 * outside and in lanes past the last tile: p[(i * size + k) * LANES + lane]. */
LANE_INLINE void load_patches(const struct k4_job *j, int c, int t0, int n, int size, int offset, int h, int w, float *p) {
    const struct lane_patches lp = lanes_of_tiles(j->src, j->channels, c, h, w, j->th, j->tw, 3, offset, j->tile0 + t0, n);
    gather_lanes_fast(&lp, h, w, size, j->wide, p);
}

/* The 1-D transforms on LANES tiles at once (besides winograd_lanes.h's bt6): 6 (or 3) rows
 * of LANES values d[k * ds + lane] into r[k * rs + lane]. */

/* B v (6 -> 6), the adjoint of bt6 */
LANE_INLINE void b6(const float *v, size_t vs, float *r, size_t rs) {
    for (int l = 0; l < LANES; l++) {
        const float v0 = v[l], v1 = v[vs + l], v2 = v[2 * vs + l], v3 = v[3 * vs + l], v4 = v[4 * vs + l],
                    v5 = v[5 * vs + l];
        r[l] = 4 * v0;
        r[rs + l] = -4 * v1 + 4 * v2 - 2 * v3 + 2 * v4 + 4 * v5;
        r[2 * rs + l] = -5 * v0 - 4 * v1 - 4 * v2 - v3 - v4;
        r[3 * rs + l] = v1 - v2 + 2 * v3 - 2 * v4 - 5 * v5;
        r[4 * rs + l] = v0 + v1 + v2 + v3 + v4;
        r[5 * rs + l] = v5;
    }
}

/* A^T m (6 -> 3) */
LANE_INLINE void at3(const float *m, size_t ms, float *r, size_t rs) {
    for (int l = 0; l < LANES; l++) {
        const float m0 = m[l], m1 = m[ms + l], m2 = m[2 * ms + l], m3 = m[3 * ms + l], m4 = m[4 * ms + l],
                    m5 = m[5 * ms + l];
        r[l] = m0 + m1 + m2 + m3 + m4;
        r[rs + l] = m1 - m2 + 2 * m3 - 2 * m4;
        r[2 * rs + l] = m1 + m2 + 4 * m3 + 4 * m4 + m5;
    }
}

/* A g (3 -> 6), the adjoint of at3 */
LANE_INLINE void a3(const float *g, size_t gs, float *r, size_t rs) {
    for (int l = 0; l < LANES; l++) {
        const float g0 = g[l], g1 = g[gs + l], g2 = g[2 * gs + l];
        r[l] = g0;
        r[rs + l] = g0 + g1 + g2;
        r[2 * rs + l] = g0 - g1 + g2;
        r[3 * rs + l] = g0 + 2 * g1 + 4 * g2;
        r[4 * rs + l] = g0 - 2 * g1 + 4 * g2;
        r[5 * rs + l] = g2;
    }
}

LANE_INLINE void input_channel_body(void *ctx, int c, int thread) {
    (void) thread;
    const struct k4_job *j = ctx;
    for (int t0 = 0; t0 < j->tiles; t0 += LANES) {
        const int n = j->tiles - t0 < LANES ? j->tiles - t0 : LANES;
        float d[36 * LANES], r[36 * LANES];
        load_patches(j, c, t0, n, 6, -j->pad, j->h, j->w, d);
        bt6_tiles(d, r);
        store_runs_fast(j->dst + (size_t) c * j->ld + t0, j->xi_stride, n, r, j->wide);
    }
}
LANE_TASK(input_channel)

LANE_INLINE void output_grad_channel_body(void *ctx, int c, int thread) {
    (void) thread;
    const struct k4_job *j = ctx;
    for (int t0 = 0; t0 < j->tiles; t0 += LANES) {
        const int n = j->tiles - t0 < LANES ? j->tiles - t0 : LANES;
        float g[9 * LANES], rows[18 * LANES], r[36 * LANES];
        load_patches(j, c, t0, n, 3, 0, j->oh, j->ow, g);
        for (int i = 0; i < 3; i++) a3(g + 3 * i * LANES, LANES, rows + 6 * i * LANES, LANES); /* g A^T: 3 x 6 */
        for (int k = 0; k < 6; k++) a3(rows + k * LANES, 6 * LANES, r + k * LANES, 6 * LANES);  /* A (g A^T) */
        store_runs_fast(j->dst + (size_t) c * j->ld + t0, j->xi_stride, n, r, j->wide);
    }
}
LANE_TASK(output_grad_channel)

LANE_INLINE void output_channel_body(void *ctx, int c, int thread) {
    (void) thread;
    const struct k4_job *j = ctx;
    const float bias = j->bias ? j->bias[c] : 0.0f;
    for (int t0 = 0; t0 < j->tiles; t0 += LANES) {
        const int n = j->tiles - t0 < LANES ? j->tiles - t0 : LANES;
        float m[36 * LANES], rows[18 * LANES], y[9 * LANES];
        load_runs_fast(j->src + (size_t) c * j->ld + t0, j->xi_stride, n, m, j->wide);
        for (int i = 0; i < 6; i++) at3(m + 6 * i * LANES, LANES, rows + 3 * i * LANES, LANES); /* M A: 6 x 3 */
        for (int k = 0; k < 3; k++) at3(rows + k * LANES, 3 * LANES, y + k * LANES, 3 * LANES); /* A^T (M A) */
        struct tile_walk t = tile_walk_at(j->tile0 + t0, j->th, j->tw);
        for (int l = 0; l < n; l++, tile_walk_next(&t)) {
            const int y0 = 3 * t.ty, x0 = 3 * t.tx;
            float *plane = j->dst + ((size_t) t.img * j->channels + c) * j->oh * j->ow;
            for (int i = 0; i < 3 && y0 + i < j->oh; i++)
                for (int k = 0; k < 3 && x0 + k < j->ow; k++)
                    plane[(size_t) (y0 + i) * j->ow + x0 + k] = y[(3 * i + k) * LANES + l] + bias;
        }
    }
}
LANE_TASK(output_channel)

LANE_INLINE void input_grad_channel_body(void *ctx, int c, int thread) {
    (void) thread;
    const struct k4_job *j = ctx;
    for (int t0 = 0; t0 < j->tiles; t0 += LANES) {
        const int n = j->tiles - t0 < LANES ? j->tiles - t0 : LANES;
        float v[36 * LANES], rows[36 * LANES], d[36 * LANES];
        load_runs_fast(j->src + (size_t) c * j->ld + t0, j->xi_stride, n, v, j->wide);
        for (int i = 0; i < 6; i++) b6(v + 6 * i * LANES, LANES, rows + 6 * i * LANES, LANES); /* dV B^T by rows */
        for (int k = 0; k < 6; k++) b6(rows + k * LANES, 6 * LANES, d + k * LANES, 6 * LANES); /* B (dV B^T) */
        struct tile_walk t = tile_walk_at(j->tile0 + t0, j->th, j->tw);
        for (int l = 0; l < n; l++, tile_walk_next(&t)) {
            const int y0 = 3 * t.ty - j->pad, x0 = 3 * t.tx - j->pad;
            float *plane = j->dst + ((size_t) t.img * j->channels + c) * j->h * j->w;
            for (int i = 0; i < 6; i++) {
                const int y = y0 + i;
                if (y < 0 || y >= j->h) continue;
                for (int k = 0; k < 6; k++) {
                    const int x = x0 + k;
                    if (x >= 0 && x < j->w) plane[(size_t) y * j->w + x] += d[(6 * i + k) * LANES + l];
                }
            }
        }
    }
}
LANE_TASK(input_grad_channel)

int f2a_wk4_tiles(int n, int out_h, int out_w) {
    return n * ((out_h + 2) / 3) * ((out_w + 2) / 3);
}

void f2a_wk4_input(const float *x, int c, int h, int w, int pad, int out_h, int out_w, int tile0, int tiles,
                   float *v, int ld, int threads) {
    struct k4_job j = job_of(x, v, c, h, w, pad, out_h, out_w, tile0, tiles, ld);
    f2a_parallel(lane_task(input_channel), &j, c, threads);
}

void f2a_wk4_output_grad(const float *dy, int cout, int out_h, int out_w, int tile0, int tiles,
                         float *dm, int ld, int threads) {
    struct k4_job j = job_of(dy, dm, cout, 0, 0, 0, out_h, out_w, tile0, tiles, ld);
    f2a_parallel(lane_task(output_grad_channel), &j, cout, threads);
}

void f2a_wk4_output(const float *m, int cout, int out_h, int out_w, int tile0, int tiles, int ld,
                    const float *bias, float *y, int threads) {
    struct k4_job j = job_of(m, y, cout, 0, 0, 0, out_h, out_w, tile0, tiles, ld);
    j.bias = bias;
    f2a_parallel(lane_task(output_channel), &j, cout, threads);
}

void f2a_wk4_input_grad(const float *dv, int c, int h, int w, int pad, int out_h, int out_w, int tile0, int tiles,
                        int ld, float *dx, int threads) {
    struct k4_job j = job_of(dv, dx, c, h, w, pad, out_h, out_w, tile0, tiles, ld);
    f2a_parallel(lane_task(input_grad_channel), &j, c, threads);
}

/* G g (4 -> 6) */
LANE_INLINE void g6(const float *g, size_t gs, float *r, size_t rs) {
    for (int l = 0; l < LANES; l++) {
        const float g0 = g[l], g1 = g[gs + l], g2 = g[2 * gs + l], g3 = g[3 * gs + l];
        r[l] = g0 * (1.0f / 4);
        r[rs + l] = (g0 + g1 + g2 + g3) * (-1.0f / 6);
        r[2 * rs + l] = (g0 - g1 + g2 - g3) * (-1.0f / 6);
        r[3 * rs + l] = g0 * (1.0f / 24) + g1 * (1.0f / 12) + g2 * (1.0f / 6) + g3 * (1.0f / 3);
        r[4 * rs + l] = g0 * (1.0f / 24) - g1 * (1.0f / 12) + g2 * (1.0f / 6) - g3 * (1.0f / 3);
        r[5 * rs + l] = g3;
    }
}

/* G^T u (6 -> 4), the adjoint of g6 */
LANE_INLINE void gt4(const float *u, size_t us, float *r, size_t rs) {
    for (int l = 0; l < LANES; l++) {
        const float u0 = u[l], u1 = u[us + l], u2 = u[2 * us + l], u3 = u[3 * us + l], u4 = u[4 * us + l],
                    u5 = u[5 * us + l];
        r[l] = u0 * (1.0f / 4) - (u1 + u2) * (1.0f / 6) + (u3 + u4) * (1.0f / 24);
        r[rs + l] = (u2 - u1) * (1.0f / 6) + (u3 - u4) * (1.0f / 12);
        r[2 * rs + l] = (u3 + u4 - u1 - u2) * (1.0f / 6);
        r[3 * rs + l] = (u2 - u1) * (1.0f / 6) + (u3 - u4) * (1.0f / 3) + u5;
    }
}

struct weights_job {
    const float *src;
    float *dst;
    int cout, cin;
    int wide; /* f2a_kernels_avx512: the runs' vector accesses */
};

/* U[xi][co][ci] = G g G^T for one output channel, LANES input channels at a time. */
LANE_INLINE void weights_channel_body(void *ctx, int co, int thread) {
    (void) thread;
    const struct weights_job *j = ctx;
    const size_t xi_stride = (size_t) j->cout * j->cin;
    for (int ci0 = 0; ci0 < j->cin; ci0 += LANES) {
        const int n = j->cin - ci0 < LANES ? j->cin - ci0 : LANES;
        float g[16 * LANES] = { 0 }, rows[24 * LANES], u[36 * LANES];
        const float *w = j->src + ((size_t) co * j->cin + ci0) * 16;
        for (int l = 0; l < n; l++)
            for (int k = 0; k < 16; k++) g[k * LANES + l] = w[16 * l + k];
        for (int a = 0; a < 4; a++) g6(g + 4 * a * LANES, LANES, rows + 6 * a * LANES, LANES); /* g G^T: 4 x 6 */
        for (int q = 0; q < 6; q++) g6(rows + q * LANES, 6 * LANES, u + q * LANES, 6 * LANES); /* G (g G^T) */
        float *out = j->dst + (size_t) co * j->cin + ci0;
        store_runs_fast(out, xi_stride, n, u, j->wide);
    }
}
LANE_TASK(weights_channel)

void f2a_wk4_weights(const float *w, int cout, int cin, float *u, int threads) {
    struct weights_job j = { w, u, cout, cin, f2a_kernels_avx512() };
    f2a_parallel(lane_task(weights_channel), &j, cout, threads);
}

/* dw[co][ci] += G^T dU[co][ci] G for one output channel, LANES input channels at a time. */
LANE_INLINE void finish_channel_body(void *ctx, int co, int thread) {
    (void) thread;
    const struct weights_job *j = ctx;
    const size_t xi_stride = (size_t) j->cout * j->cin;
    for (int ci0 = 0; ci0 < j->cin; ci0 += LANES) {
        const int n = j->cin - ci0 < LANES ? j->cin - ci0 : LANES;
        float u[36 * LANES], rows[24 * LANES], d[16 * LANES];
        load_runs_fast(j->src + (size_t) co * j->cin + ci0, xi_stride, n, u, j->wide);
        for (int p = 0; p < 6; p++) gt4(u + 6 * p * LANES, LANES, rows + 4 * p * LANES, LANES); /* dU G: 6 x 4 */
        for (int b = 0; b < 4; b++) gt4(rows + b * LANES, 4 * LANES, d + b * LANES, 4 * LANES); /* G^T (dU G) */
        float *dw = j->dst + ((size_t) co * j->cin + ci0) * 16;
        for (int l = 0; l < n; l++)
            for (int k = 0; k < 16; k++) dw[16 * l + k] += d[k * LANES + l];
    }
}
LANE_TASK(finish_channel)

void f2a_wk4_weight_grad_finish(const float *du, int cout, int cin, float *dw, int threads) {
    struct weights_job j = { du, dw, cout, cin, f2a_kernels_avx512() };
    f2a_parallel(lane_task(finish_channel), &j, cout, threads);
}
