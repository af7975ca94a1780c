#include "f2a_kernels.h"
#include "microkernel.h"
#include "workspace.h"

#include <immintrin.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The PatchGAN's 4x4 stride-2 layers as 2x2 convolutions on the phase grid, by Winograd
 * F(2x2, 2x2).
 *
 * On the phases P of the padded input (the trainer's PhaseConvolution: each of k = 4 in
 * channels holds one phase of an input channel, every image an ph x pw plane) the layer is
 *
 *     E[o](i, j) = sum over a, b in {0, 1}, c < k of W_ab[o][c] P[c](i + a, j + b),
 *
 * a 2x2 convolution without padding. f2a_shifted_gemm does it as four GEMMs over shifted
 * views of P, 4 k multiply-adds per output, as oneDNN's direct kernel does its 16 in. F(2x2,
 * 2x2) computes a 2x2 tile of outputs from the 3x3 patch at its corner with 9 products per
 * channel pair instead of 16:
 *
 *     V = B^T d B, U = G g G^T, M = sum over c of U (.) V (9 GEMMs [out x k] x [k x tiles]),
 *     Y = A^T M A,   B^T = [1 -1 0; 0 1 0; 0 -1 1], G = [1 0; 1 1; 0 1], A^T = [1 1 0; 0 1 1],
 *
 * whose transforms are adds only (the points 0, -1 and infinity). The GEMMs run on the
 * engine's register blocks (microkernel.h).
 *
 * A tile's patch starts 2 columns after its left neighbour's: 16 tiles side by side in a
 * tile row read 33 consecutive floats of each of their 3 rows, and the patches' columns
 * 0, 1 and 2 are that row's even, odd and (from column 2) even floats, two-source permutes
 * of whole vectors. Tile rows of 8 tiles or fewer (the 16^2 layer's) go two to a vector.
 * A row of 8 n + 1 tiles (a whole grid of 2 m + 1 columns: the input gradient's) leaves its
 * last tile to column groups, one tile row per lane, gathered element by element.
 * These lane groups, 16 tiles each (some lanes past a row's end unused), are the GEMM's
 * 16-column panels; bands of panels run on one thread each, with their own V and M.
 *
 * 16 images, 2 threads, isolated, against f2a_shifted_gemm on the same phases (medians of
 * 21, 3 alternations, time ratios): 6 -> 32 channels at 128^2 0.77-0.81, 32 -> 64 at 64^2
 * 0.57-0.61, 64 -> 128 at 32^2 0.64-0.68. The input gradient's grid (33^2, 17^2: rows of
 * 2n + 1 columns) with rows of 17 and 9 tiles in groups of 16 lanes left 44-47 % of them
 * empty and was slower than the shifted GEMMs; hence the column groups. A first version,
 * F(3x3, 2x2), whose 4x4 patches start 3 columns apart, gathered them element by element
 * and took 1.3-1.6x the shifted GEMMs' time. Without AVX-512 the same lane groups run as
 * two 8-lane halves (run_phase_band_avx2): the same sums in the same order, the same bits. */

#define NXI 9
#define TG MK_COLS /* lanes per group: one GEMM panel */

static int round_up(int x, int m) { return (x + m - 1) / m * m; }


struct job {
    const float *p;
    size_t cols, ecols, plane;    /* rows of p and of e: cols and ecols floats apart */
    int k, out, rows, groups;     /* rows: output channels per GEMM block; groups: row blocks */
    int ph, pw, oh, ow;
    int images, tile_rows, row_tiles; /* tiles per image: ceil(oh / 2) x ceil(ow / 2) */
    int main_cols;                /* output columns of the row groups: 2 x their tiles per row */
    int pair;                     /* two tile rows per lane group (<= 8 tiles per row) */
    int segments, image_groups;   /* row groups per tile row (pair: 1), per image */
    int row_groups, lane_groups;  /* row groups; then column groups (the last tile of each row) */
    int band;                     /* lane groups per band */
    const float *u;               /* [9][groups][k][rows] */
    float *e;
    float *work;                  /* per thread: work_floats */
    size_t work_floats, vstride, mstride;
};

/* Lane group q: its image, first tile row and first tile column (zeros for a column group). */
struct group { int image, ti, tj; };

static struct group group_of(const struct job *j, int q) {
    struct group g = { 0, 0, 0 };
    if (q >= j->row_groups) return g; /* a column group: its lanes' tiles are column_row's */
    g.image = q / j->image_groups;
    const int r = q % j->image_groups;
    if (j->pair) { g.ti = 2 * r; g.tj = 0; }
    else { g.ti = r / j->segments; g.tj = TG * (r % j->segments); }
    return g;
}

/* Where half h of lane group g (lanes 8 h .. 8 h + 7) starts in row `row` of its first
 * tile row's patches or outputs: paired, the second half is the next tile row's (two plane
 * rows down, from column 0); else the same row, 16 columns on. */
static inline void half_origin(const struct job *j, struct group g, int row, int h, int *y, int *x) {
    *y = row + (j->pair && h ? 2 : 0);
    *x = 2 * g.tj + (h && !j->pair ? 16 : 0);
}

/* Where a lane group's patches come from: for each patch row r, half h's 16 floats from
 * its origin (source h) and from 2 columns on (source 2 + h, the patches' column 2): their
 * offsets in an image's plane, how many of the 16 lie inside it (0 for a row outside) and
 * those lanes as an AVX-512 mask (kept: the loads of every channel use it). The same for
 * every channel. */
struct sources { size_t at[3][4]; int n[3][4]; __mmask16 in[3][4]; };

static struct sources sources_of(const struct job *j, struct group g) {
    struct sources s;
    for (int r = 0; r < 3; r++)
        for (int i = 0; i < 4; i++) {
            int y, x;
            half_origin(j, g, 2 * g.ti + r, i % 2, &y, &x);
            x += 2 * (i / 2);
            const int inside = y < j->ph && x < j->pw;
            s.at[r][i] = inside ? (size_t) y * j->pw + x : 0;
            s.n[r][i] = inside ? j->pw - x : 0;
            s.in[r][i] = cols_in(0, s.n[r][i]);
        }
    return s;
}

/* The patches' columns 0, 1, 2 of patch row r of a lane group in one channel plane. */
__attribute__((target("avx512f"), always_inline))
static inline void patch_row(const float *plane, const struct sources *s, int r, __m512i even, __m512i odd, __m512 d[3]) {
    const __m512 a0 = _mm512_maskz_loadu_ps(s->in[r][0], plane + s->at[r][0]);
    const __m512 b0 = _mm512_maskz_loadu_ps(s->in[r][1], plane + s->at[r][1]);
    const __m512 a2 = _mm512_maskz_loadu_ps(s->in[r][2], plane + s->at[r][2]);
    const __m512 b2 = _mm512_maskz_loadu_ps(s->in[r][3], plane + s->at[r][3]);
    d[0] = _mm512_permutex2var_ps(a0, even, b0);
    d[1] = _mm512_permutex2var_ps(a0, odd, b0);
    d[2] = _mm512_permutex2var_ps(a2, even, b2);
}

/* M[xi] = U[xi] V[xi] for the 9 positions and every block of output channels, over a band
 * of `panels` lane groups (rows of M panels x 16 apart), with the AVX-512 blocks or not. */
static void band_gemms(const struct job *j, const float *V, float *M, int panels, int wide) {
    const int ldm = panels * TG;
    for (int xi = 0; xi < NXI; xi++)
        for (int b = 0; b < j->groups; b++)
            gemm_panels(j->rows, wide, j->k, j->u + ((size_t) xi * j->groups + b) * j->k * j->rows, V + xi * j->vstride,
                        M + xi * j->mstride + (size_t) b * j->rows * ldm, (size_t) ldm, ldm);
}

/* Column group q: lane l is the last tile of tile row 16 q + l of all images' (image by
 * image); -1 past the last. */
static int column_row(const struct job *j, int q, int l) {
    const int row = TG * q + l;
    return row < j->images * j->tile_rows ? row : -1;
}

/* Channel c's patches of column group q: v[3 r + x][lane] (lanes past the last row zero). */
static void column_patches(const struct job *j, int q, int c, float v[9][TG]) {
    memset(v, 0, 9 * TG * sizeof(float));
    const int x0 = 2 * (j->row_tiles - 1);
    for (int l = 0; l < TG; l++) {
        const int row = column_row(j, q, l);
        if (row < 0) break;
        const float *plane = j->p + (size_t) c * j->cols + (size_t) (row / j->tile_rows) * j->plane;
        const int y0 = 2 * (row % j->tile_rows);
        for (int r = 0; r < 3 && y0 + r < j->ph; r++)
            for (int x = 0; x < 3 && x0 + x < j->pw; x++) v[3 * r + x][l] = plane[(size_t) (y0 + r) * j->pw + x0 + x];
    }
}

/* Output channel oc's 2 x 2 outputs v[2 u + x][lane] of column group q's tiles, inside oh x ow. */
static void column_store(const struct job *j, int q, int oc, float v[4][TG]) {
    const int x0 = 2 * (j->row_tiles - 1);
    for (int l = 0; l < TG; l++) {
        const int row = column_row(j, q, l);
        if (row < 0) break;
        float *dst = j->e + (size_t) oc * j->ecols + (size_t) (row / j->tile_rows) * j->plane;
        const int y0 = 2 * (row % j->tile_rows);
        for (int u = 0; u < 2 && y0 + u < j->oh; u++)
            for (int x = 0; x < 2 && x0 + x < j->ow; x++) dst[(size_t) (y0 + u) * j->pw + x0 + x] = v[2 * u + x][l];
    }
}

__attribute__((target("avx512f")))
static void run_phase_band(void *ctx, int band, int thread) {
    const struct job *j = ctx;
    const int q0 = band * j->band, panels = j->lane_groups - q0 < j->band ? j->lane_groups - q0 : j->band, k = j->k;
    float *V = j->work + (size_t) thread * j->work_floats, *M = V + NXI * j->vstride;
    static const int32_t even_idx[16] = { 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30 };
    static const int32_t odd_idx[16] = { 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31 };
    const __m512i even = _mm512_loadu_si512(even_idx), odd = _mm512_loadu_si512(odd_idx);
    for (int q = 0; q < panels; q++) {
        const int column = q0 + q >= j->row_groups;
        const struct group g = group_of(j, q0 + q);
        const struct sources src = column ? (struct sources) { 0 } : sources_of(j, g);
        const float *image = j->p + (size_t) g.image * j->plane;
        for (int c = 0; c < k; c++) {
            __m512 d[3][3], t[3][3];
            if (column) {
                float v[9][TG] __attribute__((aligned(64)));
                column_patches(j, q0 + q - j->row_groups, c, v);
                for (int i = 0; i < 9; i++) d[i / 3][i % 3] = _mm512_load_ps(v[i]);
            } else {
                for (int r = 0; r < 3; r++) patch_row(image + (size_t) c * j->cols, &src, r, even, odd, d[r]);
            }
            for (int x = 0; x < 3; x++) { /* B^T d, down the columns */
                t[0][x] = _mm512_sub_ps(d[0][x], d[1][x]);
                t[1][x] = d[1][x];
                t[2][x] = _mm512_sub_ps(d[2][x], d[1][x]);
            }
            float *v = V + ((size_t) q * k + c) * TG;
            for (int y = 0; y < 3; y++) { /* (B^T d) B, along the rows */
                _mm512_store_ps(v + (3 * y) * j->vstride, _mm512_sub_ps(t[y][0], t[y][1]));
                _mm512_store_ps(v + (3 * y + 1) * j->vstride, t[y][1]);
                _mm512_store_ps(v + (3 * y + 2) * j->vstride, _mm512_sub_ps(t[y][2], t[y][1]));
            }
        }
    }
    const int ldm = panels * TG;
    band_gemms(j, V, M, panels, 1);
    /* y0 and y1 (the tiles' output columns) interleaved: lanes 0-7 and 8-15 of each. */
    static const int32_t lo_idx[16] = { 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23 };
    static const int32_t hi_idx[16] = { 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31 };
    const __m512i il = _mm512_loadu_si512(lo_idx), ih = _mm512_loadu_si512(hi_idx);
    for (int q = 0; q < panels; q++) {
        const int column = q0 + q >= j->row_groups;
        const struct group g = group_of(j, q0 + q);
        for (int oc = 0; oc < j->out; oc++) {
            const float *m = M + (size_t) oc * ldm + (size_t) q * TG;
            __m512 s[2][3];
            for (int x = 0; x < 3; x++) { /* A^T M */
                const __m512 m0 = _mm512_load_ps(m + x * j->mstride), m1 = _mm512_load_ps(m + (3 + x) * j->mstride);
                const __m512 m2 = _mm512_load_ps(m + (6 + x) * j->mstride);
                s[0][x] = _mm512_add_ps(m0, m1);
                s[1][x] = _mm512_add_ps(m1, m2);
            }
            if (column) {
                float y[4][TG] __attribute__((aligned(64)));
                for (int u = 0; u < 2; u++) {
                    _mm512_store_ps(y[2 * u], _mm512_add_ps(s[u][0], s[u][1]));
                    _mm512_store_ps(y[2 * u + 1], _mm512_add_ps(s[u][1], s[u][2]));
                }
                column_store(j, q0 + q - j->row_groups, oc, y);
                continue;
            }
            float *dst = j->e + (size_t) oc * j->ecols + (size_t) g.image * j->plane;
            for (int u = 0; u < 2; u++) {
                const __m512 y0 = _mm512_add_ps(s[u][0], s[u][1]), y1 = _mm512_add_ps(s[u][1], s[u][2]);
                const __m512 lo = _mm512_permutex2var_ps(y0, il, y1), hi = _mm512_permutex2var_ps(y0, ih, y1);
                /* lo: half 0's 16 output columns, hi: half 1's. */
                for (int h = 0; h < 2; h++) {
                    int y, x;
                    half_origin(j, g, 2 * g.ti + u, h, &y, &x);
                    const int n = y < j->oh ? j->main_cols - x : 0;
                    if (n > 0) _mm512_mask_storeu_ps(dst + (size_t) y * j->pw + x, cols_in(0, n), h ? hi : lo);
                }
            }
        }
    }
}

/* 16 floats from plane offset `at`, lanes < n (n <= 0: none), as even and odd 8-lane halves:
 * e = floats 0, 2, .. 14, o = 1, 3, .. 15. */
__attribute__((target("avx2,fma"), always_inline))
static inline void deinterleave16(const float *src, int n, __m256 *e, __m256 *o) {
    const __m256 lo = _mm256_maskload_ps(src, lanes_below(n)), hi = _mm256_maskload_ps(src + 8, lanes_below(n - 8));
    *e = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0x88)), 0xD8));
    *o = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_shuffle_ps(lo, hi, 0xDD)), 0xD8));
}

/* run_phase_band with AVX2 blocks, on CPUs without AVX-512: each 16-lane vector of that
 * function as two halves of 8 (lanes 0-7 from source a, 8-15 from source b), the same
 * sums in the same order, so the same bits. */
__attribute__((target("avx2,fma")))
static void run_phase_band_avx2(void *ctx, int band, int thread) {
    const struct job *j = ctx;
    const int q0 = band * j->band, panels = j->lane_groups - q0 < j->band ? j->lane_groups - q0 : j->band, k = j->k;
    float *V = j->work + (size_t) thread * j->work_floats, *M = V + NXI * j->vstride;
    for (int q = 0; q < panels; q++) {
        const int column = q0 + q >= j->row_groups;
        const struct group g = group_of(j, q0 + q);
        const struct sources src = column ? (struct sources) { 0 } : sources_of(j, g);
        const float *image = j->p + (size_t) g.image * j->plane;
        for (int c = 0; c < k; c++) {
            float cv[9][TG] __attribute__((aligned(64)));
            if (column) column_patches(j, q0 + q - j->row_groups, c, cv);
            const float *plane = image + (size_t) c * j->cols;
            for (int h = 0; h < 2; h++) {
                __m256 d[3][3], t[3][3];
                for (int r = 0; r < 3; r++) {
                    if (column) {
                        for (int x = 0; x < 3; x++) d[r][x] = _mm256_load_ps(cv[3 * r + x] + 8 * h);
                    } else {
                        __m256 unused;
                        deinterleave16(plane + src.at[r][h], src.n[r][h], &d[r][0], &d[r][1]);
                        deinterleave16(plane + src.at[r][2 + h], src.n[r][2 + h], &d[r][2], &unused);
                    }
                }
                for (int x = 0; x < 3; x++) {
                    t[0][x] = _mm256_sub_ps(d[0][x], d[1][x]);
                    t[1][x] = d[1][x];
                    t[2][x] = _mm256_sub_ps(d[2][x], d[1][x]);
                }
                float *v = V + ((size_t) q * k + c) * TG + 8 * h;
                for (int y = 0; y < 3; y++) {
                    _mm256_store_ps(v + (3 * y) * j->vstride, _mm256_sub_ps(t[y][0], t[y][1]));
                    _mm256_store_ps(v + (3 * y + 1) * j->vstride, t[y][1]);
                    _mm256_store_ps(v + (3 * y + 2) * j->vstride, _mm256_sub_ps(t[y][2], t[y][1]));
                }
            }
        }
    }
    const int ldm = panels * TG;
    band_gemms(j, V, M, panels, 0);
    for (int q = 0; q < panels; q++) {
        const int column = q0 + q >= j->row_groups;
        const struct group g = group_of(j, q0 + q);
        for (int oc = 0; oc < j->out; oc++) {
            float y[4][TG] __attribute__((aligned(64)));
            float *dst = j->e + (size_t) oc * j->ecols + (size_t) g.image * j->plane;
            for (int h = 0; h < 2; h++) {
                const float *m = M + (size_t) oc * ldm + (size_t) q * TG + 8 * h;
                __m256 s[2][3];
                for (int x = 0; x < 3; x++) {
                    const __m256 m0 = _mm256_load_ps(m + x * j->mstride), m1 = _mm256_load_ps(m + (3 + x) * j->mstride);
                    const __m256 m2 = _mm256_load_ps(m + (6 + x) * j->mstride);
                    s[0][x] = _mm256_add_ps(m0, m1);
                    s[1][x] = _mm256_add_ps(m1, m2);
                }
                for (int u = 0; u < 2; u++) {
                    const __m256 y0 = _mm256_add_ps(s[u][0], s[u][1]), y1 = _mm256_add_ps(s[u][1], s[u][2]);
                    if (column) {
                        _mm256_store_ps(y[2 * u] + 8 * h, y0);
                        _mm256_store_ps(y[2 * u + 1] + 8 * h, y1);
                        continue;
                    }
                    /* Half h's 16 output columns: its tiles' y0 and y1 interleaved. */
                    const __m256 lo = _mm256_unpacklo_ps(y0, y1), hi = _mm256_unpackhi_ps(y0, y1);
                    const __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20), second = _mm256_permute2f128_ps(lo, hi, 0x31);
                    int yy, xx;
                    half_origin(j, g, 2 * g.ti + u, h, &yy, &xx);
                    const int cnt = yy < j->oh ? j->main_cols - xx : 0;
                    if (cnt > 0) {
                        float *row = dst + (size_t) yy * j->pw + xx;
                        _mm256_maskstore_ps(row, lanes_below(cnt), first);
                        _mm256_maskstore_ps(row + 8, lanes_below(cnt - 8), second);
                    }
                }
            }
            if (column) column_store(j, q0 + q - j->row_groups, oc, y);
        }
    }
}

int f2a_phase_conv2x2(const float *p, size_t ldp, int k, int images, int ph, int pw, int oh, int ow,
                      const float *w, int out, float *e, size_t lde, int threads) {
    if (!f2a_kernels_available()) return -1;
    const int wide = f2a_kernels_avx512();
    if (images <= 0 || out <= 0 || oh <= 0 || ow <= 0 || k <= 0) return 0;
    struct job j = { .p = p, .cols = ldp, .ecols = lde, .plane = (size_t) ph * pw, .k = k, .out = out,
                     .ph = ph, .pw = pw, .oh = oh, .ow = ow, .e = e };
    j.rows = gemm_block_rows(out);
    j.groups = (out + j.rows - 1) / j.rows;
    j.images = images;
    j.tile_rows = (oh + 1) / 2;
    j.row_tiles = (ow + 1) / 2;
    const int rest = j.row_tiles > 1 && j.row_tiles % (TG / 2) == 1, row_group_tiles = j.row_tiles - rest;
    j.main_cols = 2 * row_group_tiles < ow ? 2 * row_group_tiles : ow;
    j.pair = row_group_tiles <= TG / 2;
    j.segments = j.pair ? 1 : (row_group_tiles + TG - 1) / TG;
    j.image_groups = j.pair ? (j.tile_rows + 1) / 2 : j.tile_rows * j.segments;
    j.row_groups = images * j.image_groups;
    j.lane_groups = j.row_groups + (rest ? (images * j.tile_rows + TG - 1) / TG : 0);
    /* About 512 KB of V and M per band (one core's L2 on the Zen 3 class), at least 4
     * panels (the GEMM's widest block). 16 images, isolated, time against the shifted
     * GEMMs', 3 alternations: 6 -> 32 channels at 128^2 0.77-0.81 (1 MB: 0.84-0.98), 32 -> 64
     * at 64^2 0.57-0.61 (0.71-0.73), 64 -> 128 at 32^2 0.64-0.68 (0.65-0.66). */
    int band = (int) (((size_t) 1 << 17) / ((size_t) NXI * TG * (k + (size_t) j.groups * j.rows)));
    if (band < 4) band = 4;
    if (band > j.lane_groups) band = j.lane_groups;
    j.band = band;
    j.vstride = (size_t) band * TG * k;
    j.mstride = (size_t) band * TG * j.groups * j.rows;
    j.work_floats = NXI * (j.vstride + j.mstride);
    if (threads < 1) threads = 1;
    /* U = G g G^T per (output, input) channel pair, g[a][b] = W_{2a+b}: sums of at most
     * four weights, in double, rounded once. */
    /* U first, then each thread's V and M, in the kernels' reusable workspace: one
     * allocation per process rather than one per call. */
    const size_t ucount = (size_t) round_up(NXI * j.groups * k * j.rows, 16);
    float *work = workspace_acquire(ucount + j.work_floats * (size_t) threads);
    if (!work) return -2;
    float *u = work;
    memset(u, 0, ucount * sizeof(float));
    for (int o = 0; o < out; o++)
        for (int c = 0; c < k; c++) {
            const double g00 = w[((size_t) o * 4 + 0) * k + c], g01 = w[((size_t) o * 4 + 1) * k + c];
            const double g10 = w[((size_t) o * 4 + 2) * k + c], g11 = w[((size_t) o * 4 + 3) * k + c];
            const double gg[3][2] = { { g00, g01 }, { g00 + g10, g01 + g11 }, { g10, g11 } };
            for (int y = 0; y < 3; y++) {
                const double uu[3] = { gg[y][0], gg[y][0] + gg[y][1], gg[y][1] };
                for (int x = 0; x < 3; x++)
                    u[(((size_t) (3 * y + x) * j.groups + o / j.rows) * k + c) * j.rows + o % j.rows] = (float) uu[x];
            }
        }
    j.u = u;
    j.work = work + ucount;
    f2a_parallel(wide ? run_phase_band : run_phase_band_avx2, &j, (j.lane_groups + band - 1) / band, threads);
    workspace_release(work);
    return 0;
}
