import F2ACore

/// The trainer's 3x3 convolutions (stride 1, padding 1) on the inference engine's
/// kernels (Winograd F(4x4, 3x3) with AVX2/FMA, im2col + BLAS otherwise), which run
/// the narrow layers of small models several times faster than the trainer's im2col
/// + sgemm. The backward-data pass is itself such a convolution: dX = conv(dY, W′)
/// with W′[c, o] = W[o, c] rotated by 180°. The weight gradient stays in
/// `conv2dBackward` (Ops/Convolution.swift), which has no engine counterpart.
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
