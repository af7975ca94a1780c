#ifndef F2A_WINOGRAD_LANES_H
#define F2A_WINOGRAD_LANES_H

#include <stddef.h>
#include <string.h>

/* What the trainer's Winograd-domain kernels (weight_grad_winograd.c, winograd_k4.c)
 * share: they transform LANES tiles side by side, one per lane of plain loops the
 * compiler vectorises, and store each transform position's LANES values as one run of
 * a [36][channels][ld] array (consecutive tiles are consecutive floats). Both use the
 * six points 0, +-1, +-2, infinity, so the input transform B^T is one. Internal to
 * CKernels. */

#define LANES 16

/* B^T applied to 6 rows of LANES values (d[k * ds + lane]), into r[k * rs + lane]. */
static inline void bt6(const float *d, size_t ds, float *r, size_t rs) {
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
static inline void gather_patch(const float *plane, int h, int w, int y0, int x0, int size, int lane, float *p) {
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

/* V = B^T d B of LANES 6x6 patches, d[(i * 6 + k) * LANES + lane] into r in the same
 * layout (r[xi * LANES + lane], xi = 6 i + k: one run per transform position). */
static inline void bt6_tiles(const float *d, float *r) {
    float rows[36 * LANES];
    for (int i = 0; i < 6; i++) bt6(d + 6 * i * LANES, LANES, rows + 6 * i * LANES, LANES); /* d B by rows */
    for (int k = 0; k < 6; k++) bt6(rows + k * LANES, 6 * LANES, r + k * LANES, 6 * LANES); /* B^T (d B) */
}

/* The 36 runs r[xi * LANES ...] of n <= LANES tiles, to out + xi * xi_stride. */
static inline void store_runs(float *out, size_t xi_stride, int n, const float *r) {
    if (n == LANES) /* a constant size: inlined vector stores, not a call per run */
        for (int xi = 0; xi < 36; xi++) memcpy(out + (size_t) xi * xi_stride, r + xi * LANES, LANES * sizeof(float));
    else
        for (int xi = 0; xi < 36; xi++) memcpy(out + (size_t) xi * xi_stride, r + xi * LANES, (size_t) n * sizeof(float));
}

#endif
