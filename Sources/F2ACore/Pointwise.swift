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

/// Interleaved RGB rows → planes [1, 3, rows.count, columns.count]:
/// value c of pixel (y, x) is `base[rows[y] · rowStride + 3 · columns[x] + c]`
/// clamped to [0, 1] (NaN → 0), on the thread pool.
public func planarRGB(_ base: UnsafePointer<Float>, rowStride: Int, rows: [Int32], columns: [Int32]) -> Tensor {
    Tensor(shape: [1, 3, rows.count, columns.count]) { out in
        f2a_planar_rgb(base, rowStride, rows, Int32(rows.count), columns, Int32(columns.count), out.baseAddress!,
                       Int32(Conv2d.threadCount))
    }
}

/// out = clamp(f + strength · (g − f), 0, 1) for every value of a
/// width x height interleaved RGB image, f the input clamped like
/// `planarRGB`, g the pixel (top + y, left + x) of `planes` [1, 3, H, W].
/// `output` may alias `input` with the same stride. Strides in floats.
public func blendRGB(_ input: UnsafePointer<Float>, rowStride: Int, planes: Tensor, top: Int, left: Int,
                     width: Int, height: Int, strength: Float,
                     into output: UnsafeMutablePointer<Float>, outputRowStride: Int) {
    precondition(planes.rank == 4 && planes.c == 3 && top + height <= planes.h && left + width <= planes.w)
    planes.data.withUnsafeBufferPointer { g in
        f2a_blend_rgb(input, rowStride, g.baseAddress!, Int32(planes.h), Int32(planes.w), Int32(top), Int32(left),
                      Int32(width), Int32(height), strength, output, outputRowStride, Int32(Conv2d.threadCount))
    }
}
