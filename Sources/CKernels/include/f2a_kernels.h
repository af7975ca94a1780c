/* Hand-vectorised CPU kernels (AVX2 + FMA) behind F2ACore's layers, and the
 * thread pool they run on. Internal to flash2ambient. All tensors are
 * float32, NCHW, batch 1. */
#ifndef F2A_KERNELS_H
#define F2A_KERNELS_H

#include <stddef.h>

/** 1 if this CPU runs the AVX2/FMA kernels, else 0 (callers fall back to GEMM). */
int f2a_kernels_available(void);

/** 1 if this CPU and its OS run AVX-512 F, CD, BW, DQ and VL (OpenBLAS's SkylakeX kernels), else 0. */
int f2a_cpu_has_avx512(void);

/** 1 if the kernels use their AVX-512 forms (and the trainer's AVX-512-only kernels run) on
 *  the calling thread: on CPUs that have AVX-512 unless the environment's F2A_AVX512 is 0
 *  (read once), or as this thread last set; a pool job runs with its caller's. */
int f2a_kernels_avx512(void);

/** Turns the AVX-512 kernels on (if the CPU has them) or off for the calling thread and the
 *  pool jobs it dispatches, for tests and A/B timings; returns the previous setting. The
 *  engine's results are bit-identical either way; the trainer's kernels run their AVX2 forms
 *  when off (some sums in another order), and its AVX-512-only ones (the stride-2 weight
 *  gradient, the upsampling backward, the 4x4 single-channel convolution) decline, their GEMM
 *  fallbacks rounding differently. */
int f2a_kernels_set_avx512(int enable);

/** The pool's: a worker takes its job's caller's setting (f2a_kernels_avx512's value there). */
void f2a_kernels_adopt_avx512(int blocks);

/** One work item: `thread` (0 ..< threads) identifies the calling thread. */
typedef void (*f2a_task_fn)(void *ctx, int item, int thread);

/**
 * Runs fn(ctx, i, thread) for i in 0 ..< items on up to `threads` threads
 * (at most 16) of a persistent pool, the caller included; returns when all
 * are done. Items are claimed in shrinking runs, thread 1's from the end of the
 * range and the others' from its start (pool.c). A call made while
 * another is in progress (from another thread, or nested: from inside an
 * item, whose thread the pool already holds) runs all its items on the
 * caller. The one pool of the library: F2ACore's parallelFor runs on it too.
 */
void f2a_parallel(f2a_task_fn fn, void *ctx, int items, int threads);

/**
 * delta +1: keep the pool's idle workers polling (~1 ms before they sleep) until
 * the matching -1, and wake the sleeping ones now; holds nest and may come
 * from several threads. For a sequence of dispatches with serial work in
 * between (a forward pass), so that no dispatch waits for a worker to wake.
 */
void f2a_pool_hold(int delta);

/** M[rows x cols] = U[rows x K] V[K x cols] as the convolutions' GEMMs compute it, for the
 *  tests of every run of panels: rows 4 or 6, u packed [K][rows], v cols / 16 consecutive
 *  [K][16] panels (cols a multiple of 16), m rows ldm floats apart; the AVX-512 blocks when
 *  f2a_kernels_avx512(). */
void f2a_gemm_panels(int rows, int K, const float *u, const float *v, float *m, size_t ldm, int cols);

/** Floats needed by f2a_conv3x3_pack for a [cout, cin, 3, 3] weight. */
size_t f2a_conv3x3_packed_count(int cout, int cin);

/** Transforms [cout, cin, 3, 3] weights into the kernel's Winograd layout,
 *  on up to `threads` threads of the pool. */
void f2a_conv3x3_pack(const float *weight, int cout, int cin, float *packed, int threads);

/**
 * Weight gradient of a 3x3 convolution (stride 1, zero padding 1), computed directly
 * (weight_grad.c): dw[cout][cin][3][3] += the correlation of dy [n, cout, height, width]
 * with the input [n, cin, height, width], the channel concatenation of x [n, c1, ...] and
 * x2 [n, cin - c1, ...] (x2 unused, may be NULL, when c1 == cin: a decoder conv's
 * [upsampled, skip] is read where it lies). plane_sums: NULL, or [n][cout] set to the sum
 * of each dy plane (the bias gradient's terms, summed as the trainer's laneSum sums a
 * plane). The AVX-512 blocks where f2a_kernels_avx512(), else the AVX2 ones; returns -1
 * on a CPU without AVX2/FMA (f2a_kernels_available(): the caller lowers to a GEMM
 * instead), -2 if scratch memory could not be allocated, -3 for c1 outside 0...cin or a
 * missing x2, else 0.
 */
int f2a_conv3x3_weight_grad(const float *x, int c1, const float *x2, const float *dy, int n, int cin, int cout,
                            int height, int width, float *dw, double *plane_sums, int threads);

/**
 * Four GEMMs over shifted views of one matrix, summed (shifted_gemm.c):
 *
 *   c[r][j] = sum over s < 4, d < depth of A(r, s, d) * b[d * ldb + j + off[s]]
 *
 * for r < rows, j < n (c's rows ldc apart; other columns untouched), where
 * A(r, s, d) = a[r * a_row + s * a_shift + d * a_depth]. Every b element read,
 * b[d * ldb + j + off[s]] for j < n, must exist; off[s] >= 0. Sums over s, then
 * d, whatever the threads and the register block (AVX-512, or AVX2 where
 * f2a_kernels_avx512() is 0: the same bits). Returns -1 on a CPU without
 * AVX2/FMA (the caller runs the GEMMs instead), -2 if scratch memory could not
 * be allocated, else 0.
 */
int f2a_shifted_gemm(const float *a, ptrdiff_t a_row, ptrdiff_t a_shift, ptrdiff_t a_depth, int rows, int depth,
                     const float *b, size_t ldb, const ptrdiff_t off[4], int n, float *c, size_t ldc, int threads);

/**
 * The weight gradient of the same shifted GEMMs (shifted_gemm.c):
 *
 *   c[r * ldc + s * depth + d] = sum over j < n of a[r * lda + j] * b[d * ldb + j + off[s]]
 *
 * for r < rows, s < 4, d < depth (written, not added to). Every b element read must exist;
 * off[s] >= 0. The columns are cut into `slices` equal ranges, each summed apart and the
 * ranges added in order: the result depends on `slices`, not on `threads`. Returns -1
 * without the AVX-512 blocks (touching nothing), -2 if memory could not be allocated, else 0.
 */
int f2a_shifted_weight_grad(const float *a, size_t lda, const float *b, size_t ldb, const ptrdiff_t off[4], int rows,
                            int depth, int n, int slices, float *c, size_t ldc, int threads);

/**
 * A 2x2 convolution without padding on a grid of planes, by Winograd F(2x2, 2x2)
 * (winograd_phase.c): the 4x4 stride-2 layers on their input's phases, as
 * f2a_shifted_gemm computes them with offsets { 0, 1, pw, pw + 1 }.
 *
 *   e[o * lde + at(b, i, j)] = sum over a, b' < 2, c < k of
 *                              w[(o * 4 + 2 a + b') * k + c] * p[c * ldp + at(b, i + a, j + b')]
 *
 * for every image b < images, i < oh, j < ow, where at(b, i, j) = (b * ph + i) * pw + j,
 * oh <= ph, ow <= pw (ldp, lde >= images * ph * pw; p past a plane's ph x pw reads zeros). Other
 * elements of e are not written. The same bits with the AVX2 and the AVX-512 blocks.
 * Returns -1 on a CPU without AVX2/FMA (touching nothing), -2 if memory could not be
 * allocated, else 0.
 */
int f2a_phase_conv2x2(const float *p, size_t ldp, int k, int images, int ph, int pw, int oh, int ow,
                      const float *w, int out, float *e, size_t lde, int threads);

/**
 * The same weight gradient in the Winograd domain of F(4x4, 3x3), in three steps
 * around the caller's 36 GEMMs (weight_grad_winograd.c):
 *   v[xi][ci][t]  = B^T d B of input tile tile0 + t          (f2a_winograd_dw_input;
 *                   x's channels into the first rows of v, whose v[xi] have v_channels rows)
 *   dm[xi][co][t] = A g A^T of output-gradient tile tile0 + t (f2a_winograd_dw_gradient)
 *   du[xi][co][ci] = sum over tiles of dm[xi][co][t] v[xi][ci][t]    (the caller)
 *   dw[co][ci] += G^T du[co][ci] G                           (f2a_winograd_dw_finish)
 * Rows hold ld >= tiles floats. Tiles: f2a_winograd_tiles(n, height, width) in all.
 */
int f2a_winograd_tiles(int n, int height, int width);
/* Tiles are numbered across the images (image, tile row, tile column), so the
 * transforms need no image count: x and dy hold at least the images tile0 + tiles reach. */
void f2a_winograd_dw_input(const float *x, int cin, int height, int width, int tile0, int tiles,
                           float *v, int ld, int v_channels, int threads);
void f2a_winograd_dw_gradient(const float *dy, int cout, int height, int width, int tile0, int tiles,
                              float *dm, int ld, int threads);
void f2a_winograd_dw_finish(const float *du, int cout, int cin, float *dw, int threads);

/**
 * 4x4 convolution, stride 1, zero padding pad, by Winograd F(3x3, 4x4), as transforms
 * around the caller's 36 GEMMs per chunk of tiles (winograd_k4.c):
 *   u[xi][co][ci]  = G g G^T                                  (f2a_wk4_weights)
 *   v[xi][ci][t]   = B^T d B of input tile tile0 + t           (f2a_wk4_input)
 *   m[xi][co][t]   = sum over ci of u[xi][co][ci] v[xi][ci][t]  (the caller)
 *   y             <- A^T m A + bias, the tiles' valid pixels    (f2a_wk4_output)
 *   dm[xi][co][t]  = A dy A^T of output tile tile0 + t         (f2a_wk4_output_grad)
 *   du, dv         = dm v^T, u^T dm                            (the caller)
 *   dw[co][ci]    += G^T du G                                  (f2a_wk4_weight_grad_finish)
 *   dx            += B dv B^T, overlapping tiles added         (f2a_wk4_input_grad)
 * Tiles: f2a_wk4_tiles(n, out_h, out_w) in all, numbered (image, tile row, tile column)
 * over 3x3 output tiles; x, dx [n][c][h][w], y, dy [n][cout][out_h][out_w] (out = in + 2 pad - 3).
 * Rows of v, m, dm, dv hold ld >= tiles floats. bias may be NULL.
 */
int f2a_wk4_tiles(int n, int out_h, int out_w);
void f2a_wk4_weights(const float *w, int cout, int cin, float *u, int threads);
void f2a_wk4_input(const float *x, int c, int h, int w, int pad, int out_h, int out_w, int tile0, int tiles,
                   float *v, int ld, int threads);
void f2a_wk4_output(const float *m, int cout, int out_h, int out_w, int tile0, int tiles, int ld,
                    const float *bias, float *y, int threads);
void f2a_wk4_output_grad(const float *dy, int cout, int out_h, int out_w, int tile0, int tiles,
                         float *dm, int ld, int threads);
void f2a_wk4_input_grad(const float *dv, int c, int h, int w, int pad, int out_h, int out_w, int tile0, int tiles,
                        int ld, float *dx, int threads);
void f2a_wk4_weight_grad_finish(const float *du, int cout, int cin, float *dw, int threads);

/**
 * Weights of more than this many bytes in the Winograd domain (36 cin cout floats) make
 * f2a_conv3x3 share each band of tiles between its threads instead of giving each thread
 * bands of its own (winograd.c; weights over 1 MB are shared too when the image has few
 * tiles). Sets it for calls from the calling thread only (0: the default, 10 MB) and
 * returns the previous setting: for tests of both modes at small sizes.
 */
size_t f2a_conv3x3_set_shared_limit(size_t bytes);

/**
 * 3x3 convolution, stride 1, zero padding 1, bias, optional ReLU
 * (Winograd F(4x4, 3x3); see winograd.c).
 *
 * The input is the channel concatenation of `nsrc` tensors (a U-Net skip
 * concatenation costs nothing): source s has src_channels[s] planes of
 * height x width at srcs[s]. out: [cout, height, width], fully written.
 * gate: NULL, or [cout, height, width]: where gate is not > 0 (NaN included)
 * the output is 0, in the same pass (the trainer's input gradient through
 * the ReLU whose output is gate). Must not overlap out.
 * `threads` >= 1 threads of the pool (at most 16).
 * Returns 0, or -1 if its workspace could not be allocated.
 */
int f2a_conv3x3(const float *const *srcs, const int *src_channels, int nsrc,
                int height, int width, const float *packed, const float *bias,
                int cout, int relu, const float *gate, float *out, int threads);

/** Floats needed by f2a_convT2x2_pack for a [cin, cout, 2, 2] weight. */
size_t f2a_convT2x2_packed_count(int cin, int cout);

/** Reorders [cin, cout, 2, 2] transposed-conv weights for f2a_convT2x2. */
void f2a_convT2x2_pack(const float *weight, int cin, int cout, float *packed);

/**
 * 2x2 transposed convolution, stride 2, bias, optional ReLU (see upsample.c).
 * x: [cin, height, width]; out: [cout, 2 height, 2 width], fully written.
 * Returns 0, or -1 if its workspace could not be allocated.
 */
int f2a_convT2x2(const float *x, int cin, int height, int width, const float *packed, const float *bias,
                 int cout, int relu, float *out, int threads);

/**
 * Backward of a 2x2 transposed convolution, stride 2, whose input was x [n][cin][height][width]
 * and weight [cin][cout][2][2]: from dy [n][dy_channels][2 height][2 width], of which the first
 * cout channels are the output's gradient, counted only where `gate` (NULL, or the ReLU output
 * [n][cout][2 height][2 width]) is positive: dx [n][cin][height][width] written, dw += and
 * db [cout] += the parameter gradients. The sums do not depend on `threads` (see upsample.c).
 * Returns 0; -1, touching nothing, unless the AVX-512 blocks run (the caller then uses GEMMs);
 * -2 if its memory could not be allocated.
 */
int f2a_convT2x2_backward(const float *x, int n, int cin, int height, int width, const float *dy, int dy_channels,
                          const float *gate, const float *weight, int cout, float *dx, float *dw, float *db, int threads);

/**
 * 4x4 convolution, stride 1, zero padding `pad`, to a single output channel (conv4x4_single.c):
 * x [n][cin][height][width], weight [cin][4][4] -> y [n][height + 2 pad - 3][width + 2 pad - 3],
 * written. Returns -1 without the AVX-512 blocks (touching nothing; the caller lowers to a
 * GEMM), else 0.
 */
int f2a_conv4x4_single(const float *x, int n, int cin, int height, int width, int pad, const float *weight, float bias,
                       float *y, int threads);

/**
 * Its backward from dy [n][oh][ow]: dx [n][cin][height][width] written (if not NULL), dw [cin][16]
 * and *db added to (if not NULL). The sums do not depend on `threads`. Returns -1 without the
 * AVX-512 blocks (touching nothing), else 0.
 */
int f2a_conv4x4_single_backward(const float *x, int n, int cin, int height, int width, int pad, const float *weight,
                                const float *dy, float *dx, float *dw, float *db, int threads);

/** Activations of f2a_conv1x1. */
enum { F2A_ACT_IDENTITY = 0, F2A_ACT_RELU = 1, F2A_ACT_SIGMOID = 2, F2A_ACT_TANH = 3 };

/**
 * 1x1 convolution with bias and activation `act` (F2A_ACT_*), over planes
 * of `hw` pixels: out[o] = act(bias[o] + sum_c weight[o][c] x[c]).
 * If `flash` is not NULL (cout planes of hw pixels), each output is then
 * ratio-log decoded against it: clamp((flash + 1) 2^(2 out - 1) - 1, 0, 1).
 * x: [cin, hw], weight: [cout, cin], out: [cout, hw], fully written.
 */
void f2a_conv1x1(const float *x, int cin, long hw, const float *weight, const float *bias, int cout, int act,
                 const float *flash, float *out, int threads);

/**
 * Backward of f2a_conv1x1's convolution (its activation excluded), for the trainer's output
 * layer: from x [cin, hw] (its input) and dz [cout, hw] (the gradient at its output),
 * dx [cin, hw] = weight^T dz (skipped when dx is NULL), dw [cout][cin] += sum over the
 * pixels of dz x, db [cout] += sum of dz. The sums go by fixed blocks of pixels, added in
 * block order, so they do not depend on `threads`. scratch: f2a_conv1x1_backward_scratch
 * floats. The AVX-512 blocks where f2a_kernels_avx512(), else the AVX2 ones. Returns -1,
 * touching nothing, unless cout is 3 and the CPU has AVX2/FMA: the caller then lowers to
 * GEMMs; else 0.
 */
size_t f2a_conv1x1_backward_scratch(long hw, int cin, int cout);
int f2a_conv1x1_backward(const float *x, int cin, long hw, const float *dz, int cout, const float *weight, float *dx,
                         float *dw, float *db, float *scratch, int threads);

/** 2x2 max-pooling, stride 2, of `planes` planes of height x width (odd
 *  trailing rows/columns dropped) into [planes, height / 2, width / 2]. */
void f2a_maxpool2x2(const float *x, int planes, int height, int width, float *out, int threads);

/**
 * Interleaved RGB rows to planes [3, height, width]: out[c][y][x] is
 * base[rows[y] row_stride + 3 cols[x] + c] clamped to [0, 1], NaN as 0
 * (rows/cols map padded coordinates to source ones).
 */
void f2a_planar_rgb(const float *base, size_t row_stride, const int *rows, int height, const int *cols, int width,
                    float *out, int threads);

/**
 * out = clamp(f + strength (g - f), 0, 1) per interleaved RGB value, with f
 * the input clamped as by f2a_planar_rgb and g the value at (top + y,
 * left + x) of planes [3, plane_height, plane_width]. out may alias in
 * (same stride). Strides in floats.
 */
void f2a_blend_rgb(const float *in, size_t in_stride, const float *planes, int plane_height, int plane_width,
                   int top, int left, int width, int height, float strength, float *out, size_t out_stride,
                   int threads);

/**
 * Bilinear sampling positions of N pixels from n samples (n <= N), pixel
 * centres aligned, clamped at the edges: pixel X lies between sample
 * first[X] and min(first[X] + 1, n - 1), `weight[X]` of the way to the
 * second. What f2a_guided_map expects for the photo's columns.
 */
void f2a_guided_positions(int n, int N, int *first, float *weight);

/**
 * Guided mode's map (F2AModel's GuidedPlan) of the rectangle (left, top,
 * width, height) of a photo H rows high: each pixel of `in` (interleaved
 * RGB, clamped to [0, 1], NaN as 0) through the affine colour transform
 * bilinearly upsampled from `coefficients` (12 planes of w x h, w <= the
 * photo's width, h <= H: A row-major by output channel, then b), blended
 * with the input by `strength` and clamped to [0, 1]. Columns sample at
 * columns/weights (from f2a_guided_positions(w, photo width), indexed by
 * the photo's column), rows at the same positions for h and H. out may
 * alias in (same stride). Strides in floats. Single-threaded: callers
 * split the photo. Results differ from the plain loop only by rounding.
 */
void f2a_guided_map(const float *coefficients, int w, int h, const int *columns, const float *weights, int H,
                    float strength, const float *in, size_t in_stride, float *out, size_t out_stride, int left,
                    int top, int width, int height);

/**
 * f2a_guided_map on 8-bit pixels (strides in bytes): each value u goes to the
 * map as u * (float) (1 / 255.) and back as (uchar) clamp(v * 255.f + .5f, 0,
 * 255), truncated, with separate roundings: what libvips's vips_linear1 to
 * float and back, then vips_cast to uchar, compute. Equal, value for value,
 * to converting, f2a_guided_map, converting back.
 */
void f2a_guided_map_u8(const float *coefficients, int w, int h, const int *columns, const float *weights, int H,
                       float strength, const unsigned char *in, size_t in_stride, unsigned char *out,
                       size_t out_stride, int left, int top, int width, int height);

/** f2a_guided_map(_u8) without AVX2/FMA: what they run on other CPUs (for the tests). */
void f2a_guided_map_portable(const float *coefficients, int w, int h, const int *columns, const float *weights,
                             int H, float strength, const float *in, size_t in_stride, float *out,
                             size_t out_stride, int left, int top, int width, int height);
void f2a_guided_map_u8_portable(const float *coefficients, int w, int h, const int *columns, const float *weights,
                                int H, float strength, const unsigned char *in, size_t in_stride,
                                unsigned char *out, size_t out_stride, int left, int top, int width, int height);

/** out[i] = a x[i] + b for i < n. */
void f2a_affine(const float *x, long n, float a, float b, float *out, int threads);

#endif
