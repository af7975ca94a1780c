/* Hand-vectorised CPU kernels (AVX2 + FMA) behind F2ACore's layers.
 * Internal to flash2ambient. All tensors are float32, NCHW, batch 1. */
#ifndef F2A_KERNELS_H
#define F2A_KERNELS_H

#include <stddef.h>

/** 1 if this CPU runs the AVX2/FMA kernels, else 0 (callers fall back to GEMM). */
int f2a_kernels_available(void);

/** Floats needed by f2a_conv3x3_pack for a [cout, cin, 3, 3] weight. */
size_t f2a_conv3x3_packed_count(int cout, int cin);

/** Reorders [cout, cin, 3, 3] weights into the kernel's blocked layout. */
void f2a_conv3x3_pack(const float *weight, int cout, int cin, float *packed);

/** Floats of scratch memory f2a_conv3x3 needs (a zero-bordered input copy). */
size_t f2a_conv3x3_scratch_count(int cin, int height, int width);

/**
 * 3x3 convolution, stride 1, zero padding 1, bias, optional ReLU.
 *
 * The input is the channel concatenation of `nsrc` tensors (a U-Net skip
 * concatenation costs nothing): source s has src_channels[s] planes of
 * height x width at srcs[s]. out: [cout, height, width].
 * `scratch` holds f2a_conv3x3_scratch_count(cin, height, width) floats
 * (caller-owned, so that allocation failures surface in the caller).
 * `threads` >= 1 splits the rows between that many threads (at most 16).
 */
void f2a_conv3x3(const float *const *srcs, const int *src_channels, int nsrc,
                 int height, int width, const float *packed, const float *bias,
                 int cout, int relu, float *out, float *scratch, int threads);

#endif
