import CKernels
import F2ACore

/// 4x4 stride-1 convolutions to a single output channel (the PatchGAN's logits layer) on
/// CKernels' direct kernel (conv4x4_single.c): one output row of 16 lanes per input channel
/// and row of taps, read in place, where im2col + GEMM wrote a column matrix 16 times the
/// input (12.8 MB for a 16-image discriminator update) for a GEMM of one row, 35-46
/// GFLOP/s. Where the kernel does not run (no AVX-512) `applies` is false and the caller
/// lowers to a GEMM.
enum SingleChannelConvolution {
    static func applies(_ g: ConvGeometry) -> Bool {
        g.kernel == 4 && g.stride == 1 && g.outChannels == 1 && f2a_kernels_avx512() != 0
    }

    /// y = conv(x) + bias. x: [N, in, H, W] → [N, 1, H + 2·padding − 3, W + 2·padding − 3].
    static func forward(_ x: Tensor, weight: [Float], bias: [Float], _ g: ConvGeometry) -> Tensor {
        precondition(applies(g) && x.c == g.inChannels && weight.count == g.inChannels * 16 && bias.count == 1,
                     "SingleChannelConvolution.forward: x \(x.shape.shapeDescription), weight \(weight.count)")
        return Tensor(shape: [x.n, 1, g.outSize(x.h), g.outSize(x.w)]) { yp in
            let status = f2a_conv4x4_single(x.data, Int32(x.n), Int32(x.c), Int32(x.h), Int32(x.w), Int32(g.padding), weight,
                                            bias[0], yp.baseAddress!, Int32(Conv2d.threadCount))
            precondition(status == 0, "f2a_conv4x4_single declined where it runs")
        }
    }

    /// Backward of `forward`: accumulates dW and dB (if given) and returns the gradient of the
    /// whole input if `inputGradient`, else nil.
    static func backward(_ x: Tensor, dy: Tensor, weight: [Float], _ g: ConvGeometry, dW: UnsafeMutablePointer<Float>?,
                         dB: UnsafeMutablePointer<Float>?, inputGradient: Bool) -> Tensor? {
        precondition(applies(g) && dy.shape == [x.n, 1, g.outSize(x.h), g.outSize(x.w)] && weight.count == g.inChannels * 16,
                     "SingleChannelConvolution.backward: x \(x.shape.shapeDescription), dy \(dy.shape.shapeDescription)")
        func run(_ dx: UnsafeMutablePointer<Float>?) {
            let status = f2a_conv4x4_single_backward(x.data, Int32(x.n), Int32(x.c), Int32(x.h), Int32(x.w), Int32(g.padding),
                                                     weight, dy.data, dx, dW, dB, Int32(Conv2d.threadCount))
            precondition(status == 0, "f2a_conv4x4_single_backward declined where it runs")
        }
        guard inputGradient else { run(nil); return nil }
        return Tensor(shape: x.shape) { run($0.baseAddress!) }
    }
}
