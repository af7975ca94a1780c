#include "f2a_kernels.h"
#include "microkernel.h"
#include "workspace.h"

#include <stdlib.h>
#include <string.h>

/* 2x2 transposed convolution, stride 2 (the decoder's exact 2x upsampling):
 * out[o][2y+dy][2x+dx] = bias[o] + sum_i w[i][o][dy][dx] x[i][y][x].
 *
 * One GEMM [4 cout x cin] x [cin x pixels] on the same register block as
 * the Winograd kernel, in blocks of PB input pixels per work item: the
 * block's input columns are copied into the [cin][16] panels the block
 * wants, multiplied into a small M, and M is written straight into the 2x
 * grid with bias and ReLU (dx = 0 and 1 interleaved in registers), so the
 * output is written once and no full-size intermediate exists. */

/* Input pixels per work item: four 16-column panels, the AVX-512 GEMM's widest block, and U
 * re-read once per 64 pixels. Against 32 (medians of 51, 2 threads, in ms): 512 -> 256 at
 * 16 x 16 1.56-1.67 / 1.21-1.26; 256 -> 128 at 32^2 1.60-1.62 / 1.32-1.36; 128 -> 64 at 64^2
 * 1.96-2.01 / 1.46-1.60; 64 -> 32 at 128^2 2.91-2.95 / 1.99-2.01; at 12 x 16 (3 items for 2
 * threads) 1.16-1.21 / 1.17-1.30. */
#define PB 64

static int round_up(int x, int m) { return (x + m - 1) / m * m; }

size_t f2a_convT2x2_packed_count(int cin, int cout) {
    return (size_t) round_up(4 * cout, MK_ROWS) * (size_t) cin;
}

/* Rows r = 4 o + 2 dy + dx of [4 cout x cin], packed [r / 6][cin][6]. */
void f2a_convT2x2_pack(const float *weight, int cin, int cout, float *packed) {
    int rows = 4 * cout;
    memset(packed, 0, f2a_convT2x2_packed_count(cin, cout) * sizeof(float));
    for (int r = 0; r < rows; r++)
        for (int ci = 0; ci < cin; ci++)
            packed[((size_t) (r / MK_ROWS) * cin + ci) * MK_ROWS + r % MK_ROWS] = weight[(size_t) ci * rows + r];
}

struct job {
    const float *x, *U, *bias;
    int cin, cout, rowsp, h, w, relu;
    float *out, *work;
    size_t work_floats;
};

__attribute__((target("avx2,fma")))
static void run_block(void *ctx, int item, int thread) {
    const struct job *j = ctx;
    const int hw = j->h * j->w, p0 = item * PB, n = hw - p0 < PB ? hw - p0 : PB;
    float *V = j->work + (size_t) thread * j->work_floats; /* [PB / 16][cin][16] */
    float *M = V + (size_t) PB * j->cin;                    /* [rowsp][PB] */
    for (int b = 0; b < PB / MK_COLS; b++)
        for (int ci = 0; ci < j->cin; ci++) {
            float *d = V + ((size_t) b * j->cin + ci) * MK_COLS;
            const float *src = j->x + (size_t) ci * hw + p0 + b * MK_COLS;
            int q = b * MK_COLS, m = n - q < 0 ? 0 : (n - q < MK_COLS ? n - q : MK_COLS);
            if (m == MK_COLS) { /* inline: a memcpy call per 64 bytes cost as much as the GEMM */
                _mm256_storeu_ps(d, _mm256_loadu_ps(src));
                _mm256_storeu_ps(d + 8, _mm256_loadu_ps(src + 8));
                continue;
            }
            memcpy(d, src, (size_t) m * sizeof(float));
            memset(d + m, 0, (size_t) (MK_COLS - m) * sizeof(float));
        }
    const int wide = f2a_kernels_avx512();
    for (int g = 0; g < j->rowsp / MK_ROWS; g++)
        gemm_panels(MK_ROWS, wide, j->cin, j->U + (size_t) g * j->cin * MK_ROWS, V, M + (size_t) g * MK_ROWS * PB, PB, PB);
    const __m256 zero = _mm256_setzero_ps();
    const int y0 = p0 / j->w, x0 = p0 % j->w; /* divisions once per item, not per vector */
    for (int o = 0; o < j->cout; o++) {
        const __m256 bias = _mm256_set1_ps(j->bias[o]);
        for (int dy = 0; dy < 2; dy++) {
            const float *m0 = M + (size_t) (4 * o + 2 * dy) * PB, *m1 = m0 + PB;
            float *plane = j->out + (size_t) o * 4 * hw;
            int p = 0, y = y0, x = x0;
            while (p < n) {
                if (x >= j->w) { x -= j->w; y++; }
                float *dst = plane + (size_t) (2 * y + dy) * 2 * j->w + 2 * x;
                if (p + 8 <= n && x + 8 <= j->w) {
                    /* 8 pixels of one row: interleave dx = 0, 1 into 16 floats. */
                    __m256 a = _mm256_add_ps(_mm256_loadu_ps(m0 + p), bias);
                    __m256 c = _mm256_add_ps(_mm256_loadu_ps(m1 + p), bias);
                    if (j->relu) { a = _mm256_max_ps(a, zero); c = _mm256_max_ps(c, zero); }
                    __m256 lo = _mm256_unpacklo_ps(a, c), hi = _mm256_unpackhi_ps(a, c);
                    _mm256_storeu_ps(dst, _mm256_permute2f128_ps(lo, hi, 0x20));
                    _mm256_storeu_ps(dst + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
                    p += 8;
                    x += 8;
                } else {
                    float a = m0[p] + j->bias[o], c = m1[p] + j->bias[o];
                    if (j->relu) { a = a > 0 ? a : 0; c = c > 0 ? c : 0; }
                    dst[0] = a;
                    dst[1] = c;
                    p += 1;
                    x += 1;
                }
            }
        }
    }
}

int f2a_convT2x2(const float *x, int cin, int height, int width, const float *packed, const float *bias,
                 int cout, int relu, float *out, int threads) {
    struct job j = { x, packed, bias, cin, cout, round_up(4 * cout, MK_ROWS), height, width, relu, out, NULL, 0 };
    int hw = height * width;
    if (hw <= 0 || cout <= 0) return 0;
    if (threads < 1) threads = 1;
    if (threads > 16) threads = 16;
    j.work_floats = (size_t) PB * cin + (size_t) j.rowsp * PB;
    j.work = workspace_acquire(j.work_floats * threads);
    if (!j.work) return -1;
    f2a_parallel(run_block, &j, (hw + PB - 1) / PB, threads);
    workspace_release(j.work);
    return 0;
}
