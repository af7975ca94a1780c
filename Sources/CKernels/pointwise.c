#include "f2a_kernels.h"
#include "microkernel.h"

#include <immintrin.h>
#include <math.h>
#include <stddef.h>

/* The small steps around the convolutions: the output head (1x1 conv,
 * activation, ratio-log decode), 2x2 max-pooling, the input scaling, and
 * the conversions between the caller's interleaved RGB and planes.
 *
 * Why here and not in Swift: at the shipped width they are a few percent
 * of the work but ran as scalar loops on one thread (the head through
 * OpenBLAS, whose threads then yield-spin for ~100 ms and compete with
 * everything after), so on 2 cores they cost about as much wall time as
 * the convolutions of a whole level. Vectorised on the pool they cost
 * next to nothing. */

#define PIXELS 2048 /* pixels per work item of the pointwise jobs */

/* e^x, Cephes' single-precision range reduction and polynomial (max relative error ~2e-7
 * over the float range; saturates outside it): the constants of exp8 and exp16, which run
 * the same operations in the same order and so give the same floats. */
static const float EXP_HI = 88.3762626647949f, EXP_LO = -87.3365478515625f, EXP_LOG2E = 1.44269504088896341f;
static const float EXP_LN2_HI = 0.693359375f, EXP_LN2_LO = -2.12194440e-4f;
static const float EXP_P[6] = { 1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f };

__attribute__((target("avx2,fma"), always_inline))
static inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(x, _mm256_set1_ps(EXP_HI));
    x = _mm256_max_ps(x, _mm256_set1_ps(EXP_LO));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EXP_LOG2E)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_HI), x);
    x = _mm256_fnmadd_ps(n, _mm256_set1_ps(EXP_LN2_LO), x);
    __m256 y = _mm256_set1_ps(EXP_P[0]);
    for (int i = 1; i < 6; i++) y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(EXP_P[i]));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1)));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

__attribute__((target("avx2,fma"), always_inline))
static inline __m256 activate8(__m256 v, int act) {
    const __m256 one = _mm256_set1_ps(1);
    switch (act) {
    case F2A_ACT_RELU: return _mm256_max_ps(v, _mm256_setzero_ps());
    case F2A_ACT_SIGMOID: return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), v))));
    case F2A_ACT_TANH: { /* 1 - 2 / (e^2v + 1): saturates at +-1 without overflow; ~1e-7 absolute error near 0 */
        __m256 e = exp8(_mm256_add_ps(v, v));
        return _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2), _mm256_add_ps(e, one)));
    }
    default: return v;
    }
}

static float activate1(float v, int act) {
    switch (act) {
    case F2A_ACT_RELU: return v > 0 ? v : 0;
    case F2A_ACT_SIGMOID: return v >= 0 ? 1 / (1 + expf(-v)) : expf(v) / (1 + expf(v));
    case F2A_ACT_TANH: return tanhf(v);
    default: return v;
    }
}

struct head {
    const float *x, *weight, *bias, *flash;
    float *out;
    int cin, cout, act;
    long hw;
};

/* Pixels [p0, p1) of every output plane: 8-lane vectors, then a scalar tail. */
__attribute__((target("avx2,fma")))
static void head_range(const struct head *j, long p0, long p1) {
    const __m256 one = _mm256_set1_ps(1), zero = _mm256_setzero_ps();
    const __m256 ln2x2 = _mm256_set1_ps(2 * 0.693147180559945309f), ln2 = _mm256_set1_ps(0.693147180559945309f);
    for (int o = 0; o < j->cout; o++) {
        const float *w = j->weight + (size_t) o * j->cin;
        float *dst = j->out + (size_t) o * j->hw;
        const float *f = j->flash ? j->flash + (size_t) o * j->hw : NULL;
        long p = p0;
        for (; p + 8 <= p1; p += 8) {
            __m256 acc = _mm256_set1_ps(j->bias[o]);
            for (int c = 0; c < j->cin; c++)
                acc = _mm256_fmadd_ps(_mm256_set1_ps(w[c]), _mm256_loadu_ps(j->x + (size_t) c * j->hw + p), acc);
            acc = activate8(acc, j->act);
            if (f) { /* ratio-log decode: clamp((F + 1) 2^(2r - 1) - 1, 0, 1) */
                __m256 g = exp8(_mm256_fmsub_ps(acc, ln2x2, ln2));
                acc = _mm256_fmsub_ps(_mm256_add_ps(_mm256_loadu_ps(f + p), one), g, one);
                acc = _mm256_min_ps(_mm256_max_ps(acc, zero), one);
            }
            _mm256_storeu_ps(dst + p, acc);
        }
        for (; p < p1; p++) {
            float acc = j->bias[o];
            for (int c = 0; c < j->cin; c++) acc += w[c] * j->x[(size_t) c * j->hw + p];
            acc = activate1(acc, j->act);
            if (f) {
                acc = (f[p] + 1) * exp2f(2 * acc - 1) - 1;
                acc = acc < 0 ? 0 : (acc > 1 ? 1 : acc);
            }
            dst[p] = acc;
        }
    }
}

static void head_block(void *ctx, int item, int thread) {
    (void) thread;
    const struct head *j = ctx;
    long p0 = (long) item * PIXELS, p1 = p0 + PIXELS < j->hw ? p0 + PIXELS : j->hw;
    head_range(j, p0, p1);
}

/* exp8 in 16 lanes. */
__attribute__((target("avx512f"), always_inline))
static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(x, _mm512_set1_ps(EXP_HI));
    x = _mm512_max_ps(x, _mm512_set1_ps(EXP_LO));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_HI), x);
    x = _mm512_fnmadd_ps(n, _mm512_set1_ps(EXP_LN2_LO), x);
    __m512 y = _mm512_set1_ps(EXP_P[0]);
    for (int i = 1; i < 6; i++) y = _mm512_fmadd_ps(y, x, _mm512_set1_ps(EXP_P[i]));
    y = _mm512_fmadd_ps(y, _mm512_mul_ps(x, x), _mm512_add_ps(x, _mm512_set1_ps(1)));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

__attribute__((target("avx512f"), always_inline))
static inline __m512 activate16(__m512 v, int act) {
    const __m512 one = _mm512_set1_ps(1);
    switch (act) {
    case F2A_ACT_RELU: return _mm512_max_ps(v, _mm512_setzero_ps());
    case F2A_ACT_SIGMOID: return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), v))));
    case F2A_ACT_TANH: {
        __m512 e = exp16(_mm512_add_ps(v, v));
        return _mm512_sub_ps(one, _mm512_div_ps(_mm512_set1_ps(2), _mm512_add_ps(e, one)));
    }
    default: return v;
    }
}

/* head_block in 16-lane vectors, on CPUs with AVX-512: the network's last step at the
 * shipped model's working size (3 x 8 channels, 256 x 192 with the ratio-log decode)
 * took 0.23-0.26 ms of a 6-7 ms pass with 8 lanes. What is left of an item past its last
 * 16 pixels goes the 8-lane way, so each pixel takes the path it takes there and the
 * results are the same bits. */
__attribute__((target("avx512f")))
static void head_block_avx512(void *ctx, int item, int thread) {
    (void) thread;
    const struct head *j = ctx;
    long p0 = (long) item * PIXELS, p1 = p0 + PIXELS < j->hw ? p0 + PIXELS : j->hw;
    long p16 = p0 + (p1 - p0) / 16 * 16;
    const __m512 one = _mm512_set1_ps(1), zero = _mm512_setzero_ps();
    const __m512 ln2x2 = _mm512_set1_ps(2 * 0.693147180559945309f), ln2 = _mm512_set1_ps(0.693147180559945309f);
    for (int o = 0; o < j->cout; o++) {
        const float *w = j->weight + (size_t) o * j->cin;
        float *dst = j->out + (size_t) o * j->hw;
        const float *f = j->flash ? j->flash + (size_t) o * j->hw : NULL;
        for (long p = p0; p < p16; p += 16) {
            __m512 acc = _mm512_set1_ps(j->bias[o]);
            for (int c = 0; c < j->cin; c++)
                acc = _mm512_fmadd_ps(_mm512_set1_ps(w[c]), _mm512_loadu_ps(j->x + (size_t) c * j->hw + p), acc);
            acc = activate16(acc, j->act);
            if (f) {
                __m512 g = exp16(_mm512_fmsub_ps(acc, ln2x2, ln2));
                acc = _mm512_fmsub_ps(_mm512_add_ps(_mm512_loadu_ps(f + p), one), g, one);
                acc = _mm512_min_ps(_mm512_max_ps(acc, zero), one);
            }
            _mm512_storeu_ps(dst + p, acc);
        }
    }
    head_range(j, p16, p1);
}

void f2a_conv1x1(const float *x, int cin, long hw, const float *weight, const float *bias, int cout, int act,
                 const float *flash, float *out, int threads) {
    struct head j = { x, weight, bias, flash, out, cin, cout, act, hw };
    if (hw <= 0 || cout <= 0) return;
    f2a_parallel(f2a_kernels_avx512() ? head_block_avx512 : head_block, &j, (int) ((hw + PIXELS - 1) / PIXELS),
                 threads);
}

/* The head's backward (the trainer's output layer, 3 output channels): one pass over each
 * block of PIXELS pixels reads dz and x once for the input gradient and the weight and bias
 * gradients' partial sums; as three GEMMs of 3 rows (dx = W^T dz, dW = dz x^T) OpenBLAS
 * ran them at 14-19 GFLOP/s, and the bias gradient was a pass of its own. */
#define HEAD_GRAD_COUT 3
#define HEAD_GRAD_GROUP 8 /* input channels per pass over a block: 3 x 8 accumulators */

struct head_grad {
    const float *x, *dz, *weight;
    float *dx, *partials; /* partials: per block, [cout][cin] then [cout] */
    int cin;
    long hw;
};

size_t f2a_conv1x1_backward_scratch(long hw, int cin, int cout) {
    return hw <= 0 ? 0 : (size_t) ((hw + PIXELS - 1) / PIXELS) * (size_t) cout * (size_t) (cin + 1);
}

/* The weight gradient's partial sums of input channels c0 ..< c0 + cg over pixels p0 ..< p1.
 * cg is a constant where this is inlined: the 3 x cg accumulators then stay in registers
 * (a loop that may stop early keeps them in memory, a store after every FMA). Masked lanes
 * load zeros, which add nothing. */
__attribute__((target("avx512f"), always_inline))
static inline void head_grad_channels(const int cg, const struct head_grad *j, int c0, long p0, long p1, float *part) {
    const size_t hw = (size_t) j->hw;
    const float *dz0 = j->dz, *dz1 = dz0 + hw, *dz2 = dz1 + hw;
    __m512 acc[HEAD_GRAD_COUT][HEAD_GRAD_GROUP];
    for (int o = 0; o < HEAD_GRAD_COUT; o++)
        for (int c = 0; c < cg; c++) acc[o][c] = _mm512_setzero_ps();
    for (long p = p0; p < p1; p += 16) {
        const __mmask16 m = cols_in(0, (int) (p1 - p));
        const __m512 d0 = _mm512_maskz_loadu_ps(m, dz0 + p), d1 = _mm512_maskz_loadu_ps(m, dz1 + p),
                     d2 = _mm512_maskz_loadu_ps(m, dz2 + p);
        for (int c = 0; c < cg; c++) {
            const __m512 v = _mm512_maskz_loadu_ps(m, j->x + (size_t) (c0 + c) * hw + p);
            acc[0][c] = _mm512_fmadd_ps(d0, v, acc[0][c]);
            acc[1][c] = _mm512_fmadd_ps(d1, v, acc[1][c]);
            acc[2][c] = _mm512_fmadd_ps(d2, v, acc[2][c]);
        }
    }
    for (int o = 0; o < HEAD_GRAD_COUT; o++)
        for (int c = 0; c < cg; c++) part[o * j->cin + c0 + c] = _mm512_reduce_add_ps(acc[o][c]);
}

__attribute__((target("avx512f")))
static void head_grad_block(void *ctx, int item, int thread) {
    (void) thread;
    const struct head_grad *j = ctx;
    const long p0 = (long) item * PIXELS, p1 = p0 + PIXELS < j->hw ? p0 + PIXELS : j->hw;
    const int cin = j->cin;
    const size_t hw = (size_t) j->hw;
    const float *dz0 = j->dz, *dz1 = dz0 + hw, *dz2 = dz1 + hw;
    float *part = j->partials + (size_t) item * HEAD_GRAD_COUT * (cin + 1);
    for (int c0 = 0; c0 < cin; c0 += HEAD_GRAD_GROUP) {
        switch (cin - c0 < HEAD_GRAD_GROUP ? cin - c0 : HEAD_GRAD_GROUP) {
        case 1: head_grad_channels(1, j, c0, p0, p1, part); break;
        case 2: head_grad_channels(2, j, c0, p0, p1, part); break;
        case 3: head_grad_channels(3, j, c0, p0, p1, part); break;
        case 4: head_grad_channels(4, j, c0, p0, p1, part); break;
        case 5: head_grad_channels(5, j, c0, p0, p1, part); break;
        case 6: head_grad_channels(6, j, c0, p0, p1, part); break;
        case 7: head_grad_channels(7, j, c0, p0, p1, part); break;
        default: head_grad_channels(HEAD_GRAD_GROUP, j, c0, p0, p1, part); break;
        }
    }
    __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0;
    for (long p = p0; p < p1; p += 16) {
        const __mmask16 m = cols_in(0, (int) (p1 - p));
        const __m512 d0 = _mm512_maskz_loadu_ps(m, dz0 + p), d1 = _mm512_maskz_loadu_ps(m, dz1 + p),
                     d2 = _mm512_maskz_loadu_ps(m, dz2 + p);
        s0 = _mm512_add_ps(s0, d0);
        s1 = _mm512_add_ps(s1, d1);
        s2 = _mm512_add_ps(s2, d2);
        if (!j->dx) continue;
        for (int c = 0; c < cin; c++) {
            const float *w = j->weight + c;
            __m512 g = _mm512_mul_ps(_mm512_set1_ps(w[0]), d0);
            g = _mm512_fmadd_ps(_mm512_set1_ps(w[cin]), d1, g);
            g = _mm512_fmadd_ps(_mm512_set1_ps(w[2 * cin]), d2, g);
            _mm512_mask_storeu_ps(j->dx + (size_t) c * hw + p, m, g);
        }
    }
    part[HEAD_GRAD_COUT * cin + 0] = _mm512_reduce_add_ps(s0);
    part[HEAD_GRAD_COUT * cin + 1] = _mm512_reduce_add_ps(s1);
    part[HEAD_GRAD_COUT * cin + 2] = _mm512_reduce_add_ps(s2);
}

/* The same with AVX2's 16 registers: 8-pixel vectors, groups of 4 input channels (3 x 4
 * accumulators, 3 dz vectors, one input vector), masked loads and stores at the block's end. */
#define HEAD_GRAD_GROUP_AVX2 4

__attribute__((target("avx2,fma"), always_inline))
static inline void head_grad_channels_avx2(const int cg, const struct head_grad *j, int c0, long p0, long p1, float *part) {
    const size_t hw = (size_t) j->hw;
    const float *dz0 = j->dz, *dz1 = dz0 + hw, *dz2 = dz1 + hw;
    __m256 acc[HEAD_GRAD_COUT][HEAD_GRAD_GROUP_AVX2];
    for (int o = 0; o < HEAD_GRAD_COUT; o++)
        for (int c = 0; c < cg; c++) acc[o][c] = _mm256_setzero_ps();
    for (long p = p0; p < p1; p += 8) {
        const __m256i m = lanes_below((int) (p1 - p < 8 ? p1 - p : 8));
        const __m256 d0 = _mm256_maskload_ps(dz0 + p, m), d1 = _mm256_maskload_ps(dz1 + p, m), d2 = _mm256_maskload_ps(dz2 + p, m);
        for (int c = 0; c < cg; c++) {
            const __m256 v = _mm256_maskload_ps(j->x + (size_t) (c0 + c) * hw + p, m);
            acc[0][c] = _mm256_fmadd_ps(d0, v, acc[0][c]);
            acc[1][c] = _mm256_fmadd_ps(d1, v, acc[1][c]);
            acc[2][c] = _mm256_fmadd_ps(d2, v, acc[2][c]);
        }
    }
    for (int o = 0; o < HEAD_GRAD_COUT; o++)
        for (int c = 0; c < cg; c++) part[o * j->cin + c0 + c] = sum8(acc[o][c]);
}

__attribute__((target("avx2,fma")))
static void head_grad_block_avx2(void *ctx, int item, int thread) {
    (void) thread;
    const struct head_grad *j = ctx;
    const long p0 = (long) item * PIXELS, p1 = p0 + PIXELS < j->hw ? p0 + PIXELS : j->hw;
    const int cin = j->cin;
    const size_t hw = (size_t) j->hw;
    const float *dz0 = j->dz, *dz1 = dz0 + hw, *dz2 = dz1 + hw;
    float *part = j->partials + (size_t) item * HEAD_GRAD_COUT * (cin + 1);
    for (int c0 = 0; c0 < cin; c0 += HEAD_GRAD_GROUP_AVX2) {
        switch (cin - c0 < HEAD_GRAD_GROUP_AVX2 ? cin - c0 : HEAD_GRAD_GROUP_AVX2) {
        case 1: head_grad_channels_avx2(1, j, c0, p0, p1, part); break;
        case 2: head_grad_channels_avx2(2, j, c0, p0, p1, part); break;
        case 3: head_grad_channels_avx2(3, j, c0, p0, p1, part); break;
        default: head_grad_channels_avx2(HEAD_GRAD_GROUP_AVX2, j, c0, p0, p1, part); break;
        }
    }
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0;
    for (long p = p0; p < p1; p += 8) {
        const __m256i m = lanes_below((int) (p1 - p < 8 ? p1 - p : 8));
        const __m256 d0 = _mm256_maskload_ps(dz0 + p, m), d1 = _mm256_maskload_ps(dz1 + p, m), d2 = _mm256_maskload_ps(dz2 + p, m);
        s0 = _mm256_add_ps(s0, d0);
        s1 = _mm256_add_ps(s1, d1);
        s2 = _mm256_add_ps(s2, d2);
        if (!j->dx) continue;
        for (int c = 0; c < cin; c++) {
            const float *w = j->weight + c;
            __m256 g = _mm256_mul_ps(_mm256_set1_ps(w[0]), d0);
            g = _mm256_fmadd_ps(_mm256_set1_ps(w[cin]), d1, g);
            g = _mm256_fmadd_ps(_mm256_set1_ps(w[2 * cin]), d2, g);
            _mm256_maskstore_ps(j->dx + (size_t) c * hw + p, m, g);
        }
    }
    part[HEAD_GRAD_COUT * cin + 0] = sum8(s0);
    part[HEAD_GRAD_COUT * cin + 1] = sum8(s1);
    part[HEAD_GRAD_COUT * cin + 2] = sum8(s2);
}

int f2a_conv1x1_backward(const float *x, int cin, long hw, const float *dz, int cout, const float *weight, float *dx,
                         float *dw, float *db, float *scratch, int threads) {
    const int wide = f2a_kernels_avx512();
    if (cout != HEAD_GRAD_COUT || cin < 1 || (!wide && !f2a_kernels_available())) return -1;
    if (hw <= 0) return 0;
    struct head_grad j = { x, dz, weight, dx, scratch, cin, hw };
    const int blocks = (int) ((hw + PIXELS - 1) / PIXELS);
    f2a_parallel(wide ? head_grad_block : head_grad_block_avx2, &j, blocks, threads);
    /* In block order, whatever thread summed each block. */
    const int n = cout * (cin + 1);
    for (int i = 0; i < n; i++) {
        double sum = 0;
        for (int b = 0; b < blocks; b++) sum += scratch[(size_t) b * n + i];
        if (i < cout * cin) dw[i] += (float) sum;
        else db[i - cout * cin] += (float) sum;
    }
    return 0;
}

struct pool {
    const float *x;
    float *out;
    int h, w, oh, ow, rows, per_item; /* rows: planes x oh output rows */
};

__attribute__((target("avx2,fma")))
static void pool_row(const struct pool *j, int row) {
    int plane = row / j->oh, oy = row % j->oh;
    const float *a = j->x + ((size_t) plane * j->h + 2 * oy) * j->w, *b = a + j->w;
    float *dst = j->out + ((size_t) plane * j->oh + oy) * j->ow;
    int ox = 0;
    for (; ox + 8 <= j->ow; ox += 8) {
        __m256 m0 = _mm256_max_ps(_mm256_loadu_ps(a + 2 * ox), _mm256_loadu_ps(b + 2 * ox));
        __m256 m1 = _mm256_max_ps(_mm256_loadu_ps(a + 2 * ox + 8), _mm256_loadu_ps(b + 2 * ox + 8));
        /* horizontal pairs: even lanes vs odd lanes, back in order */
        __m256 ev = _mm256_shuffle_ps(m0, m1, 0x88), od = _mm256_shuffle_ps(m0, m1, 0xDD);
        __m256 m = _mm256_max_ps(ev, od);
        _mm256_storeu_ps(dst + ox, _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(m), 0xD8)));
    }
    for (; ox < j->ow; ox++) {
        float m = a[2 * ox];
        if (a[2 * ox + 1] > m) m = a[2 * ox + 1];
        if (b[2 * ox] > m) m = b[2 * ox];
        if (b[2 * ox + 1] > m) m = b[2 * ox + 1];
        dst[ox] = m;
    }
}

/* Output rows [per_item item, ...): about PIXELS outputs per item, as one
 * row of a deep level is too little work to hand out on its own. */
static void pool_rows(void *ctx, int item, int thread) {
    (void) thread;
    const struct pool *j = ctx;
    int r1 = (item + 1) * j->per_item < j->rows ? (item + 1) * j->per_item : j->rows;
    for (int r = item * j->per_item; r < r1; r++) pool_row(j, r);
}

void f2a_maxpool2x2(const float *x, int planes, int height, int width, float *out, int threads) {
    struct pool j = { x, out, height, width, height / 2, width / 2, 0, 0 };
    if (planes <= 0 || j.oh <= 0 || j.ow <= 0) return;
    j.rows = planes * j.oh;
    j.per_item = PIXELS / j.ow > 1 ? PIXELS / j.ow : 1;
    f2a_parallel(pool_rows, &j, (j.rows + j.per_item - 1) / j.per_item, threads);
}

struct affine {
    const float *x;
    float *out;
    float a, b;
    long n;
};

__attribute__((target("avx2,fma")))
static void affine_block(void *ctx, int item, int thread) {
    (void) thread;
    const struct affine *j = ctx;
    long p = (long) item * 4 * PIXELS, end = p + 4 * PIXELS < j->n ? p + 4 * PIXELS : j->n;
    const __m256 a = _mm256_set1_ps(j->a), b = _mm256_set1_ps(j->b);
    for (; p + 8 <= end; p += 8) _mm256_storeu_ps(j->out + p, _mm256_fmadd_ps(a, _mm256_loadu_ps(j->x + p), b));
    for (; p < end; p++) j->out[p] = j->a * j->x[p] + j->b;
}

void f2a_affine(const float *x, long n, float a, float b, float *out, int threads) {
    struct affine j = { x, out, a, b, n };
    if (n <= 0) return;
    f2a_parallel(affine_block, &j, (int) ((n + 4 * PIXELS - 1) / (4 * PIXELS)), threads);
}

/* [0, 1], NaN -> 0: what the library promises for any input value. */
static inline float sanitize(float v) { return v != v ? 0 : (v < 0 ? 0 : (v > 1 ? 1 : v)); }

struct planar {
    const float *base;
    size_t row_stride;
    const int *rows, *cols;
    int width;
    size_t plane;
    float *out;
};

static void planar_row(void *ctx, int y, int thread) {
    (void) thread;
    const struct planar *j = ctx;
    const float *src = j->base + (size_t) j->rows[y] * j->row_stride;
    float *r = j->out + (size_t) y * j->width, *g = r + j->plane, *b = g + j->plane;
    for (int x = 0; x < j->width; x++) {
        const float *s = src + 3 * (size_t) j->cols[x];
        r[x] = sanitize(s[0]);
        g[x] = sanitize(s[1]);
        b[x] = sanitize(s[2]);
    }
}

void f2a_planar_rgb(const float *base, size_t row_stride, const int *rows, int height, const int *cols, int width,
                    float *out, int threads) {
    struct planar j = { base, row_stride, rows, cols, width, (size_t) height * width, out };
    if (height <= 0 || width <= 0) return;
    f2a_parallel(planar_row, &j, height, threads);
}

struct blend {
    const float *in, *planes;
    size_t in_stride, out_stride, plane;
    int plane_width, top, left, width;
    float strength;
    float *out;
};

static void blend_row(void *ctx, int y, int thread) {
#pragma clang fp contract(off) /* separate roundings, as before in Swift: strength 1 gives G exactly */
    (void) thread;
    const struct blend *j = ctx;
    const float *src = j->in + (size_t) y * j->in_stride;
    float *dst = j->out + (size_t) y * j->out_stride;
    const float *g = j->planes + (size_t) (y + j->top) * j->plane_width + j->left;
    for (int x = 0; x < j->width; x++)
        for (int c = 0; c < 3; c++) {
            float f = sanitize(src[3 * x + c]);
            float v = f + j->strength * (g[(size_t) c * j->plane + x] - f);
            dst[3 * x + c] = v < 0 ? 0 : (v > 1 ? 1 : v);
        }
}

void f2a_blend_rgb(const float *in, size_t in_stride, const float *planes, int plane_height, int plane_width,
                   int top, int left, int width, int height, float strength, float *out, size_t out_stride,
                   int threads) {
    struct blend j = { in, planes, in_stride, out_stride, (size_t) plane_height * plane_width, plane_width, top, left,
                       width, strength, out };
    if (height <= 0 || width <= 0) return;
    f2a_parallel(blend_row, &j, height, threads);
}
