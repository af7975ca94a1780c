#include "f2a_kernels.h"
#include "winograd_f43.h"
#include "microkernel.h"
#include "workspace.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 3x3 convolution (stride 1, zero padding 1) by Winograd F(4x4, 3x3).
 *
 * Why Winograd: the network is ~95 % 3x3 convolutions, and a direct kernel
 * at best matches onnxruntime (whose kernels already run near the FMA
 * peak). F(4x4, 3x3) computes each 4x4 output tile from a 6x6 input tile
 * with 36 multiplies per (input, output) channel pair instead of 144, so
 * the same FMA rate gives up to 4x the convolutions.
 *
 * Per output tile and channel: V = B^T d B (6x6 input transform), per
 * position xi of the 36: M_xi = U_xi . V_xi summed over input channels
 * (a GEMM [cout x cin] x [cin x tiles], U = G g G^T precomputed at weight
 * load time), Y = A^T M A (4x4 inverse transform) + bias, ReLU.
 *
 * Layouts (all chosen for the GEMM's register block of 6 output channels x
 * 16 tiles, two 8-lane vectors):
 *   U[xi][cout/6][cin][6]       weights, packed once (f2a_conv3x3_pack)
 *   V[xi][tiles/16][cin][16]    transformed input of one band of tiles
 *   M[xi][cout6][tiles]         GEMM output, tiles contiguous
 * The transforms work on 8 horizontally adjacent tiles at once, one per
 * vector lane, gathered and scattered with an in-register 8x4 transpose.
 * Lane order inside a vector is tiles (0,2,4,6,1,3,5,7) - whatever the
 * transpose gives; the GEMM keeps lanes apart and the output transform
 * undoes the same permutation, so no shuffle is spent on fixing it. On
 * CPUs with AVX-512 they take 16 tiles at once instead, one whole V panel
 * row (input_row_wide, output_row_wide; their own lane order, see there).
 *
 * The image is processed in bands (rectangles of tiles) so that V and M
 * stay bounded: either each thread runs whole bands on its own (small
 * layers: no synchronisation, workspace in that core's cache), or all
 * threads share one band at a time in three parallel phases (layers whose
 * U is too big to be re-read by every small band). */

#define TG MK_COLS /* tiles per GEMM register block */
#define NXI 36 /* 6x6 transform positions */

static int round_up(int x, int m) { return (x + m - 1) / m * m; }


size_t f2a_conv3x3_packed_count(int cout, int cin) {
    return (size_t) NXI * (size_t) round_up(cout, gemm_block_rows(cout)) * (size_t) cin;
}

#define PACK_LANES 16 /* weights transformed at once: one 64-byte run per xi row */

struct pack_job {
    const float *weight;
    float *packed;
    int cout, cin, cg;
    size_t xi_stride;
};

/* One group of cg output channels. Within a group the packed rows are
 * j = ci * cg + r (output channel cg * group + r), contiguous in every xi
 * row, so PACK_LANES consecutive j are transformed side by side (in double,
 * as U = G g G^T is defined; lanes vectorise) and stored as one run per row.
 * The trainer packs every 3x3 layer twice per step (forward, and the rotated
 * weights of the backward-data pass); one weight at a time, with 36 scattered
 * stores each, this took 13-17 ns per weight at 128-512 channels: 11.7 % of a
 * width-1.0 step's CPU time, on one core. */
__attribute__((target("avx2,fma"), always_inline))
static inline void pack_group_body(void *ctx, int group) {
    const struct pack_job *job = ctx;
    const double (*const G)[3] = f2a_winograd_g;
    const int cg = job->cg, cin = job->cin, rows = cin * cg;
    float *base = job->packed + (size_t) group * rows;
    for (int j0 = 0; j0 < rows; j0 += PACK_LANES) {
        const int lanes = rows - j0 < PACK_LANES ? rows - j0 : PACK_LANES;
        double g[9][PACK_LANES], gg[6][3][PACK_LANES];
        for (int l = 0; l < PACK_LANES; l++) {
            const int j = j0 + (l < lanes ? l : 0), ci = j / cg, co = group * cg + j % cg;
            const float *w = job->weight + ((size_t) co * cin + ci) * 9;
            for (int k = 0; k < 9; k++) g[k][l] = l < lanes && co < job->cout ? w[k] : 0.0;
        }
        for (int i = 0; i < 6; i++)
            for (int c = 0; c < 3; c++)
                for (int l = 0; l < PACK_LANES; l++)
                    gg[i][c][l] = G[i][0] * g[c][l] + G[i][1] * g[3 + c][l] + G[i][2] * g[6 + c][l];
        for (int i = 0; i < 6; i++)
            for (int k = 0; k < 6; k++) {
                float run[PACK_LANES];
                for (int l = 0; l < PACK_LANES; l++)
                    run[l] = (float) (gg[i][0][l] * G[k][0] + gg[i][1][l] * G[k][1] + gg[i][2][l] * G[k][2]);
                float *dst = base + (size_t) (i * 6 + k) * job->xi_stride + j0;
                /* Vector stores for a full run: the compiler makes every memcpy here a library
                 * call, the constant-size ones included (36 per 16 weights). */
                if (lanes == PACK_LANES) {
                    _mm256_storeu_ps(dst, _mm256_loadu_ps(run));
                    _mm256_storeu_ps(dst + 8, _mm256_loadu_ps(run + 8));
                } else {
                    memcpy(dst, run, (size_t) lanes * sizeof(float));
                }
            }
    }
}

/* pack_group_body twice: the AVX2 copy, and one compiled for AVX-512 where its double lane
 * loops run 8 wide instead of 4 (the trainer packs every 3x3 layer twice per step). Both
 * contract the same multiply-adds into FMAs, so both give the same floats. */
__attribute__((target("avx2,fma")))
static void pack_group(void *ctx, int group, int thread) {
    (void) thread;
    pack_group_body(ctx, group);
}

__attribute__((target("avx512f,fma")))
static void pack_group_avx512(void *ctx, int group, int thread) {
    (void) thread;
    pack_group_body(ctx, group);
}

void f2a_conv3x3_pack(const float *weight, int cout, int cin, float *packed, int threads) {
    const int cg = gemm_block_rows(cout), groups = round_up(cout, cg) / cg;
    struct pack_job job = { weight, packed, cout, cin, cg, (size_t) groups * cin * cg };
    /* Below ~64K weights a dispatch costs more than it saves. */
    f2a_parallel(f2a_kernels_avx512() ? pack_group_avx512 : pack_group, &job, groups,
                 (size_t) cout * cin * 9 >= 65536 ? threads : 1);
}

struct plan {
    const float **planes; /* input channel ci's H x W plane (concat resolved) */
    int cin, cout, coutp, cg, groups, height, width; /* cg: gemm_block_rows(cout) */
    const float *U, *bias;
    int relu;
    const float *gate; /* NULL, or [cout][height][width]: outputs where it is not > 0 are 0 */
    float *out;
    int threads;
    int wide; /* the AVX-512 GEMM blocks (f2a_kernels_avx512) */
    /* Tiling: th rows of tiles, ngroups groups of 8 tiles per row; a band
     * is R tile rows x Gc groups (the last ones may be cut short). */
    int th, ngroups, R, Gc, bands_x, nbands;
    int tbp;    /* tiles of a band, padded to TG */
    size_t vstride, mstride; /* floats between the xi slices of V and of M */
    int pitch;  /* floats per staged input row: 32 Gc + 8 */
    int shared; /* 1: threads share each band (three phases); 0: band per thread */
    /* Workspace: one (V, M) slot per thread (or one if shared), one stage per thread. */
    float *slots, *stages;
    size_t slot_floats, stage_floats;
    int band; /* the band being processed in shared mode */
};

struct band {
    int ty0, rows, g0, gcount;
};

static struct band band_of(const struct plan *p, int b) {
    struct band r;
    int by = b / p->bands_x, bx = b % p->bands_x;
    r.ty0 = by * p->R;
    r.rows = p->th - r.ty0 < p->R ? p->th - r.ty0 : p->R;
    r.g0 = bx * p->Gc;
    r.gcount = p->ngroups - r.g0 < p->Gc ? p->ngroups - r.g0 : p->Gc;
    return r;
}

/* Copies the 6 input rows of tile row `ty` (one channel) into a zero-bordered
 * stage, so that the transform never tests for image edges. Stage column 0
 * is image column 32 g0 - 1. */
static void stage_rows(const struct plan *p, const float *plane, int ty, int g0, float *stage) {
    int x0 = 32 * g0 - 1, pitch = p->pitch;
    int lo = x0 < 0 ? -x0 : 0;
    int hi = p->width - x0 < pitch ? p->width - x0 : pitch;
    for (int k = 0; k < 6; k++) {
        float *d = stage + (size_t) k * pitch;
        int y = 4 * ty - 1 + k;
        if (y < 0 || y >= p->height || hi <= lo) { memset(d, 0, pitch * sizeof(float)); continue; }
        const float *row = plane + (size_t) y * p->width + x0;
        memset(d, 0, lo * sizeof(float));
        memcpy(d + lo, row + lo, (size_t) (hi - lo) * sizeof(float));
        memset(d + hi, 0, (size_t) (pitch - hi) * sizeof(float));
    }
}

/* 1-D B^T of F(4x4, 3x3): o = B^T d for 6 vectors. */
__attribute__((target("avx2,fma"), always_inline))
static inline void bt6(const __m256 d[6], __m256 o[6]) {
    const __m256 two = _mm256_set1_ps(2), four = _mm256_set1_ps(4), five = _mm256_set1_ps(5);
    o[0] = _mm256_fmadd_ps(four, d[0], _mm256_fnmadd_ps(five, d[2], d[4]));
    o[1] = _mm256_fnmadd_ps(four, _mm256_add_ps(d[1], d[2]), _mm256_add_ps(d[3], d[4]));
    o[2] = _mm256_fmadd_ps(four, _mm256_sub_ps(d[1], d[2]), _mm256_sub_ps(d[4], d[3]));
    o[3] = _mm256_fmadd_ps(two, _mm256_sub_ps(d[3], d[1]), _mm256_sub_ps(d[4], d[2]));
    o[4] = _mm256_fmadd_ps(two, _mm256_sub_ps(d[1], d[3]), _mm256_sub_ps(d[4], d[2]));
    o[5] = _mm256_fmadd_ps(four, d[1], _mm256_fnmadd_ps(five, d[3], d[5]));
}

/* 1-D A^T of F(4x4, 3x3): 6 vectors to 4. */
__attribute__((target("avx2,fma"), always_inline))
static inline void at6(const __m256 m[6], __m256 o[4]) {
    __m256 a = _mm256_add_ps(m[1], m[2]), b = _mm256_sub_ps(m[1], m[2]);
    __m256 c = _mm256_add_ps(m[3], m[4]), d = _mm256_sub_ps(m[3], m[4]);
    o[0] = _mm256_add_ps(_mm256_add_ps(m[0], a), c);
    o[1] = _mm256_fmadd_ps(_mm256_set1_ps(2), d, b);
    o[2] = _mm256_fmadd_ps(_mm256_set1_ps(4), c, a);
    o[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8), d, b), m[5]);
}

/* 32 floats r[0..31] = 8 tiles x 4 columns -> c[m] lane l = r[4 t(l) + m],
 * with t(l) = (0,2,4,6,1,3,5,7)[l]. */
__attribute__((target("avx2,fma"), always_inline))
static inline void gather8x4(const float *r, __m256 c[4]) {
    __m256 a0 = _mm256_loadu_ps(r), a1 = _mm256_loadu_ps(r + 8);
    __m256 a2 = _mm256_loadu_ps(r + 16), a3 = _mm256_loadu_ps(r + 24);
    __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
    __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
    c[0] = _mm256_shuffle_ps(t0, t2, 0x44);
    c[1] = _mm256_shuffle_ps(t0, t2, 0xEE);
    c[2] = _mm256_shuffle_ps(t1, t3, 0x44);
    c[3] = _mm256_shuffle_ps(t1, t3, 0xEE);
}

/* Inverse of gather8x4: 4 column vectors back to 32 consecutive floats. */
__attribute__((target("avx2,fma"), always_inline))
static inline void scatter8x4(const __m256 c[4], __m256 a[4]) {
    __m256 t0 = _mm256_unpacklo_ps(c[0], c[1]), t1 = _mm256_unpacklo_ps(c[2], c[3]);
    __m256 t2 = _mm256_unpackhi_ps(c[0], c[1]), t3 = _mm256_unpackhi_ps(c[2], c[3]);
    a[0] = _mm256_shuffle_ps(t0, t1, 0x44);
    a[1] = _mm256_shuffle_ps(t0, t1, 0xEE);
    a[2] = _mm256_shuffle_ps(t2, t3, 0x44);
    a[3] = _mm256_shuffle_ps(t2, t3, 0xEE);
}

/* Input transform of one tile row of one channel (all groups of the band). */
__attribute__((target("avx2,fma")))
static void input_row(const struct plan *p, const struct band *bd, float *V, float *stage, int ci, int row) {
    stage_rows(p, p->planes[ci], bd->ty0 + row, bd->g0, stage);
    const size_t xi_stride = p->vstride;
    for (int g = 0; g < bd->gcount; g++) {
        int t = (row * p->Gc + g) * 8; /* first tile of these 8 in the band */
        float *v = V + ((size_t) (t / TG) * p->cin + ci) * TG + t % TG;
        __m256 h[6][6];
        for (int k = 0; k < 6; k++) {
            const float *r = stage + (size_t) k * p->pitch + 32 * g;
            __m256 d[8];
            gather8x4(r, d);
            gather8x4(r + 4, d + 4); /* columns 4, 5 (6, 7 unused) */
            bt6(d, h[k]);
        }
        for (int j = 0; j < 6; j++) {
            __m256 col[6] = { h[0][j], h[1][j], h[2][j], h[3][j], h[4][j], h[5][j] }, o[6];
            bt6(col, o);
            for (int i = 0; i < 6; i++) _mm256_storeu_ps(v + (size_t) (i * 6 + j) * xi_stride, o[i]);
        }
    }
}

void f2a_gemm_panels(int rows, int K, const float *u, const float *v, float *m, size_t ldm, int cols) {
    gemm_panels(rows, f2a_kernels_avx512(), K, u, v, m, ldm, cols);
}

/* GEMM of position xi, output channel block cg, over the band's tiles. With the AVX-512
 * blocks a band of a single panel is done for blocks cg and cg + 1 together, by the call
 * for the even one: alone, its 6 (4) accumulators left the kernel waiting on the FMA
 * latency, and the bands of small layers are a single panel (VGG-16 + decoder 0.125 at
 * 256 x 192: 23 % of the pass's CPU time was in that kernel). Wider bands never leave a
 * panel alone (gemm_panels). The blocks write disjoint rows of M, so the work items stay
 * independent. */
static void gemm_block(const struct plan *p, const float *V, float *M, int xi, int cg, int tiles) {
    const size_t K = (size_t) p->cin;
    const float *u = p->U + ((size_t) xi * p->groups + cg) * K * p->cg;
    const float *v = V + (size_t) xi * p->vstride;
    float *m = M + (size_t) xi * p->mstride + (size_t) cg * p->cg * p->tbp;
    if (!p->wide || tiles > TG) {
        gemm_panels(p->cg, p->wide, p->cin, u, v, m, p->tbp, tiles);
        return;
    }
    if (cg % 2) return; /* done by the call for cg - 1 */
    float *m1 = m + (size_t) p->cg * p->tbp;
    if (cg + 1 == p->groups) gemm_panels(p->cg, p->wide, p->cin, u, v, m, p->tbp, tiles); /* the last, alone */
    else if (p->cg == MK_ROWS) gemm_12x16_avx512(p->cin, u, u + K * p->cg, v, m, m1, p->tbp);
    else gemm_8x16_avx512(p->cin, u, u + K * p->cg, v, m, m1, p->tbp);
}

/* Output transform of one tile row of one output channel, + bias, ReLU, gate. */
__attribute__((target("avx2,fma")))
static void output_row(const struct plan *p, const struct band *bd, const float *M, int co, int row) {
    const size_t xi_stride = p->mstride;
    const __m256 bias = _mm256_set1_ps(p->bias[co]), zero = _mm256_setzero_ps();
    int ty = bd->ty0 + row;
    for (int g = 0; g < bd->gcount; g++) {
        int t = (row * p->Gc + g) * 8;
        const float *m = M + (size_t) co * p->tbp + t;
        __m256 s[6][4], y[4][4];
        for (int i = 0; i < 6; i++) {
            __m256 r[6];
            for (int j = 0; j < 6; j++) r[j] = _mm256_loadu_ps(m + (size_t) (i * 6 + j) * xi_stride);
            at6(r, s[i]);
        }
        for (int c = 0; c < 4; c++) {
            __m256 col[6] = { s[0][c], s[1][c], s[2][c], s[3][c], s[4][c], s[5][c] }, o[4];
            at6(col, o);
            for (int r = 0; r < 4; r++) {
                o[r] = _mm256_add_ps(o[r], bias);
                y[r][c] = p->relu ? _mm256_max_ps(o[r], zero) : o[r];
            }
        }
        int x = 32 * (bd->g0 + g);
        int n = p->width - x < 32 ? p->width - x : 32;
        for (int r = 0; r < 4 && 4 * ty + r < p->height; r++) {
            __m256 a[4];
            scatter8x4(y[r], a);
            const size_t at = ((size_t) co * p->height + 4 * ty + r) * p->width + x;
            float *dst = p->out + at;
            if (p->gate) {
                float edge[32] = { 0 };
                const float *g = p->gate + at;
                if (n < 32) g = memcpy(edge, g, (size_t) n * sizeof(float));
                for (int q = 0; q < 4; q++)
                    a[q] = _mm256_and_ps(a[q], _mm256_cmp_ps(_mm256_loadu_ps(g + 8 * q), zero, _CMP_GT_OQ));
            }
            if (n == 32) {
                _mm256_storeu_ps(dst, a[0]); _mm256_storeu_ps(dst + 8, a[1]);
                _mm256_storeu_ps(dst + 16, a[2]); _mm256_storeu_ps(dst + 24, a[3]);
            } else {
                float tmp[32];
                for (int q = 0; q < 4; q++) _mm256_storeu_ps(tmp + 8 * q, a[q]);
                memcpy(dst, tmp, (size_t) n * sizeof(float));
            }
        }
    }
}

/* The transforms in 16-lane vectors, on CPUs with AVX-512 (p->wide).
 *
 * A 16-lane vector holds the 16 tiles of one V panel row, two 8-tile
 * groups A and B adjacent in the image, so the input transform writes each
 * position xi with one 64-byte store and the output transform reads M with
 * one 64-byte load. The 64 image columns of A and B (from column 1 of
 * A's first tile) as 4 x 16 floats a[j] = A[0..15], A[16..31], B[0..15],
 * B[16..31], transposed 4x4 inside each 128-bit lane like gather8x4
 * (transpose4x4_16), put the panel's tile 4j + k in lane 4k + j: tiles
 * (0,4,8,12, 1,5,9,13, 2,6,10,14, 3,7,11,15).
 * The output transform undoes it with the same transpose (a 4x4 transpose
 * is its own inverse); the GEMM keeps lanes apart, so no shuffle is spent
 * on the order in between either. With AVX-512 every group goes this way,
 * so the 8-lane order (0,2,4,6,1,3,5,7) never meets this one in a panel.
 *
 * A group alone in its panel row (the last of a band row with an odd
 * count, or the first of a row when a band row has an odd count and the
 * panel row began on the row above) is transformed together with its
 * image neighbour on the other side, and only its own 8 lanes are stored
 * (masks 0x3333 and 0xCCCC: j = 0, 1 or j = 2, 3): the other half of that
 * panel row belongs to another call, or to no tile.
 *
 * They read the input planes directly: masked loads give the zeros of the
 * padding and past the image's right edge (masked-off lanes are not read,
 * so their addresses may lie outside the plane), which the 8-lane path gets
 * by copying rows into a zero-bordered stage (stage_rows: its memcpy was
 * 12 % of a narrow model's time). Per tile the operations and their order
 * are those of the 8-lane path, so both give the same bits. */

__attribute__((target("avx512f"), always_inline))
static inline void bt6_16(const __m512 d[6], __m512 o[6]) {
    const __m512 two = _mm512_set1_ps(2), four = _mm512_set1_ps(4), five = _mm512_set1_ps(5);
    o[0] = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    o[1] = _mm512_fnmadd_ps(four, _mm512_add_ps(d[1], d[2]), _mm512_add_ps(d[3], d[4]));
    o[2] = _mm512_fmadd_ps(four, _mm512_sub_ps(d[1], d[2]), _mm512_sub_ps(d[4], d[3]));
    o[3] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[3], d[1]), _mm512_sub_ps(d[4], d[2]));
    o[4] = _mm512_fmadd_ps(two, _mm512_sub_ps(d[1], d[3]), _mm512_sub_ps(d[4], d[2]));
    o[5] = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
}

__attribute__((target("avx512f"), always_inline))
static inline void at6_16(const __m512 m[6], __m512 o[4]) {
    __m512 a = _mm512_add_ps(m[1], m[2]), b = _mm512_sub_ps(m[1], m[2]);
    __m512 c = _mm512_add_ps(m[3], m[4]), d = _mm512_sub_ps(m[3], m[4]);
    o[0] = _mm512_add_ps(_mm512_add_ps(m[0], a), c);
    o[1] = _mm512_fmadd_ps(_mm512_set1_ps(2), d, b);
    o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4), c, a);
    o[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8), d, b), m[5]);
}

/* c[m] lane 4k + j = a[j] lane 4k + m: a 4x4 transpose in each 128-bit lane. */
__attribute__((target("avx512f"), always_inline))
static inline void transpose4x4_16(const __m512 a[4], __m512 c[4]) {
    __m512 t0 = _mm512_unpacklo_ps(a[0], a[1]), t1 = _mm512_unpackhi_ps(a[0], a[1]);
    __m512 t2 = _mm512_unpacklo_ps(a[2], a[3]), t3 = _mm512_unpackhi_ps(a[2], a[3]);
    c[0] = _mm512_shuffle_ps(t0, t2, 0x44);
    c[1] = _mm512_shuffle_ps(t0, t2, 0xEE);
    c[2] = _mm512_shuffle_ps(t1, t3, 0x44);
    c[3] = _mm512_shuffle_ps(t1, t3, 0xEE);
}

/* Input transform of one panel row of tiles of channel `plane`, tile row
 * ty: A's columns start at image column xs, B's at xs + 32 (column 1 of
 * their first tile; column 0 is the padding column left of it). `keep`
 * masks the lanes stored.
 *
 * The 4 x 16 floats from xs on, transposed, are columns 1-4 of the tiles;
 * columns 0 and 5 are the neighbouring tiles' columns 4 and 1 (a lane
 * rotation, one two-source permute each, taking the panel's outer
 * neighbours from the lines either side) instead of another transpose of
 * the same floats shifted by 4: 6 loads and 10 shuffles a row, not 8 and
 * 14, and the shuffle port is shared with half the FP arithmetic. */
__attribute__((target("avx512f")))
static void input_panel(const struct plan *p, const float *plane, int ty, int xs, float *v, __mmask16 keep) {
    const size_t xi_stride = p->vstride;
    const int x[6] = { xs - 16, xs, xs + 16, xs + 32, xs + 48, xs + 64 };
    __mmask16 cm[6];
    for (int i = 0; i < 6; i++) cm[i] = cols_in(x[i], p->width);
    cm[0] &= 0x8000; /* column xs - 1 */
    cm[5] &= 0x0001; /* column xs + 64 */
    /* Lane 4k + j is tile T = 4j + k. Column 0 of T is column 4 of T - 1
     * (lane l - 4, or 11 + l for k = 0, lane 0 from xs - 1); column 5 is
     * column 1 of T + 1 (lane l + 4, or l - 11 for k = 3, lane 15 from xs + 64). */
    const __m512i left = _mm512_set_epi32(11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 14, 13, 12, 31);
    const __m512i right = _mm512_set_epi32(16, 3, 2, 1, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4);
    __m512 h[6][6];
    for (int k = 0; k < 6; k++) {
        int y = 4 * ty - 1 + k, inside = y >= 0 && y < p->height;
        const float *row = plane + (size_t) (inside ? y : 0) * p->width;
        __m512 a[6], d[6];
        for (int i = 0; i < 6; i++) a[i] = _mm512_maskz_loadu_ps(inside ? cm[i] : 0, row + x[i]);
        transpose4x4_16(a + 1, d + 1);
        d[5] = _mm512_permutex2var_ps(d[1], right, a[5]);
        d[0] = _mm512_permutex2var_ps(d[4], left, a[0]);
        bt6_16(d, h[k]);
    }
    for (int j = 0; j < 6; j++) {
        __m512 col[6] = { h[0][j], h[1][j], h[2][j], h[3][j], h[4][j], h[5][j] }, o[6];
        bt6_16(col, o);
        for (int i = 0; i < 6; i++) _mm512_mask_storeu_ps(v + (size_t) (i * 6 + j) * xi_stride, keep, o[i]);
    }
}

/* input_row in 16-lane vectors. Group g of band row `row` is group
 * q = row Gc + g of the band, in panel row q / 2, half q % 2. */
__attribute__((target("avx512f")))
static void input_row_wide(const struct plan *p, const struct band *bd, float *V, int ci, int row) {
    const float *plane = p->planes[ci];
    int ty = bd->ty0 + row;
    for (int g = 0; g < bd->gcount;) {
        int q = row * p->Gc + g, x = 32 * (bd->g0 + g);
        float *v = V + ((size_t) (q / 2) * p->cin + ci) * TG;
        if (q % 2 == 0 && g + 1 < bd->gcount) {
            input_panel(p, plane, ty, x, v, 0xFFFF);
            g += 2;
        } else {
            /* Lanes 4k + j with j = 0, 1 (first half) or 2, 3 (second). */
            if (q % 2) input_panel(p, plane, ty, x - 32, v, 0xCCCC);
            else input_panel(p, plane, ty, x, v, 0x3333);
            g += 1;
        }
    }
}

/* Output transform of one panel row of tiles (m: M row of output channel
 * co at the panel's first tile), + bias, ReLU; stores group A's 32 columns
 * from image column xa if halves & 1, B's (from xa + 32) if halves & 2.
 * For a group alone in its panel row the other half may be tiles past the
 * band's end whose V was never written: transformed, never stored. */
__attribute__((target("avx512f")))
static void output_panel(const struct plan *p, const float *m, int co, int ty, int xa, int halves) {
    const size_t xi_stride = p->mstride;
    const __m512 bias = _mm512_set1_ps(p->bias[co]), zero = _mm512_setzero_ps();
    __m512 s[6][4], y[4][4];
    for (int i = 0; i < 6; i++) {
        __m512 r[6];
        for (int j = 0; j < 6; j++) r[j] = _mm512_loadu_ps(m + (size_t) (i * 6 + j) * xi_stride);
        at6_16(r, s[i]);
    }
    for (int c = 0; c < 4; c++) {
        __m512 col[6] = { s[0][c], s[1][c], s[2][c], s[3][c], s[4][c], s[5][c] }, o[4];
        at6_16(col, o);
        for (int r = 0; r < 4; r++) {
            o[r] = _mm512_add_ps(o[r], bias);
            y[r][c] = p->relu ? _mm512_max_ps(o[r], zero) : o[r];
        }
    }
    __mmask16 cm[4];
    for (int i = 0; i < 4; i++) cm[i] = halves & (1 << (i / 2)) ? cols_in(xa + 16 * i, p->width) : 0;
    for (int r = 0; r < 4 && 4 * ty + r < p->height; r++) {
        __m512 a[4];
        transpose4x4_16(y[r], a);
        const size_t at = ((size_t) co * p->height + 4 * ty + r) * p->width + xa;
        float *dst = p->out + at;
        if (p->gate)
            for (int i = 0; i < 4; i++) {
                const __m512 g = _mm512_maskz_loadu_ps(cm[i], p->gate + at + 16 * i);
                a[i] = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(g, zero, _CMP_GT_OQ), a[i]);
            }
        for (int i = 0; i < 4; i++) _mm512_mask_storeu_ps(dst + 16 * i, cm[i], a[i]);
    }
}

/* output_row in 16-lane vectors, over the panel rows input_row_wide wrote. */
__attribute__((target("avx512f")))
static void output_row_wide(const struct plan *p, const struct band *bd, const float *M, int co, int row) {
    int ty = bd->ty0 + row;
    for (int g = 0; g < bd->gcount;) {
        int q = row * p->Gc + g, x = 32 * (bd->g0 + g);
        const float *m = M + (size_t) co * p->tbp + (size_t) (q / 2) * TG;
        if (q % 2 == 0 && g + 1 < bd->gcount) {
            output_panel(p, m, co, ty, x, 3);
            g += 2;
        } else {
            if (q % 2) output_panel(p, m, co, ty, x - 32, 2);
            else output_panel(p, m, co, ty, x, 1);
            g += 1;
        }
    }
}

static int band_tiles(const struct plan *p, const struct band *bd) {
    return round_up(((bd->rows - 1) * p->Gc + bd->gcount) * 8, TG);
}

/* A whole band on one thread: the private-band mode. */
static void run_band(void *ctx, int b, int thread) {
    const struct plan *p = ctx;
    struct band bd = band_of(p, b);
    float *V = p->slots + (size_t) thread * p->slot_floats;
    float *M = V + (size_t) NXI * p->vstride;
    float *stage = p->stages + (size_t) thread * p->stage_floats;
    for (int ci = 0; ci < p->cin; ci++)
        for (int r = 0; r < bd.rows; r++) {
            if (p->wide) input_row_wide(p, &bd, V, ci, r);
            else input_row(p, &bd, V, stage, ci, r);
        }
    int tiles = band_tiles(p, &bd);
    for (int xi = 0; xi < NXI; xi++)
        for (int cg = 0; cg < p->groups; cg++) gemm_block(p, V, M, xi, cg, tiles);
    for (int co = 0; co < p->cout; co++)
        for (int r = 0; r < bd.rows; r++) {
            if (p->wide) output_row_wide(p, &bd, M, co, r);
            else output_row(p, &bd, M, co, r);
        }
}

/* The three phases of a shared band, one work item each. */
static void phase_input(void *ctx, int item, int thread) {
    const struct plan *p = ctx;
    struct band bd = band_of(p, p->band);
    if (p->wide) input_row_wide(p, &bd, p->slots, item / bd.rows, item % bd.rows);
    else input_row(p, &bd, p->slots, p->stages + (size_t) thread * p->stage_floats, item / bd.rows, item % bd.rows);
}

static void phase_gemm(void *ctx, int item, int thread) {
    (void) thread;
    const struct plan *p = ctx;
    struct band bd = band_of(p, p->band);
    gemm_block(p, p->slots, p->slots + (size_t) NXI * p->vstride, item / p->groups, item % p->groups,
               band_tiles(p, &bd));
}

static void phase_output(void *ctx, int item, int thread) {
    (void) thread;
    const struct plan *p = ctx;
    struct band bd = band_of(p, p->band);
    const float *M = p->slots + (size_t) NXI * p->vstride;
    if (p->wide) output_row_wide(p, &bd, M, item / bd.rows, item % bd.rows);
    else output_row(p, &bd, M, item / bd.rows, item % bd.rows);
}

/* See the plan's band sizes in f2a_conv3x3. */
#define SHARED_LIMIT_DEFAULT ((size_t) 10 << 20)
#define SMALL_U_BYTES ((size_t) 1 << 20)
static _Thread_local size_t shared_limit_override;

size_t f2a_conv3x3_set_shared_limit(size_t bytes) {
    size_t previous = shared_limit_override;
    shared_limit_override = bytes;
    return previous;
}

int f2a_conv3x3(const float *const *srcs, const int *src_channels, int nsrc,
                int height, int width, const float *packed, const float *bias,
                int cout, int relu, const float *gate, float *out, int threads) {
    struct plan p = { 0 };
    for (int s = 0; s < nsrc; s++) p.cin += src_channels[s];
    if (height <= 0 || width <= 0 || cout <= 0) return 0;
    if (threads < 1) threads = 1;
    if (threads > 16) threads = 16;
    p.planes = malloc((size_t) (p.cin > 0 ? p.cin : 1) * sizeof *p.planes);
    if (!p.planes) return -1;
    for (int s = 0, c = 0; s < nsrc; s++)
        for (int k = 0; k < src_channels[s]; k++) p.planes[c++] = srcs[s] + (size_t) k * height * width;
    p.cout = cout;
    p.cg = gemm_block_rows(cout);
    p.coutp = round_up(cout, p.cg);
    p.groups = p.coutp / p.cg;
    p.height = height;
    p.width = width;
    p.U = packed;
    p.bias = bias;
    p.relu = relu;
    p.gate = gate;
    p.out = out;
    p.threads = threads;
    p.wide = f2a_kernels_avx512();
    p.th = (height + 3) / 4;
    p.ngroups = ((width + 3) / 4 + 7) / 8;

    /* Band size. Every band re-reads all of U (36 cin cout floats) for
     * 72 cin cout flops per tile, so a band needs >= 64 tiles (32 flop per
     * byte of U); beyond that, about 512 KB of V + M per band keeps a band in
     * one core's L2 (Zen 3's whole L2; 1 MB, the earlier size, measured 4 %
     * slower for the shipped model at 256 x 192: f2a-bench, medians of 301
     * passes, 4 alternations, 246-251 -> 258-262 GFLOP/s; width 0.125 at
     * 512^2 +2 %, the VGG-16 encoder cell and 1024^2 the same: the bands of
     * layers with cin + cout < 114 shrink, wider ones were at 64 tiles
     * already). Private bands (one per thread at a time, no
     * synchronisation) while U is small enough to stay in L3 for both
     * threads; for a bigger U the threads share each band of >= 256 tiles,
     * so U is read once per 256 tiles. At least 4 bands per thread so that
     * both cores finish together. The limit between the two, measured on the
     * Xeon of the 2026-12-06 benchmarks (width 1.0, f2a-bench, median pass):
     * 2 MB (128 x 128 channels shared) 0.215-0.228 s at 256^2, 0.91-0.93 s at
     * 512^2; 4 MB 0.202-0.215 / 0.87-0.89; 10 MB (up to 256 x 256 private)
     * 0.190-0.203 / 0.81-0.84; 20 and 40 MB the same as 10 at 512^2.
     * A U above SMALL_U_BYTES is shared too where private bands would hold fewer than
     * 64 tiles (fewer than 4 x 64 per thread in all: the trainer's 8-image mosaics of 8^2
     * and 16^2), so that it is read once per shared band instead of once per 16 tiles.
     * Old rule / this one, best of 8 alternating in one process, 8 images, forward and
     * input gradient in ms: 128 -> 128 at 16^2 1.80-1.86 / 1.44-1.72 and 1.86-1.93 /
     * 1.66-1.75; at 8^2 0.85 / 0.70-0.72 and 0.93-0.94 / 0.88-0.90; 256 -> 128 at 16^2
     * 3.57-3.60 / 3.05 and 3.65-3.70 / 2.73-2.85; 64 -> 128 at 16^2 1.13-1.16 / 0.92-0.93
     * and 1.02-1.03 / 1.04-1.12. At 32^2 (576 tiles) private bands stay faster: 128 -> 64
     * forced to share, 2.53 -> 3.20.
     * A layer of at most one panel of tiles per thread is shared whatever its U: private
     * bands cannot balance it (the shipped model's 16 x 12 layers, 3 tile rows of 4 tiles,
     * were 2 bands, of 2 rows and 1) and each re-reads all of U, where the shared GEMM
     * phase splits 36 x groups blocks between the threads. f2a-bench --layers, the shipped
     * model at 256 x 192, 3 alternations: those three layers 0.16-0.19 / 0.14-0.16 /
     * 0.14-0.16 ms -> 0.12-0.15 / 0.11-0.14 / 0.11-0.14; with 48 tiles (the 24 x 32 layers)
     * sharing gained nothing, and earlier measured 2-4 % slower. */
    size_t per_tile = (size_t) NXI * (size_t) (p.cin + p.coutp); /* floats of V + M per tile */
    size_t u_bytes = (size_t) NXI * p.cin * p.coutp * sizeof(float);
    int total = p.th * p.ngroups * 8, fair = total / (4 * threads), target;
    p.shared = threads > 1 && (u_bytes > (shared_limit_override ? shared_limit_override : SHARED_LIMIT_DEFAULT) ||
                               (u_bytes > SMALL_U_BYTES && fair < 64) || total <= TG * threads);
    if (!p.shared) {
        target = (int) (((size_t) 1 << 17) / per_tile);
        if (target < 64) target = 64;
        if (threads > 1 && target > fair) target = fair;
        /* Small layers: rather fewer bands per thread than bands of one or two panels,
         * whose GEMM takes the paired-row block (half the speed of the 4-panel one) or the
         * 2-panel block (microkernel.h). 4 bands per thread / at least 2 panels while every
         * thread gets a band, 2 threads, medians of 301 in ms, two runs: 32 -> 32 channels at
         * 48 x 64 0.18-0.20 / 0.12; 64 -> 32 at 48 x 64 0.29-0.36 / 0.21; 64 -> 64 at 24 x 32
         * 0.17-0.21 / 0.12-0.17; 128 -> 64 at 24 x 32 0.32-0.34 / 0.28-0.31. At least 2, 3 or 4
         * panels, the shipped model at 256 x 192 (f2a-bench, 8 alternations, medians of 51
         * passes, sorted, ms): 2: 6.4 6.5 6.6 6.7 6.8 6.9 6.9 7.5; 3: 5.6 5.7 5.9 6.3 6.6 6.6
         * 6.9 7.2; 4: 5.7 6.3 6.3 6.4 6.6 6.7 7.0 7.5. */
        if (target < 4 * TG) target = total / threads < 4 * TG ? total / threads : 4 * TG;
        if (target < 16) target = 16;
    } else {
        target = 256;
    }
    int row_tiles = p.ngroups * 8;
    if (target >= row_tiles) {
        p.Gc = p.ngroups;
        p.R = target / row_tiles;
        if (p.R > p.th) p.R = p.th;
    } else {
        p.R = 1;
        p.Gc = target / 8;
    }
    p.bands_x = (p.ngroups + p.Gc - 1) / p.Gc;
    p.nbands = p.bands_x * ((p.th + p.R - 1) / p.R);
    p.tbp = round_up(p.R * p.Gc * 8, TG);
    p.pitch = 32 * p.Gc + 8;
    /* One cache line more than the slice size: slices that are a multiple
     * of 4 KB apart would put all 36 streams of a transform into the same
     * L1 set (8 ways) and thrash it. */
    p.vstride = (size_t) p.tbp * p.cin + 16;
    p.mstride = (size_t) p.tbp * p.coutp + 16;
    p.slot_floats = NXI * (p.vstride + p.mstride);
    p.stage_floats = (size_t) 6 * p.pitch;
    int nslots = p.shared ? 1 : threads;
    /* Uninitialised: slots of tiles past the image edge hold leftovers, and
     * the GEMM columns they feed are never read back. */
    p.slots = workspace_acquire(p.slot_floats * nslots + p.stage_floats * threads);
    if (!p.slots) { free(p.planes); return -1; }
    p.stages = p.slots + p.slot_floats * nslots;

    if (!p.shared) {
        f2a_parallel(run_band, &p, p.nbands, threads);
    } else {
        for (int b = 0; b < p.nbands; b++) {
            p.band = b;
            struct band bd = band_of(&p, b);
            f2a_parallel(phase_input, &p, p.cin * bd.rows, threads);
            f2a_parallel(phase_gemm, &p, NXI * p.groups, threads);
            f2a_parallel(phase_output, &p, p.cout * bd.rows, threads);
        }
    }
    workspace_release(p.slots);
    free(p.planes);
    return 0;
}
