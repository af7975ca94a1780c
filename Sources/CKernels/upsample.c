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

/* Backward of the 2x2 transposed convolution: for every image b, with T_b [4 cout x pixels]
 * the four phases of the output gradient (T[4 o + 2 dy + dx][y w + x] = dy[o][2y+dy][2x+dx],
 * zero where the ReLU's output `gate` is not positive),
 *
 *     dx_b = W T_b      (W = weight as [cin x 4 cout])
 *     dW  += x_b T_b^T,  db[o] += the sum of T_b's rows 4 o ... 4 o + 3.
 *
 * The trainer gathered T for all images (a pass writing the output gradient's size), then
 * ran both products per image in OpenBLAS: small-row GEMMs (32-128 rows against 64-512
 * deep) at 65-125 GFLOP/s. Here each block of input pixels (several rows where T is
 * narrow) gathers its columns of T once, as rows, and both products run on copies made in
 * cache for the engine's GEMM blocks (microkernel.h): dx on T's [16]-lane panels, dW on its
 * 16 x 16 transposes against the block's input rows. The width-0.25 generator's four
 * upsampling layers (crop 128, batch 8), backward ms per step, 3 alternating processes
 * (f2a-train bench --layers): 11.8 / 11.6 / 10.7 -> 7.8 / 8.6 / 8.6.
 *
 * Sums that do not depend on the threads: the blocks of all images are cut into `shares`
 * ranges, in order; each share sums its blocks' dW and db into a partial of its own, the
 * partials are added in share order at the end. */

/* Shares of the blocks: a constant, so that the sums do not depend on the threads; 8 keep
 * up to 4 threads busy to the end (claims of whole shares). */
#define BWD_SHARES 8

struct bwd_job {
    const float *x, *dy, *gate;
    int n, cin, h, w, dyc, cout, k, kp, cinp; /* k = 4 cout rows of T, kp: padded to 16 */
    int blocks, shares, pb; /* pb: input pixels per block, a multiple of 64 */
    const float *U;       /* W packed [cinp / 6][kp][6] */
    float *dx;
    float *dw_partial;    /* [shares][cin][k] */
    float *db_lanes;      /* [shares][cout][16] */
    float *work;          /* per thread: work_floats */
    size_t work_floats;
};

/* The block's columns of T as rows, tr [kp][pb] (rows past k and columns past np zero), its
 * lanes added into db (per output channel, both phases of a row). Input row by input row:
 * each output row's even and odd columns come apart in two permutes per 16 pixels, masked at
 * a row's end, so every width takes the same path. */
__attribute__((target("avx512f")))
static void gather_rows(const struct bwd_job *j, int b, int p0, int np, float *tr, float *db) {
    const int w = j->w, w2 = 2 * w, pb = j->pb;
    const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    const __m512 zero = _mm512_setzero_ps();
    for (int f = 0; f < np;) {
        const int p = p0 + f, y = p / w, x = p % w, run = w - x < np - f ? w - x : np - f;
        for (int o = 0; o < j->cout; o++) {
            __m512 sum = zero;
            for (int dy = 0; dy < 2; dy++) {
                const float *row = j->dy + (((size_t) b * j->dyc + o) * 2 * j->h + 2 * y + dy) * w2 + 2 * x;
                const float *grow = j->gate ? j->gate + (((size_t) b * j->cout + o) * 2 * j->h + 2 * y + dy) * w2 + 2 * x : NULL;
                float *te = tr + (size_t) (4 * o + 2 * dy) * pb + f, *to = te + pb;
                for (int c = 0; c < run; c += 16) {
                    /* m pixels left: 2 m floats of the dy row, m of each T row. */
                    const int m = run - c < 16 ? run - c : 16;
                    const __mmask16 lm = cols_in(0, 2 * m), hm = cols_in(16, 2 * m), sm = cols_in(0, m);
                    const __m512 lo = _mm512_maskz_loadu_ps(lm, row + 2 * c), hi = _mm512_maskz_loadu_ps(hm, row + 2 * c + 16);
                    __m512 e = _mm512_permutex2var_ps(lo, even, hi), d = _mm512_permutex2var_ps(lo, odd, hi);
                    if (grow) {
                        const __m512 glo = _mm512_maskz_loadu_ps(lm, grow + 2 * c), ghi = _mm512_maskz_loadu_ps(hm, grow + 2 * c + 16);
                        e = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_permutex2var_ps(glo, even, ghi), zero, _CMP_GT_OQ), e);
                        d = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_permutex2var_ps(glo, odd, ghi), zero, _CMP_GT_OQ), d);
                    }
                    _mm512_mask_storeu_ps(te + c, sm, e);
                    _mm512_mask_storeu_ps(to + c, sm, d);
                    sum = _mm512_add_ps(sum, _mm512_add_ps(e, d));
                }
            }
            _mm512_storeu_ps(db + (size_t) o * 16, _mm512_add_ps(_mm512_loadu_ps(db + (size_t) o * 16), sum));
        }
        f += run;
    }
    if (np < pb)
        for (int r = 0; r < j->k; r++) memset(tr + (size_t) r * pb + np, 0, (size_t) (pb - np) * sizeof(float));
}

__attribute__((target("avx512f")))
static void run_share(void *ctx, int share, int thread) {
    const struct bwd_job *j = ctx;
    const int pb = j->pb, hw = j->h * j->w, k = j->k, kp = j->kp, cin = j->cin, cinp = j->cinp, nb = (hw + pb - 1) / pb;
    float *tr = j->work + (size_t) thread * j->work_floats; /* T's rows: [kp][pb] */
    float *tp = tr + (size_t) pb * kp;                      /* T as panels: [pb / 16][kp][16] */
    float *tt = tp + (size_t) pb * kp;                      /* T^T as panels: [kp / 16][pb][16] */
    float *xp = tt + (size_t) pb * kp;                      /* x packed: [cinp / 6][pb][6] */
    float *mdx = xp + (size_t) pb * cinp;                   /* [cinp][pb] */
    float *mdw = mdx + (size_t) pb * cinp;                  /* [cinp][kp] */
    float *dw = j->dw_partial + (size_t) share * cin * k, *db = j->db_lanes + (size_t) share * j->cout * 16;
    memset(dw, 0, (size_t) cin * k * sizeof(float));
    memset(db, 0, (size_t) j->cout * 16 * sizeof(float));
    memset(tr + (size_t) k * pb, 0, (size_t) (kp - k) * pb * sizeof(float));
    const int first = (int) ((long) j->blocks * share / j->shares), end = (int) ((long) j->blocks * (share + 1) / j->shares);
    for (int blk = first; blk < end; blk++) {
        const int b = blk / nb, p0 = (blk % nb) * pb, np = hw - p0 < pb ? hw - p0 : pb;
        gather_rows(j, b, p0, np, tr, db);
        for (int q = 0; q < pb / 16; q++)
            for (int r = 0; r < kp; r++)
                _mm512_storeu_ps(tp + ((size_t) q * kp + r) * 16, _mm512_loadu_ps(tr + (size_t) r * pb + 16 * q));
        /* dx: [cin x kp] [kp x pb] */
        for (int g = 0; g < cinp / MK_ROWS; g++)
            gemm_panels(MK_ROWS, 1, kp, j->U + (size_t) g * kp * MK_ROWS, tp, mdx + (size_t) g * MK_ROWS * pb, pb, pb);
        for (int ci = 0; ci < cin; ci++)
            memcpy(j->dx + ((size_t) b * cin + ci) * hw + p0, mdx + (size_t) ci * pb, (size_t) np * sizeof(float));
        /* dW: [cin x pb] [pb x kp] */
        for (int r = 0; r < kp / 16; r++)
            for (int q = 0; q < pb / 16; q++)
                transpose16(tr + (size_t) 16 * r * pb + 16 * q, pb, tt + ((size_t) r * pb + 16 * q) * 16, 16);
        for (int g = 0; g < cinp / MK_ROWS; g++)
            for (int i = 0; i < MK_ROWS; i++) {
                const int ci = g * MK_ROWS + i;
                const float *src = j->x + ((size_t) b * cin + ci) * hw + p0;
                float *dst = xp + (size_t) g * pb * MK_ROWS + i;
                int p = 0;
                if (ci < cin)
                    for (; p < np; p++) dst[(size_t) p * MK_ROWS] = src[p];
                for (; p < pb; p++) dst[(size_t) p * MK_ROWS] = 0;
            }
        for (int g = 0; g < cinp / MK_ROWS; g++)
            gemm_panels(MK_ROWS, 1, pb, xp + (size_t) g * pb * MK_ROWS, tt, mdw + (size_t) g * MK_ROWS * kp, kp, kp);
        for (int ci = 0; ci < cin; ci++)
            for (int r = 0; r < k; r++) dw[(size_t) ci * k + r] += mdw[(size_t) ci * kp + r];
    }
}

/* dw += the shares' partials, in share order, in chunks of SUM_CHUNK floats on the pool. */
#define SUM_CHUNK 4096
struct sum_job {
    const float *partial;
    float *dw;
    size_t per;
    int shares;
};

static void sum_shares(void *ctx, int item, int thread) {
    const struct sum_job *j = ctx;
    (void) thread;
    const size_t i0 = (size_t) item * SUM_CHUNK, i1 = i0 + SUM_CHUNK < j->per ? i0 + SUM_CHUNK : j->per;
    for (int s = 0; s < j->shares; s++)
        for (size_t i = i0; i < i1; i++) j->dw[i] += j->partial[s * j->per + i];
}

int f2a_convT2x2_backward(const float *x, int n, int cin, int height, int width, const float *dy, int dy_channels,
                          const float *gate, const float *weight, int cout, float *dx, float *dw, float *db, int threads) {
    if (!f2a_kernels_avx512()) return -1;
    const int hw = height * width;
    if (n <= 0 || cin <= 0 || cout <= 0 || hw <= 0) return 0;
    if (threads < 1) threads = 1;
    if (threads > 16) threads = 16;
    struct bwd_job j = { .x = x, .dy = dy, .gate = gate, .n = n, .cin = cin, .h = height, .w = width, .dyc = dy_channels,
                         .cout = cout, .k = 4 * cout, .kp = round_up(4 * cout, 16), .cinp = round_up(cin, MK_ROWS), .dx = dx };
    /* Blocks of several input rows where T is narrow: each block reads 2 rows of 2 x cout planes
     * of dy (and of the gate), and at one row per block those many short streams ran at a few
     * GB/s. Up to 64 KB of T per block. */
    j.pb = (int) (((size_t) 16384 / j.kp) / 64 * 64);
    if (j.pb < 64) j.pb = 64;
    if (j.pb > 256) j.pb = 256;
    j.blocks = n * ((hw + j.pb - 1) / j.pb);
    j.shares = BWD_SHARES < j.blocks ? BWD_SHARES : j.blocks;
    j.work_floats = (size_t) 3 * j.pb * j.kp + (size_t) 2 * j.pb * j.cinp + (size_t) j.cinp * j.kp;
    float *U = malloc((size_t) j.cinp * j.kp * sizeof(float));
    j.dw_partial = malloc((size_t) j.shares * cin * j.k * sizeof(float));
    j.db_lanes = malloc((size_t) j.shares * cout * 16 * sizeof(float));
    j.work = workspace_acquire(j.work_floats * threads);
    if (!U || !j.dw_partial || !j.db_lanes || !j.work) {
        free(U); free(j.dw_partial); free(j.db_lanes);
        if (j.work) workspace_release(j.work);
        return -2;
    }
    /* W as [cin x 4 cout] (weight [cin][cout][2][2] is exactly that) in 6-row blocks, as deep as
     * T's panels (rows past 4 cout and cin zero). */
    for (int ci = 0; ci < j.cinp; ci++)
        for (int r = 0; r < j.kp; r++)
            U[((size_t) (ci / MK_ROWS) * j.kp + r) * MK_ROWS + ci % MK_ROWS] =
                ci < cin && r < j.k ? weight[(size_t) ci * j.k + r] : 0;
    j.U = U;
    f2a_parallel(run_share, &j, j.shares, threads);
    struct sum_job sj = { j.dw_partial, dw, (size_t) cin * j.k, j.shares };
    f2a_parallel(sum_shares, &sj, (int) ((sj.per + SUM_CHUNK - 1) / SUM_CHUNK), threads);
    for (int o = 0; o < cout; o++) {
        double sum = 0;
        for (int s = 0; s < j.shares; s++)
            for (int l = 0; l < 16; l++) sum += j.db_lanes[((size_t) s * cout + o) * 16 + l];
        db[o] += (float) sum;
    }
    free(U);
    free(j.dw_partial);
    free(j.db_lanes);
    workspace_release(j.work);
    return 0;
}
