#ifndef F2A_WINOGRAD_LANES_H
#define F2A_WINOGRAD_LANES_H

#include "f2a_kernels.h"

#include <immintrin.h>
#include <stddef.h>
#include <string.h>

/* What the trainer's Winograd-domain kernels (weight_grad_winograd.c, winograd_k4.c)
 * share: they transform LANES tiles side by side, one per lane of plain loops the
 * compiler vectorises, and store each transform position's LANES values as one run of
 * a [36][channels][ld] array (consecutive tiles are consecutive floats). Both use the
 * six points 0, +-1, +-2, infinity, so the input transform B^T is one. Internal to
 * CKernels. */

#define LANES 16

/* The pool tasks of the lane transforms come in two copies of one always-inline body
 * `name##_body` (LANE_TASK): one compiled for AVX-512, where the lane loops vectorise 16
 * wide, and the baseline one (SSE2: 4 wide); lane_task(name) is the copy this CPU runs.
 * The helpers are LANE_INLINE so that they are compiled into each copy, and the lane loops
 * round every operation on its own (no FMA contraction) so that both copies give the same
 * floats. Input transforms, ns per tile and channel, one thread: 33-35 -> 24-27; two: 20-23
 * -> 15-18. */
#define LANE_INLINE static inline __attribute__((always_inline))
#pragma clang fp contract(off)
#define LANE_TASK(name)                                                                               \
    __attribute__((target("avx512f"))) static void name##_avx512(void *ctx, int item, int thread) {   \
        name##_body(ctx, item, thread);                                                               \
    }                                                                                                 \
    static void name##_baseline(void *ctx, int item, int thread) { name##_body(ctx, item, thread); }
#define lane_task(name) (f2a_kernels_avx512() ? name##_avx512 : name##_baseline)

/* B^T applied to 6 rows of LANES values (d[k * ds + lane]), into r[k * rs + lane]. */
LANE_INLINE void bt6(const float *d, size_t ds, float *r, size_t rs) {
    for (int l = 0; l < LANES; l++) {
        const float d0 = d[l], d1 = d[ds + l], d2 = d[2 * ds + l], d3 = d[3 * ds + l], d4 = d[4 * ds + l],
                    d5 = d[5 * ds + l];
        r[l] = 4 * d0 - 5 * d2 + d4;
        r[rs + l] = -4 * d1 - 4 * d2 + d3 + d4;
        r[2 * rs + l] = 4 * d1 - 4 * d2 - d3 + d4;
        r[3 * rs + l] = -2 * d1 - d2 + 2 * d3 + d4;
        r[4 * rs + l] = 2 * d1 - d2 - 2 * d3 + d4;
        r[5 * rs + l] = 4 * d1 - 5 * d3 + d5;
    }
}

/* Lane `lane` of size x size patches: the patch of `plane` (h x w) from (y0, x0), zeros
 * outside the plane, into p[(i * size + k) * LANES + lane]. */
LANE_INLINE void gather_patch(const float *plane, int h, int w, int y0, int x0, int size, int lane, float *p) {
    if (y0 >= 0 && x0 >= 0 && y0 + size <= h && x0 + size <= w) {
        for (int i = 0; i < size; i++)
            for (int k = 0; k < size; k++) p[(i * size + k) * LANES + lane] = plane[(size_t) (y0 + i) * w + x0 + k];
        return;
    }
    for (int i = 0; i < size; i++)
        for (int k = 0; k < size; k++) {
            const int y = y0 + i, x = x0 + k;
            p[(i * size + k) * LANES + lane] = y >= 0 && y < h && x >= 0 && x < w ? plane[(size_t) y * w + x] : 0.0f;
        }
}

/* Where the patches of up to LANES tiles lie: lane l < n reads the plane at first +
 * offset[l] (in floats) from row y[l], column x[l] (-1 and the like: the padding). As
 * offsets from one pointer, the lanes' patch positions are one AVX-512 gather each. */
struct lane_patches {
    const float *first;
    int n, y[LANES], x[LANES];
    ptrdiff_t offset[LANES];
};

/* Tiles numbered (image, tile row, tile column) over th x tw tiles per image, walked one
 * at a time: an integer division per tile and lane cost as much as the transform. */
struct tile_walk {
    int img, ty, tx, th, tw;
};

LANE_INLINE struct tile_walk tile_walk_at(int tile, int th, int tw) {
    struct tile_walk t = { tile / (th * tw), tile % (th * tw) / tw, tile % tw, th, tw };
    return t;
}

LANE_INLINE void tile_walk_next(struct tile_walk *t) {
    if (++t->tx == t->tw) {
        t->tx = 0;
        if (++t->ty == t->th) { t->ty = 0; t->img++; }
    }
}

/* The lanes of tiles tile ... tile + n - 1 (n <= LANES) of channel c of `src`
 * ([images][channels][h][w]), each patch from the tile's corner (step * ty, step * tx) +
 * offset. */
LANE_INLINE struct lane_patches lanes_of_tiles(const float *src, int channels, int c, int h, int w, int th, int tw,
                                                 int step, int offset, int tile, int n) {
    struct tile_walk t = tile_walk_at(tile, th, tw);
    const int img0 = t.img;
    const size_t image = (size_t) channels * h * w;
    struct lane_patches lp = { src + img0 * image + (size_t) c * h * w, n, { 0 }, { 0 }, { 0 } };
    for (int l = 0; l < n; l++, tile_walk_next(&t)) {
        lp.offset[l] = (ptrdiff_t) ((t.img - img0) * image);
        lp.y[l] = step * t.ty + offset;
        lp.x[l] = step * t.tx + offset;
    }
    return lp;
}

/* The patches of the lanes as scalar gathers, zeros outside the planes and in the lanes
 * past n. */
LANE_INLINE void gather_lanes(const struct lane_patches *lp, int h, int w, int size, float *p) {
    for (int l = 0; l < LANES; l++) {
        if (l < lp->n) {
            gather_patch(lp->first + lp->offset[l], h, w, lp->y[l], lp->x[l], size, l, p);
        } else {
            for (int e = 0; e < size * size; e++) p[e * LANES + l] = 0.0f;
        }
    }
}

/* gather_lanes with one masked hardware gather per patch position instead of a load and
 * a store per float. A lane's bounds become masks (its rows i and columns k inside the
 * plane), so masked-off lanes read nothing and come out zero: the same values as
 * gather_lanes, bit for bit. */
__attribute__((target("avx512f")))
static inline void gather_lanes_avx512(const struct lane_patches *lp, int h, int w, int size, float *p) {
    const __mmask16 live = lp->n >= LANES ? 0xFFFF : (__mmask16) ((1u << lp->n) - 1);
    /* The offsets fit in 32 bits where this runs (lane_gathers_wide). */
    const __m512i off = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_loadu_si512(lp->offset))),
                                           _mm512_cvtepi64_epi32(_mm512_loadu_si512(lp->offset + 8)), 1);
    const __m512i y = _mm512_loadu_si512(lp->y), x = _mm512_loadu_si512(lp->x);
    const __m512i hv = _mm512_set1_epi32(h), wv = _mm512_set1_epi32(w), zero = _mm512_setzero_si512();
    __mmask16 cols[6];
    for (int k = 0; k < size; k++) {
        const __m512i xk = _mm512_add_epi32(x, _mm512_set1_epi32(k));
        cols[k] = _mm512_mask_cmpge_epi32_mask(live, xk, zero) & _mm512_cmplt_epi32_mask(xk, wv);
    }
    /* Row i of lane l starts at offset[l] + (y[l] + i) * w + x[l]. */
    __m512i row = _mm512_add_epi32(off, _mm512_add_epi32(_mm512_mullo_epi32(y, wv), x));
    for (int i = 0; i < size; i++, row = _mm512_add_epi32(row, wv)) {
        const __m512i yi = _mm512_add_epi32(y, _mm512_set1_epi32(i));
        const __mmask16 inside = _mm512_cmpge_epi32_mask(yi, zero) & _mm512_cmplt_epi32_mask(yi, hv);
        for (int k = 0; k < size; k++) {
            const __m512i at = _mm512_add_epi32(row, _mm512_set1_epi32(k));
            _mm512_storeu_ps(p + (i * size + k) * LANES,
                             _mm512_mask_i32gather_ps(_mm512_setzero_ps(), inside & cols[k], at, lp->first, 4));
        }
    }
}

/* Whether the *_fast functions below may take their AVX-512 paths for a batch of `images`
 * images of `planes_per_image` planes of h x w: the CPU runs them (f2a_kernels_avx512), and
 * every lane's offset (struct lane_patches) fits in 32 bits. */
static inline int lane_gathers_wide(int images, int planes_per_image, int h, int w) {
    return f2a_kernels_avx512() && (double) images * planes_per_image * h * w < (double) (1u << 30);
}

/* gather_lanes, with the AVX-512 gathers where `wide` (lane_gathers_wide). */
LANE_INLINE void gather_lanes_fast(const struct lane_patches *lp, int h, int w, int size, int wide, float *p) {
    if (wide) gather_lanes_avx512(lp, h, w, size, p);
    else gather_lanes(lp, h, w, size, p);
}

/* V = B^T d B of LANES 6x6 patches, d[(i * 6 + k) * LANES + lane] into r in the same
 * layout (r[xi * LANES + lane], xi = 6 i + k: one run per transform position). */
LANE_INLINE void bt6_tiles(const float *d, float *r) {
    float rows[36 * LANES];
    for (int i = 0; i < 6; i++) bt6(d + 6 * i * LANES, LANES, rows + 6 * i * LANES, LANES); /* d B by rows */
    for (int k = 0; k < 6; k++) bt6(rows + k * LANES, 6 * LANES, r + k * LANES, 6 * LANES); /* B^T (d B) */
}

/* The 36 runs r[xi * LANES ...] of n <= LANES tiles, to out + xi * xi_stride. */
LANE_INLINE void store_runs(float *out, size_t xi_stride, int n, const float *r) {
    for (int xi = 0; xi < 36; xi++) memcpy(out + (size_t) xi * xi_stride, r + xi * LANES, (size_t) n * sizeof(float));
}

/* The adjoint: r[xi * LANES + lane] from in + xi * xi_stride, zeros in the lanes past n. */
LANE_INLINE void load_runs(const float *in, size_t xi_stride, int n, float *r) {
    for (int xi = 0; xi < 36; xi++) {
        memcpy(r + xi * LANES, in + (size_t) xi * xi_stride, (size_t) n * sizeof(float));
        for (int l = n; l < LANES; l++) r[xi * LANES + l] = 0.0f;
    }
}

/* store_runs and load_runs as one masked vector access per run. The compiler turns their
 * copies into a library call per run (36 per group of tiles, a quarter of a transform's
 * time), even where n is LANES. */
__attribute__((target("avx512f")))
static inline void store_runs_avx512(float *out, size_t xi_stride, int n, const float *r) {
    const __mmask16 live = n >= LANES ? 0xFFFF : (__mmask16) ((1u << n) - 1);
    for (int xi = 0; xi < 36; xi++) _mm512_mask_storeu_ps(out + (size_t) xi * xi_stride, live, _mm512_loadu_ps(r + xi * LANES));
}

__attribute__((target("avx512f")))
static inline void load_runs_avx512(const float *in, size_t xi_stride, int n, float *r) {
    const __mmask16 live = n >= LANES ? 0xFFFF : (__mmask16) ((1u << n) - 1);
    for (int xi = 0; xi < 36; xi++) _mm512_storeu_ps(r + xi * LANES, _mm512_maskz_loadu_ps(live, in + (size_t) xi * xi_stride));
}

/* store_runs and load_runs with the vector accesses where `wide` (lane_gathers_wide). */
LANE_INLINE void store_runs_fast(float *out, size_t xi_stride, int n, const float *r, int wide) {
    if (wide) store_runs_avx512(out, xi_stride, n, r);
    else store_runs(out, xi_stride, n, r);
}

LANE_INLINE void load_runs_fast(const float *in, size_t xi_stride, int n, float *r, int wide) {
    if (wide) load_runs_avx512(in, xi_stride, n, r);
    else load_runs(in, xi_stride, n, r);
}

#endif
