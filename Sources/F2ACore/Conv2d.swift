/// 2-D convolution, square kernel, zero padding, stride, bias.
///
/// Parameters are named as in the checkpoint: `weight` [out, in, k, k] and
/// `bias` [out]. The forward pass lowers a band of output rows at a time to
/// a column matrix (im2col) and multiplies it with the weight matrix through
/// BLAS, so the scratch memory stays bounded whatever the image size.
public struct Conv2d: Sendable {
    public var weight: Tensor
    public var bias: Tensor
    public let stride: Int
    public let padding: Int

    public var inChannels: Int { weight.shape[1] }
    public var outChannels: Int { weight.shape[0] }
    public var kernelSize: Int { weight.shape[2] }

    public init(inChannels: Int, outChannels: Int, kernelSize: Int,
                stride: Int = 1, padding: Int = 0) {
        self.weight = Tensor(zeros: [outChannels, inChannels, kernelSize, kernelSize])
        self.bias = Tensor(zeros: [outChannels])
        self.stride = stride
        self.padding = padding
    }

    /// Output spatial size for an input extent.
    public func outputSize(_ inputSize: Int) -> Int {
        (inputSize + 2 * padding - kernelSize) / stride + 1
    }

    /// Scratch budget of the column matrix, in floats (16 MiB).
    static let columnBudget = 4 << 20

    /// y = activation(conv(x) + bias). x: [N, in, H, W] → [N, out, H', W'].
    public func callAsFunction(_ x: Tensor, activation: Activation = .identity) -> Tensor {
        precondition(x.rank == 4 && x.c == inChannels,
                     "Conv2d expects [N, \(inChannels), H, W], got \(x.shape.shapeDescription)")
        let oh = outputSize(x.h), ow = outputSize(x.w)
        var y = Tensor(zeros: [x.n, outChannels, max(oh, 0), max(ow, 0)])
        guard oh > 0, ow > 0 else { return y }
        let k = kernelSize
        let kk = inChannels * k * k
        let pointwise = k == 1 && stride == 1 && padding == 0
        let bandRows = max(1, min(oh, Conv2d.columnBudget / max(1, kk * ow)))
        var column = [Float](repeating: 0, count: pointwise ? 0 : kk * bandRows * ow)
        let inPlane = x.c * x.h * x.w, outPlane = outChannels * oh * ow
        x.data.withUnsafeBufferPointer { xp in
            weight.data.withUnsafeBufferPointer { wp in
                y.data.withUnsafeMutableBufferPointer { yp in
                    column.withUnsafeMutableBufferPointer { cp in
                        for b in 0..<x.n {
                            let src = xp.baseAddress! + b * inPlane
                            let dst = yp.baseAddress! + b * outPlane
                            if pointwise {
                                sgemm(m: outChannels, n: oh * ow, k: kk,
                                      a: wp.baseAddress!, lda: kk, b: src, ldb: oh * ow,
                                      c: dst, ldc: oh * ow)
                                continue
                            }
                            var y0 = 0
                            while y0 < oh {
                                let rows = min(bandRows, oh - y0)
                                im2col(src, channels: x.c, height: x.h, width: x.w,
                                       kernel: k, stride: stride, padding: padding,
                                       outRows: y0..<(y0 + rows), outWidth: ow,
                                       into: cp.baseAddress!)
                                sgemm(m: outChannels, n: rows * ow, k: kk,
                                      a: wp.baseAddress!, lda: kk,
                                      b: cp.baseAddress!, ldb: rows * ow,
                                      c: dst + y0 * ow, ldc: oh * ow)
                                y0 += rows
                            }
                        }
                    }
                }
            }
        }
        addBias(&y, bias, activation: activation)
        return y
    }
}

/// Lowers output rows `outRows` of a convolution to a column matrix of shape
/// [channels*kernel*kernel, rows*outWidth] (row-major), zero where the
/// receptive field falls into the padding.
@inline(__always)
func im2col(_ src: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
            kernel: Int, stride: Int, padding: Int,
            outRows: Range<Int>, outWidth: Int,
            into col: UnsafeMutablePointer<Float>) {
    let n = outRows.count * outWidth
    var row = col
    for c in 0..<channels {
        let plane = src + c * height * width
        for ky in 0..<kernel {
            for kx in 0..<kernel {
                var out = row
                for oy in outRows {
                    let iy = oy * stride - padding + ky
                    if iy < 0 || iy >= height {
                        out.update(repeating: 0, count: outWidth)
                    } else {
                        let line = plane + iy * width
                        if stride == 1 {
                            // Contiguous run: zeros, a copy, zeros.
                            let shift = kx - padding
                            let lo = max(0, -shift), hi = min(outWidth, width - shift)
                            if lo > 0 { out.update(repeating: 0, count: min(lo, outWidth)) }
                            if hi > lo { (out + lo).update(from: line + lo + shift, count: hi - lo) }
                            if hi < outWidth { (out + max(hi, 0)).update(repeating: 0, count: outWidth - max(hi, 0)) }
                        } else {
                            for ox in 0..<outWidth {
                                let ix = ox * stride - padding + kx
                                out[ox] = (ix >= 0 && ix < width) ? line[ix] : 0
                            }
                        }
                    }
                    out += outWidth
                }
                row += n
            }
        }
    }
}

/// y[n, c, ...] = activation(y[n, c, ...] + bias[c]) in one pass.
public func addBias(_ y: inout Tensor, _ bias: Tensor, activation: Activation) {
    let channels = y.c, plane = y.h * y.w, batch = y.n
    bias.data.withUnsafeBufferPointer { bp in
        y.data.withUnsafeMutableBufferPointer { yp in
            for b in 0..<batch {
                for c in 0..<channels {
                    let v = bp[c]
                    let p = UnsafeMutableBufferPointer(rebasing: yp[((b * channels + c) * plane)..<((b * channels + c + 1) * plane)])
                    switch activation {
                    case .relu: for i in p.indices { p[i] = max(p[i] + v, 0) }
                    default:
                        for i in p.indices { p[i] += v }
                        activation.apply(p)
                    }
                }
            }
        }
    }
}
