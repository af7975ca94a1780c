import CKernels
import F2ACore

/// The trainer's 3x3 convolutions (stride 1, padding 1) on the inference engine's
/// kernels (Winograd F(4x4, 3x3) with AVX2/FMA, im2col + BLAS otherwise), which run
/// the narrow layers of small models several times faster than the trainer's im2col
/// + sgemm. The backward-data pass is itself such a convolution: dX = conv(dY, W′)
/// with W′[c, o] = W[o, c] rotated by 180°. The weight gradient has a direct kernel of
/// its own on AVX-512 CPUs (`weightGradient`); elsewhere `conv2dBackward`
/// (Ops/Convolution.swift) lowers it to a GEMM.
///
/// The engine packs the weights on every call: they change every step, and packing
/// costs one pass over them, far less than the convolution.
enum EngineConvolution {
    /// y = relu?(conv(x) + bias). x: [N, in, H, W], weight [out, in, 3, 3] → [N, out, H, W].
    static func forward(_ x: Tensor, weight: [Float], bias: [Float], shape: [Int], relu: Bool) -> Tensor {
        precondition(shape.count == 4 && shape[2] == 3 && shape[3] == 3 && x.c == shape[1],
                     "EngineConvolution.forward: input \(x.shape.shapeDescription), weight \(shape.shapeDescription)")
        let conv = Conv2d(weight: Tensor(shape: shape, data: weight), bias: Tensor(shape: [shape[0]], data: bias), padding: 1)
        return conv(x, activation: relu ? .relu : .identity)
    }

    /// Layers with more input × output channels than this lower their weight gradient to a
    /// GEMM even where the direct kernel runs. Measured on 2 threads (AVX-512 machine, 8
    /// images): the kernel 130–200 GFLOP/s at every trainer shape from 3 → 8 channels at
    /// 128² to 512 → 512 at 16²; OpenBLAS's GEMM, im2col not counted, 15–30 GFLOP/s at 8
    /// output channels, 40–70 at 16, 87–112 at 32 × 32, 127–182 at 64 × 64 and 225–250
    /// from 128 × 128 on (f2a-train bench --gemm-shapes).
    static let directWeightGradientMaxChannelProduct = 64 * 64

    /// Accumulates the weight gradient of a 3x3 conv (stride 1, padding 1) into dW
    /// ([out, in, 3, 3]) from its input x [N, in, H, W] and output gradient dy
    /// [N, out, H, W], with the direct kernel (CKernels/weight_grad.c). Returns false,
    /// leaving dW as it was, where that kernel does not run or would be slower (no
    /// AVX-512, wide layers, no memory for its two rows per thread): the caller then
    /// lowers to a GEMM.
    static func weightGradient(_ x: Tensor, dy: Tensor, into dW: UnsafeMutablePointer<Float>) -> Bool {
        guard x.c * dy.c <= directWeightGradientMaxChannelProduct else { return false }
        precondition(x.rank == 4 && dy.rank == 4 && x.n == dy.n && x.h == dy.h && x.w == dy.w,
                     "EngineConvolution.weightGradient: x \(x.shape.shapeDescription), dy \(dy.shape.shapeDescription)")
        let status = x.data.withUnsafeBufferPointer { xp in
            dy.data.withUnsafeBufferPointer { dp in
                f2a_conv3x3_weight_grad(xp.baseAddress!, dp.baseAddress!, Int32(x.n), Int32(x.c), Int32(dy.c),
                                        Int32(x.h), Int32(x.w), dW, Int32(Conv2d.threadCount))
            }
        }
        return status == 0
    }

    /// The gradient with respect to the first `channels` input channels of a 3x3 conv
    /// whose output gradient is dy: [N, out, H, W] → [N, channels, H, W].
    static func inputGradient(_ dy: Tensor, weight: [Float], shape: [Int], channels: Int) -> Tensor {
        let cout = shape[0], cin = shape[1]
        precondition(shape.count == 4 && shape[2] == 3 && shape[3] == 3 && dy.c == cout && (1...cin).contains(channels),
                     "EngineConvolution.inputGradient: dy \(dy.shape.shapeDescription), weight \(shape.shapeDescription)")
        var rotated = [Float](repeating: 0, count: channels * cout * 9)
        weight.withUnsafeBufferPointer { w in
            rotated.withUnsafeMutableBufferPointer { r in
                for c in 0..<channels {
                    for o in 0..<cout {
                        let src = w.baseAddress! + (o * cin + c) * 9, dst = r.baseAddress! + (c * cout + o) * 9
                        for k in 0..<9 { dst[k] = src[8 - k] }
                    }
                }
            }
        }
        let conv = Conv2d(weight: Tensor(shape: [channels, cout, 3, 3], data: rotated),
                          bias: Tensor(zeros: [channels]), padding: 1)
        return conv(dy)
    }
}
