#include "f2a_kernels.h"
#include "microkernel.h"

#include <immintrin.h>

/* 4x4 convolution, stride 1, to a single output channel: the PatchGAN's logits layer (256
 * channels of 15 x 15 to one map of 14 x 14 at the trainer's crop), forward and backward,
 * computed directly in 16-lane rows.
 *
 * The trainer lowered it to im2col + GEMM: a column matrix 16 times the input (12.8 MB for
 * the 16 images of a discriminator update) and a GEMM of one row, 35-46 GFLOP/s, 2.9 ms of a
 * 290 ms PatchGAN step for 0.1 GFLOP. Here blocks of 4 output rows take each input row once,
 * in its 4 column shifts, read in place (masked where the padding is): 1.8-1.9 ms, in the
 * step (3 alternations, f2a-train bench --layers), forward 0.73-0.81 -> 0.47-0.55 ms and
 * backward 1.31-1.53 -> 0.81-0.87 for the 16-image update, 0.30-0.32 -> 0.16-0.19 and
 * 0.29-0.32 -> 0.36-0.39 (input gradient only) for the 8-image adversarial pass. The
 * masked loads of 14- and 15-float rows straddle cache lines: the kernel runs at ~80
 * GFLOP/s alone (fwd 0.26 ms, dx 0.41, dw 0.30 for 16 images of 256 x 15 x 15).
 *
 *   forward   y[b][i][j] = bias + sum over c, ky, kx of w[c][ky][kx] x[b][c][i + ky - pad][j + kx - pad]
 *   dx        dx[b][c][y][x] = sum over ky, kx of w[c][ky][kx] dy[b][y + pad - ky][x + pad - kx]
 *   dw        dw[c][ky][kx] += sum over b, i, j of dy[b][i][j] x[b][c][i + ky - pad][j + kx - pad]
 *
 * Each work item writes its own outputs (an image of y, 16 planes of dx, a channel's 16
 * weights) and sums in a fixed order: no dependence on the threads. Outside the planes, x
 * and dy are zero. */

/* Output rows per register block: the 7 input rows that reach 4 output rows are each loaded
 * once in their four column shifts and feed every row of the block they touch. The loops
 * have constant bounds, so the compiler unrolls them and the accumulators stay in registers
 * (indexed by a run-time row they went through memory). */
#define ROW_BLOCK 4

struct job {
    const float *x, *w, *dy;
    float bias;
    int n, cin, h, wd, pad, oh, ow;
    float *y, *dx, *dw;
};

/* The lanes of a 16-float load from column `at` of a row of `width` that serve columns
 * first ... first + 15 of a row of `count`. */
static inline __mmask16 lanes(int at, int width, int first, int count) {
    return cols_in(at, width) & cols_in(first, count);
}

/* Where the 7 source rows y0 + t of a block lie: row offsets (clamped into the plane) and
 * the load masks of each shift, all-zero for rows outside [0, rows_in). Made once per block,
 * so that the loop over channels has no branch. */
struct rows7 {
    size_t off[ROW_BLOCK + 3];
    __mmask16 m[ROW_BLOCK + 3][4];
};

static inline void rows7_make(struct rows7 *r, int y0, int rows_in, size_t stride, const __mmask16 m[4]) {
    for (int t = 0; t < ROW_BLOCK + 3; t++) {
        const int y = y0 + t, inside = y >= 0 && y < rows_in;
        r->off[t] = inside ? (size_t) y * stride : 0;
        for (int s = 0; s < 4; s++) r->m[t][s] = inside ? m[s] : 0;
    }
}

/* acc[k] += the 4x4 taps of w (row-major, flipped if `flip`) against the block's 7 source
 * rows of `src` in their 4 shifts `at`, where output row k takes tap row t - k (0 ... 3):
 * the forward pass (flip 0: tap (ky, kx) at t = k + ky, column q + kx - pad) and the input
 * gradient (flip 1: tap (3 - ky, 3 - kx)). Masked-off lanes are not read. */
__attribute__((target("avx512f"), always_inline))
static inline void rows_block(__m512 acc[ROW_BLOCK], const float *src, const struct rows7 *r, const int at[4],
                              const float *w, int flip) {
    for (int t = 0; t < ROW_BLOCK + 3; t++) {
        __m512 v[4];
        for (int s = 0; s < 4; s++) v[s] = _mm512_maskz_loadu_ps(r->m[t][s], src + r->off[t] + at[s]);
        for (int k = 0; k < ROW_BLOCK; k++) {
            const int ky = t - k;
            if (ky < 0 || ky > 3) continue;
            for (int s = 0; s < 4; s++) {
                const float tap = flip ? w[(3 - ky) * 4 + (3 - s)] : w[ky * 4 + s];
                acc[k] = _mm512_fmadd_ps(_mm512_set1_ps(tap), v[s], acc[k]);
            }
        }
    }
}

/* y rows i0 ... i0 + 3 (those below oh), columns q ... q + 15, of image b. */
__attribute__((target("avx512f")))
static void forward_block(const struct job *j, int b, int i0, int q) {
    __m512 acc[ROW_BLOCK];
    __mmask16 m[4];
    int at[4];
    for (int k = 0; k < ROW_BLOCK; k++) acc[k] = _mm512_set1_ps(j->bias);
    for (int kx = 0; kx < 4; kx++) { at[kx] = q + kx - j->pad; m[kx] = lanes(at[kx], j->wd, q, j->ow); }
    struct rows7 r;
    rows7_make(&r, i0 - j->pad, j->h, (size_t) j->wd, m);
    for (int c = 0; c < j->cin; c++)
        rows_block(acc, j->x + ((size_t) b * j->cin + c) * j->h * j->wd, &r, at, j->w + c * 16, 0);
    for (int k = 0; k < ROW_BLOCK && i0 + k < j->oh; k++)
        _mm512_mask_storeu_ps(j->y + ((size_t) b * j->oh + i0 + k) * j->ow + q, cols_in(q, j->ow), acc[k]);
}

static void forward_image(void *ctx, int b, int thread) {
    const struct job *j = ctx;
    (void) thread;
    for (int i0 = 0; i0 < j->oh; i0 += ROW_BLOCK)
        for (int q = 0; q < j->ow; q += 16) forward_block(j, b, i0, q);
}

/* Channels per work item of the input gradient: a plane is a few hundred FMAs per block. */
#define DX_GROUP 16

/* dx rows y0 ... y0 + 3 (those below h), columns q ... q + 15, of image b's channels c0 ...
 * c1 - 1: dy rows y0 + pad - 3 ... y0 + 3 + pad, shifts pad - 3 ... pad (tap kx = 3 - s). */
__attribute__((target("avx512f")))
static void input_grad_block(const struct job *j, int b, int c0, int c1, int y0, int q) {
    __mmask16 m[4];
    int at[4];
    for (int s = 0; s < 4; s++) { at[s] = q + j->pad - 3 + s; m[s] = lanes(at[s], j->ow, q, j->wd); }
    struct rows7 r;
    rows7_make(&r, y0 + j->pad - 3, j->oh, (size_t) j->ow, m);
    const float *dyb = j->dy + (size_t) b * j->oh * j->ow;
    for (int c = c0; c < c1; c++) {
        __m512 acc[ROW_BLOCK];
        for (int k = 0; k < ROW_BLOCK; k++) acc[k] = _mm512_setzero_ps();
        rows_block(acc, dyb, &r, at, j->w + c * 16, 1);
        float *plane = j->dx + ((size_t) b * j->cin + c) * j->h * j->wd;
        for (int k = 0; k < ROW_BLOCK && y0 + k < j->h; k++)
            _mm512_mask_storeu_ps(plane + (size_t) (y0 + k) * j->wd + q, cols_in(q, j->wd), acc[k]);
    }
}

static void input_grad_group(void *ctx, int item, int thread) {
    const struct job *j = ctx;
    (void) thread;
    const int groups = (j->cin + DX_GROUP - 1) / DX_GROUP, b = item / groups, c0 = item % groups * DX_GROUP;
    const int c1 = c0 + DX_GROUP < j->cin ? c0 + DX_GROUP : j->cin;
    for (int y0 = 0; y0 < j->h; y0 += ROW_BLOCK)
        for (int q = 0; q < j->wd; q += 16) input_grad_block(j, b, c0, c1, y0, q);
}

/* The 16 taps of channel c, one accumulator each: per block of 4 dy rows, the 7 input rows
 * they reach are loaded once in their four shifts (as `rows_block`, masks made per block). */
__attribute__((target("avx512f")))
static void weight_grad_channel(void *ctx, int c, int thread) {
    const struct job *j = ctx;
    (void) thread;
    __m512 acc[16];
    for (int t = 0; t < 16; t++) acc[t] = _mm512_setzero_ps();
    for (int q = 0; q < j->ow; q += 16) {
        __mmask16 m[4];
        int at[4];
        for (int kx = 0; kx < 4; kx++) { at[kx] = q + kx - j->pad; m[kx] = lanes(at[kx], j->wd, q, j->ow); }
        for (int i0 = 0; i0 < j->oh; i0 += ROW_BLOCK) {
            struct rows7 r;
            rows7_make(&r, i0 - j->pad, j->h, (size_t) j->wd, m);
            const __mmask16 gm = cols_in(q, j->ow);
            __mmask16 rm[ROW_BLOCK];
            for (int k = 0; k < ROW_BLOCK; k++) rm[k] = i0 + k < j->oh ? gm : 0;
            for (int b = 0; b < j->n; b++) {
                const float *xp = j->x + ((size_t) b * j->cin + c) * j->h * j->wd;
                const float *dyp = j->dy + ((size_t) b * j->oh + i0) * j->ow + q;
                __m512 g[ROW_BLOCK];
                for (int k = 0; k < ROW_BLOCK; k++) g[k] = _mm512_maskz_loadu_ps(rm[k], dyp + (size_t) k * j->ow);
                for (int t = 0; t < ROW_BLOCK + 3; t++) {
                    __m512 v[4];
                    for (int s = 0; s < 4; s++) v[s] = _mm512_maskz_loadu_ps(r.m[t][s], xp + r.off[t] + at[s]);
                    for (int k = 0; k < ROW_BLOCK; k++) {
                        const int ky = t - k;
                        if (ky < 0 || ky > 3) continue;
                        for (int s = 0; s < 4; s++) acc[ky * 4 + s] = _mm512_fmadd_ps(g[k], v[s], acc[ky * 4 + s]);
                    }
                }
            }
        }
    }
    for (int t = 0; t < 16; t++) j->dw[c * 16 + t] += _mm512_reduce_add_ps(acc[t]);
}

int f2a_conv4x4_single(const float *x, int n, int cin, int height, int width, int pad, const float *weight, float bias,
                       float *y, int threads) {
    if (!f2a_kernels_avx512()) return -1;
    const int oh = height + 2 * pad - 3, ow = width + 2 * pad - 3;
    if (n <= 0 || oh <= 0 || ow <= 0) return 0;
    struct job j = { .x = x, .w = weight, .bias = bias, .n = n, .cin = cin, .h = height, .wd = width, .pad = pad,
                     .oh = oh, .ow = ow, .y = y };
    f2a_parallel(forward_image, &j, n, threads < 1 ? 1 : threads);
    return 0;
}

int f2a_conv4x4_single_backward(const float *x, int n, int cin, int height, int width, int pad, const float *weight,
                                const float *dy, float *dx, float *dw, float *db, int threads) {
    if (!f2a_kernels_avx512()) return -1;
    const int oh = height + 2 * pad - 3, ow = width + 2 * pad - 3;
    if (n <= 0 || cin <= 0 || oh <= 0 || ow <= 0) return 0;
    if (threads < 1) threads = 1;
    struct job j = { .x = x, .w = weight, .dy = dy, .n = n, .cin = cin, .h = height, .wd = width, .pad = pad,
                     .oh = oh, .ow = ow, .dx = dx, .dw = dw };
    if (dx) f2a_parallel(input_grad_group, &j, n * ((cin + DX_GROUP - 1) / DX_GROUP), threads);
    if (dw) f2a_parallel(weight_grad_channel, &j, cin, threads);
    if (db) {
        double sum = 0;
        for (size_t i = 0; i < (size_t) n * oh * ow; i++) sum += dy[i];
        *db += (float) sum;
    }
    return 0;
}
