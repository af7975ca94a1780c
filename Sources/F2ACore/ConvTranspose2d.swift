/// Transposed convolution with kernel 2 and stride 2 (exact 2x upsampling,
/// no overlap), as used by the U-Net decoder.
///
/// `weight` is [in, out, 2, 2] (PyTorch layout), `bias` is [out]. Because the
/// output windows do not overlap, the layer is one GEMM
/// [out*4, in] x [in, H*W] followed by a scatter into the 2x grid.
public struct ConvTranspose2d: Sendable {
    public var weight: Tensor
    public var bias: Tensor

    public var inChannels: Int { weight.shape[0] }
    public var outChannels: Int { weight.shape[1] }

    public init(inChannels: Int, outChannels: Int) {
        weight = Tensor(zeros: [inChannels, outChannels, 2, 2])
        bias = Tensor(zeros: [outChannels])
    }

    /// x: [N, in, H, W] → [N, out, 2H, 2W].
    public func callAsFunction(_ x: Tensor, activation: Activation = .identity) -> Tensor {
        precondition(x.rank == 4 && x.c == inChannels,
                     "ConvTranspose2d expects [N, \(inChannels), H, W], got \(x.shape.shapeDescription)")
        let h = x.h, w = x.w, hw = h * w, oc = outChannels
        var y = Tensor(zeros: [x.n, oc, 2 * h, 2 * w])
        var tmp = [Float](repeating: 0, count: oc * 4 * hw)
        x.data.withUnsafeBufferPointer { xp in
            weight.data.withUnsafeBufferPointer { wp in
                y.data.withUnsafeMutableBufferPointer { yp in
                    tmp.withUnsafeMutableBufferPointer { tp in
                        for b in 0..<x.n {
                            sgemm(transA: true, m: oc * 4, n: hw, k: inChannels,
                                  a: wp.baseAddress!, lda: oc * 4,
                                  b: xp.baseAddress! + b * inChannels * hw, ldb: hw,
                                  c: tp.baseAddress!, ldc: hw)
                            let out = yp.baseAddress! + b * oc * 4 * hw
                            for o in 0..<oc {
                                let plane = out + o * 4 * hw
                                for d in 0..<4 {
                                    let dy = d >> 1, dx = d & 1
                                    let t = tp.baseAddress! + (o * 4 + d) * hw
                                    for iy in 0..<h {
                                        let row = plane + (2 * iy + dy) * 2 * w + dx
                                        let trow = t + iy * w
                                        for ix in 0..<w { row[2 * ix] = trow[ix] }
                                    }
                                }
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
