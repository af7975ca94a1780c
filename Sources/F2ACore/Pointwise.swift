import CKernels

/// y = scale · x + shift elementwise (on the thread pool with AVX2/FMA).
public func affine(_ x: Tensor, scale: Float, shift: Float) -> Tensor {
    guard simdKernelsAvailable else {
        var y = x
        y.data.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = scale * p[i] + shift } }
        return y
    }
    return Tensor(shape: x.shape) { yp in
        x.data.withUnsafeBufferPointer {
            f2a_affine($0.baseAddress!, x.count, scale, shift, yp.baseAddress!, Int32(Conv2d.threadCount))
        }
    }
}

extension Conv2d {
    /// The network's output head in one pass on the thread pool: this 1x1
    /// convolution, `activation`, then, given `ratioLogFlash` (the output's
    /// shape), the ratio-log decode clamp((F + 1)·2^(2y − 1) − 1, 0, 1) against
    /// it. nil where the kernel does not apply (not a 1x1 convolution with
    /// stride 1 and no padding, or a CPU without AVX2/FMA): the caller then
    /// takes the general path.
    public func head(_ x: Tensor, activation: Activation, ratioLogFlash flash: Tensor?) -> Tensor? {
        guard simdKernelsAvailable, kernelSize == 1, stride == 1, padding == 0 else { return nil }
        precondition(x.rank == 4 && x.c == inChannels,
                     "Conv2d expects [N, \(inChannels), H, W], got \(x.shape.shapeDescription)")
        let shape = [x.n, outChannels, x.h, x.w], hw = x.h * x.w
        precondition(flash.map { $0.shape == shape } ?? true, "head: flash must have the output's shape \(shape)")
        let act: Int32 = switch activation {
        case .identity: Int32(F2A_ACT_IDENTITY)
        case .relu: Int32(F2A_ACT_RELU)
        case .sigmoid: Int32(F2A_ACT_SIGMOID)
        case .tanh: Int32(F2A_ACT_TANH)
        }
        return Tensor(shape: shape) { yp in
            x.data.withUnsafeBufferPointer { xp in
                weight.data.withUnsafeBufferPointer { wp in
                    bias.data.withUnsafeBufferPointer { bp in
                        for b in 0..<x.n {
                            let run = { (f: UnsafePointer<Float>?) in
                                f2a_conv1x1(xp.baseAddress! + b * inChannels * hw, Int32(inChannels), hw, wp.baseAddress!,
                                            bp.baseAddress!, Int32(outChannels), act, f,
                                            yp.baseAddress! + b * outChannels * hw, Int32(Conv2d.threadCount))
                            }
                            if let flash {
                                flash.data.withUnsafeBufferPointer { run($0.baseAddress! + b * outChannels * hw) }
                            } else {
                                run(nil)
                            }
                        }
                    }
                }
            }
        }
    }
}
