#include "f2a_kernels.h"

#include <immintrin.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

/* Guided mode's second pass (F2AModel's GuidedPlan.apply): every pixel of
 * the photo through an affine colour transform bilinearly upsampled from 12
 * working-size planes. It touches every pixel of the photo once, so it is
 * the bulk of guided mode's time on a large photo: as a scalar Swift loop it
 * cost about twice a JPEG decode and encode of the same photo.
 *
 * Why in chunks of CHUNK columns, in two steps per row:
 * 1. between two working-size columns the coefficients are linear in X, so
 *    upsampling one "segment" (the photo's columns that share a left working
 *    column) is a contiguous vector FMA per plane, with no gather; the 12
 *    planes go to planar scratch;
 * 2. the affine transform then reads the scratch with plain loads, on 8
 *    interleaved RGB pixels at a time, deinterleaved by shuffles.
 * The chunk keeps both scratches on the stack and in L1 (~14 KB).
 *
 * Pixels come as floats, or as bytes (f2a_guided_map_u8): an 8-bit photo
 * then needs no float copy at all, which as separate passes over memory
 * cost about as much as the map. */

#define CHUNK 128
#define PAD 8 /* a segment's last vector may write up to 7 floats past the chunk */
#define SPAN (CHUNK + 2) /* working-size columns a chunk reads while w <= W */

void f2a_guided_positions(int n, int N, int *first, float *weight) {
    for (int X = 0; X < N; X++) {
        /* Pixel centres aligned, clamped to the edge samples; evaluated in the
         * order GuidedPlan always used ((X + 0.5) n / N - 0.5, in double). */
        double u = ((double) X + 0.5) * (double) n / (double) N - 0.5;
        u = u < 0 ? 0 : (u > n - 1 ? n - 1 : u);
        int i = (int) u;
        first[X] = i;
        weight[X] = (float) (u - (double) i);
    }
}

static inline float sanitize(float v) { return v != v ? 0 : (v < 0 ? 0 : (v > 1 ? 1 : v)); }
static inline float clamp01(float v) { return v < 0 ? 0 : (v > 1 ? 1 : v); }

/* Bytes to the map's floats, u * (float) (1 / 255.), and back, (uchar) clamp(v
 * 255.f + .5f, 0, 255) truncated, with separate roundings (no FMA): what
 * libvips's vips_linear1 and vips_cast compute (f2a_guided_map_u8). */
#define U8_SCALE ((float) (1.0 / 255.0))

static inline float scalar_from_u8(unsigned char u) { return (float) u * U8_SCALE; }

static inline unsigned char scalar_to_u8(float v) {
#pragma clang fp contract(off)
    float t = v * 255.0f;
    t = t + 0.5f;
    return t <= 0 ? 0 : (t >= 255 ? 255 : (unsigned char) t);
}

/* The working-size row position of photo row Y (f2a_guided_positions for one row). */
static void row_position(int Y, int h, int H, int *y0, int *y1, float *fy) {
    int first;
    float weight;
    double u = ((double) Y + 0.5) * (double) h / (double) H - 0.5;
    u = u < 0 ? 0 : (u > h - 1 ? h - 1 : u);
    first = (int) u;
    weight = (float) (u - (double) first);
    *y0 = first;
    *y1 = first + 1 < h ? first + 1 : h - 1;
    *fy = weight;
}

/* One pixel through the 12 coefficients c. */
static inline void map_pixel(const float *c, const float *src, float *dst, float strength) {
    float r = sanitize(src[0]), g = sanitize(src[1]), b = sanitize(src[2]);
    float a0 = c[0] * r + c[1] * g + c[2] * b + c[9];
    float a1 = c[3] * r + c[4] * g + c[5] * b + c[10];
    float a2 = c[6] * r + c[7] * g + c[8] * b + c[11];
    dst[0] = clamp01(r + strength * (a0 - r));
    dst[1] = clamp01(g + strength * (a1 - g));
    dst[2] = clamp01(b + strength * (a2 - b));
}

void f2a_guided_map_portable(const float *coefficients, int w, int h, const int *columns, const float *weights,
                             int H, float strength, const float *in, size_t in_stride, float *out,
                             size_t out_stride, int left, int top, int width, int height) {
    const size_t plane = (size_t) w * h;
    for (int y = 0; y < height; y++) {
        int y0, y1;
        float fy;
        row_position(top + y, h, H, &y0, &y1, &fy);
        const float *src = in + (size_t) y * in_stride;
        float *dst = out + (size_t) y * out_stride;
        for (int x = 0; x < width; x++) {
            int x0 = columns[left + x], x1 = x0 + 1 < w ? x0 + 1 : w - 1;
            float fx = weights[left + x];
            float c[12];
            for (int k = 0; k < 12; k++) {
                const float *p = coefficients + k * plane;
                float c0 = p[(size_t) y0 * w + x0] * (1 - fy) + p[(size_t) y1 * w + x0] * fy;
                float c1 = p[(size_t) y0 * w + x1] * (1 - fy) + p[(size_t) y1 * w + x1] * fy;
                c[k] = c0 * (1 - fx) + c1 * fx;
            }
            map_pixel(c, src + 3 * x, dst + 3 * x, strength);
        }
    }
}

void f2a_guided_map_u8_portable(const float *coefficients, int w, int h, const int *columns, const float *weights,
                                int H, float strength, const unsigned char *in, size_t in_stride,
                                unsigned char *out, size_t out_stride, int left, int top, int width, int height) {
    float src[3 * 64], dst[3 * 64];
    for (int y = 0; y < height; y++)
        for (int x = 0; x < width; x += 64) {
            int n = width - x < 64 ? width - x : 64;
            const unsigned char *p = in + (size_t) y * in_stride + 3 * x;
            unsigned char *q = out + (size_t) y * out_stride + 3 * x;
            for (int i = 0; i < 3 * n; i++) src[i] = scalar_from_u8(p[i]);
            f2a_guided_map_portable(coefficients, w, h, columns, weights, H, strength, src, 3 * 64, dst, 3 * 64,
                                    left + x, top + y, n, 1);
            for (int i = 0; i < 3 * n; i++) q[i] = scalar_to_u8(dst[i]);
        }
}

/* 8 interleaved RGB pixels (3 vectors a, m, c of 8 values) <-> 3 planar
 * vectors. A blend of the three puts one channel's 8 values in each vector
 * in a fixed rotated order, which one permute sorts (and the inverse
 * permute restores). */
#define MASK_1 0x92 /* lanes 1, 4, 7 */
#define MASK_2 0x24 /* lanes 2, 5 */

__attribute__((target("avx2,fma"), always_inline))
static inline void deinterleave8(__m256 a, __m256 m, __m256 c, __m256 *r, __m256 *g, __m256 *b) {
    __m256 rr = _mm256_blend_ps(_mm256_blend_ps(a, m, MASK_1), c, MASK_2);
    __m256 gg = _mm256_blend_ps(_mm256_blend_ps(c, a, MASK_1), m, MASK_2);
    __m256 bb = _mm256_blend_ps(_mm256_blend_ps(m, c, MASK_1), a, MASK_2);
    *r = _mm256_permutevar8x32_ps(rr, _mm256_setr_epi32(0, 3, 6, 1, 4, 7, 2, 5));
    *g = _mm256_permutevar8x32_ps(gg, _mm256_setr_epi32(1, 4, 7, 2, 5, 0, 3, 6));
    *b = _mm256_permutevar8x32_ps(bb, _mm256_setr_epi32(2, 5, 0, 3, 6, 1, 4, 7));
}

__attribute__((target("avx2,fma"), always_inline))
static inline void interleave8(__m256 r, __m256 g, __m256 b, __m256 *a, __m256 *m, __m256 *c) {
    __m256 rr = _mm256_permutevar8x32_ps(r, _mm256_setr_epi32(0, 3, 6, 1, 4, 7, 2, 5));
    __m256 gg = _mm256_permutevar8x32_ps(g, _mm256_setr_epi32(5, 0, 3, 6, 1, 4, 7, 2));
    __m256 bb = _mm256_permutevar8x32_ps(b, _mm256_setr_epi32(2, 5, 0, 3, 6, 1, 4, 7));
    *a = _mm256_blend_ps(_mm256_blend_ps(rr, gg, MASK_1), bb, MASK_2);
    *m = _mm256_blend_ps(_mm256_blend_ps(bb, rr, MASK_1), gg, MASK_2);
    *c = _mm256_blend_ps(_mm256_blend_ps(gg, bb, MASK_1), rr, MASK_2);
}

/* 8 bytes -> 8 floats and back, as scalar_from_u8 and scalar_to_u8. */

__attribute__((target("avx2,fma"), always_inline))
static inline __m256 from_u8(const unsigned char *p) {
    __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *) p)));
    return _mm256_mul_ps(v, _mm256_set1_ps(U8_SCALE));
}

/* 8 interleaved pixels (24 values in [0, 1], the map's output) to bytes.
 * With v in [0, 1], v 255 + .5 lies in [.5, 255.5]: truncation alone gives
 * scalar_to_u8's clamped result. */
__attribute__((target("avx2,fma"), always_inline))
static inline void to_u8(__m256 a, __m256 m, __m256 c, unsigned char *q) {
    const __m256 k = _mm256_set1_ps(255.0f), half = _mm256_set1_ps(0.5f);
    __m256i ia = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(a, k), half));
    __m256i im = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(m, k), half));
    __m256i ic = _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(c, k), half));
    /* Per 128-bit lane: words a m | c c, then bytes a m c c; dwords back in order. */
    __m256i bytes = _mm256_packus_epi16(_mm256_packus_epi32(ia, im), _mm256_packus_epi32(ic, ic));
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm_storeu_si128((__m128i *) q, _mm256_castsi256_si128(bytes));
    _mm_storel_epi64((__m128i *) (q + 16), _mm256_extracti128_si256(bytes, 1));
}

/* clamp(x + s (a - x), 0, 1); max first, so a NaN becomes 0. */
__attribute__((target("avx2,fma"), always_inline))
static inline __m256 blend_clamp(__m256 x, __m256 a, __m256 s) {
    __m256 v = _mm256_fmadd_ps(s, _mm256_sub_ps(a, x), x);
    return _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(1));
}

__attribute__((target("avx2,fma"), always_inline))
static inline __m256 sanitize8(__m256 v) {
    return _mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(1));
}

/* Steps 0 and 1 for the columns [x, x + n) of one photo row (n <= CHUNK):
 * the 12 coefficients of each pixel into coef. top/bottom: the two
 * working-size rows the photo row lies between (planes `plane` floats apart). */
__attribute__((target("avx2,fma")))
static void chunk_coefficients(const float *top, const float *bottom, size_t plane, int w, float fy,
                               const int *columns, const float *weights, int x, int n, int j0, int span,
                               float coef[12][CHUNK + PAD]) {
    float vertical[12][SPAN];
    float fx[CHUNK + 2 * PAD];

    /* Step 0: the working-size columns the chunk reads, interpolated between the two rows. */
    const __m256 vfy = _mm256_set1_ps(fy), vgy = _mm256_set1_ps(1 - fy);
    for (int k = 0; k < 12; k++) {
        const float *p0 = top + k * plane + j0, *p1 = bottom + k * plane + j0;
        int i = 0;
        for (; i + 8 <= span; i += 8)
            _mm256_storeu_ps(vertical[k] + i, _mm256_fmadd_ps(_mm256_loadu_ps(p1 + i), vfy,
                                                              _mm256_mul_ps(_mm256_loadu_ps(p0 + i), vgy)));
        for (; i < span; i++) vertical[k][i] = fmaf(p1[i], fy, p0[i] * (1 - fy));
    }

    /* Step 1: segment by segment, each plane linear in X between its two
     * columns: c0 + fx (c1 - c0), one FMA per 8 pixels and plane. */
    memcpy(fx, weights + x, (size_t) n * sizeof(float));
    memset(fx + n, 0, 2 * PAD * sizeof(float));
    /* The lanes past the chunk a last partial vector reads (its results are dropped). */
    for (int k = 0; k < 12; k++) memset(coef[k] + n, 0, PAD * sizeof(float));
    for (int s = 0; s < n;) {
        int j = columns[x + s], e = s + 1;
        while (e < n && columns[x + e] == j) e++;
        int a = j - j0, b = (j + 1 < w ? j + 1 : w - 1) - j0;
        for (int k = 0; k < 12; k++) {
            const __m256 c0 = _mm256_set1_ps(vertical[k][a]), d = _mm256_set1_ps(vertical[k][b] - vertical[k][a]);
            /* Whole vectors: what spills past the segment the next one overwrites. */
            for (int i = s; i < e; i += 8)
                _mm256_storeu_ps(coef[k] + i, _mm256_fmadd_ps(d, _mm256_loadu_ps(fx + i), c0));
        }
        s = e;
    }
}

/* Step 2 on 8 pixels: the affine transform, blended with the input, clamped. */
__attribute__((target("avx2,fma"), always_inline))
static inline void map8(float coef[12][CHUNK + PAD], int i, __m256 vs, int in_range, __m256 *a, __m256 *m,
                        __m256 *c) {
    __m256 r, g, b;
    deinterleave8(*a, *m, *c, &r, &g, &b);
    if (!in_range) {
        r = sanitize8(r);
        g = sanitize8(g);
        b = sanitize8(b);
    }
    __m256 o[3];
    for (int k = 0; k < 3; k++) {
        __m256 acc = _mm256_fmadd_ps(_mm256_loadu_ps(coef[3 * k] + i), r, _mm256_loadu_ps(coef[9 + k] + i));
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(coef[3 * k + 1] + i), g, acc);
        o[k] = _mm256_fmadd_ps(_mm256_loadu_ps(coef[3 * k + 2] + i), b, acc);
    }
    interleave8(blend_clamp(r, o[0], vs), blend_clamp(g, o[1], vs), blend_clamp(b, o[2], vs), a, m, c);
}

/* Step 2 over a chunk, pixels as floats or as bytes. The last pixels of a
 * chunk go through the same vector code by way of a copy: the output of a
 * pixel must not depend on where the caller's rectangles split the row. */
__attribute__((target("avx2,fma")))
static void chunk_map_f32(float coef[12][CHUNK + PAD], int n, float strength, const float *src, float *dst) {
    const __m256 vs = _mm256_set1_ps(strength);
    for (int i = 0; i < n; i += 8) {
        float in8[24] = { 0 }, out8[24];
        const float *p = src + 3 * i;
        float *q = dst + 3 * i;
        int last = n - i < 8;
        if (last) {
            memcpy(in8, p, 3 * (size_t) (n - i) * sizeof(float));
            p = in8;
            q = out8;
        }
        __m256 a = _mm256_loadu_ps(p), m = _mm256_loadu_ps(p + 8), c = _mm256_loadu_ps(p + 16);
        map8(coef, i, vs, 0, &a, &m, &c);
        _mm256_storeu_ps(q, a);
        _mm256_storeu_ps(q + 8, m);
        _mm256_storeu_ps(q + 16, c);
        if (last) memcpy(dst + 3 * i, out8, 3 * (size_t) (n - i) * sizeof(float));
    }
}

__attribute__((target("avx2,fma")))
static void chunk_map_u8(float coef[12][CHUNK + PAD], int n, float strength, const unsigned char *src,
                         unsigned char *dst) {
    const __m256 vs = _mm256_set1_ps(strength);
    for (int i = 0; i < n; i += 8) {
        unsigned char in8[24] = { 0 }, out8[24];
        const unsigned char *p = src + 3 * i;
        unsigned char *q = dst + 3 * i;
        int last = n - i < 8;
        if (last) {
            memcpy(in8, p, 3 * (size_t) (n - i));
            p = in8;
            q = out8;
        }
        /* Bytes give values in [0, 1] (255 (float) (1 / 255.) rounds to 1): nothing to sanitize. */
        __m256 a = from_u8(p), m = from_u8(p + 8), c = from_u8(p + 16);
        map8(coef, i, vs, 1, &a, &m, &c);
        to_u8(a, m, c, q);
        if (last) memcpy(dst + 3 * i, out8, 3 * (size_t) (n - i));
    }
}

/* Pixels as floats (u8 == 0: in/out are float *, strides in floats) or bytes. */
__attribute__((target("avx2,fma")))
static void map_avx2(const float *coefficients, int w, int h, const int *columns, const float *weights, int H,
                     float strength, const void *in, size_t in_stride, void *out, size_t out_stride, int left,
                     int top, int width, int height, int u8) {
    const size_t plane = (size_t) w * h;
    float coef[12][CHUNK + PAD];
    for (int y = 0; y < height; y++) {
        int y0, y1;
        float fy;
        row_position(top + y, h, H, &y0, &y1, &fy);
        for (int x = 0; x < width; x += CHUNK) {
            int n = width - x < CHUNK ? width - x : CHUNK;
            int j0 = columns[left + x], last = columns[left + x + n - 1];
            int span = (last + 1 < w ? last + 1 : w - 1) - j0 + 1;
            if (span > SPAN) { /* a working size above the photo's: not from GuidedPlan, but correct anyway */
                if (u8)
                    f2a_guided_map_u8_portable(coefficients, w, h, columns, weights, H, strength,
                                               (const unsigned char *) in + y * in_stride + 3 * x, in_stride,
                                               (unsigned char *) out + y * out_stride + 3 * x, out_stride,
                                               left + x, top + y, n, 1);
                else
                    f2a_guided_map_portable(coefficients, w, h, columns, weights, H, strength,
                                            (const float *) in + y * in_stride + 3 * x, in_stride,
                                            (float *) out + y * out_stride + 3 * x, out_stride, left + x, top + y,
                                            n, 1);
                continue;
            }
            chunk_coefficients(coefficients + (size_t) y0 * w, coefficients + (size_t) y1 * w, plane, w, fy,
                               columns, weights, left + x, n, j0, span, coef);
            if (u8)
                chunk_map_u8(coef, n, strength, (const unsigned char *) in + y * in_stride + 3 * x,
                             (unsigned char *) out + y * out_stride + 3 * x);
            else
                chunk_map_f32(coef, n, strength, (const float *) in + y * in_stride + 3 * x,
                              (float *) out + y * out_stride + 3 * x);
        }
    }
}

void f2a_guided_map(const float *coefficients, int w, int h, const int *columns, const float *weights, int H,
                    float strength, const float *in, size_t in_stride, float *out, size_t out_stride, int left,
                    int top, int width, int height) {
    if (width <= 0 || height <= 0) return;
    if (f2a_kernels_available())
        map_avx2(coefficients, w, h, columns, weights, H, strength, in, in_stride, out, out_stride, left, top,
                 width, height, 0);
    else
        f2a_guided_map_portable(coefficients, w, h, columns, weights, H, strength, in, in_stride, out, out_stride,
                                left, top, width, height);
}

void f2a_guided_map_u8(const float *coefficients, int w, int h, const int *columns, const float *weights, int H,
                       float strength, const unsigned char *in, size_t in_stride, unsigned char *out,
                       size_t out_stride, int left, int top, int width, int height) {
    if (width <= 0 || height <= 0) return;
    if (f2a_kernels_available())
        map_avx2(coefficients, w, h, columns, weights, H, strength, in, in_stride, out, out_stride, left, top,
                 width, height, 1);
    else
        f2a_guided_map_u8_portable(coefficients, w, h, columns, weights, H, strength, in, in_stride, out,
                                   out_stride, left, top, width, height);
}
