import CKernels

/// Transposed convolution with kernel 2 and stride 2 (exact 2x upsampling,
/// no overlap), as used by the U-Net decoder.
///
/// `weight` is [in, out, 2, 2] (PyTorch layout), `bias` is [out]. Because the
/// output windows do not overlap, the layer is one GEMM
/// [out*4, in] x [in, H*W] followed by a scatter into the 2x grid: with
/// AVX2/FMA CKernels' `f2a_convT2x2` (GEMM, scatter, bias and ReLU fused per
/// block of pixels, on the thread pool), otherwise `convTranspose2x2BLAS`.
public struct ConvTranspose2d: Sendable {
    public let weight: Tensor
    public let bias: Tensor
    /// Weights in `f2a_convT2x2`'s layout; empty without AVX2/FMA.
    let packed: [Float]

    public var inChannels: Int { weight.shape[0] }
    public var outChannels: Int { weight.shape[1] }

    /// The only initialiser: the layer is immutable and packed here once.
    /// `weight` [in, out, 2, 2], `bias` [out].
    public init(weight: Tensor, bias: Tensor) {
        precondition(weight.rank == 4 && weight.shape[2] == 2 && weight.shape[3] == 2 && bias.shape == [weight.shape[1]],
                     "ConvTranspose2d: weight \(weight.shape.shapeDescription) and bias \(bias.shape.shapeDescription) "
                        + "are not [in, out, 2, 2] and [out]")
        self.weight = weight
        self.bias = bias
        let count = Self.packedCount(weightShape: weight.shape)
        guard count > 0 else { packed = []; return }
        let (cin, cout) = (Int32(weight.shape[0]), Int32(weight.shape[1]))
        packed = [Float](unsafeUninitializedCapacity: count) { p, n in
            weight.data.withUnsafeBufferPointer { f2a_convT2x2_pack($0.baseAddress!, cin, cout, p.baseAddress!) }
            n = count
        }
    }

    /// Floats the initialiser packs for a weight of this shape (0: not packed), so that a
    /// loader can find out before the allocation whether it can be made.
    public static func packedCount(weightShape shape: [Int]) -> Int {
        guard simdKernelsAvailable, shape.count == 4, shape[2] == 2, shape[3] == 2 else { return 0 }
        return f2a_convT2x2_packed_count(Int32(shape[0]), Int32(shape[1]))
    }

    /// x: [N, in, H, W] → [N, out, 2H, 2W].
    public func callAsFunction(_ x: Tensor, activation: Activation = .identity) -> Tensor {
        precondition(x.rank == 4 && x.c == inChannels,
                     "ConvTranspose2d expects [N, \(inChannels), H, W], got \(x.shape.shapeDescription)")
        let h = x.h, w = x.w, hw = h * w, oc = outChannels
        if !packed.isEmpty && (activation == .relu || activation == .identity) {
            return Tensor(shape: [x.n, oc, 2 * h, 2 * w]) { yp in
                x.data.withUnsafeBufferPointer { xp in
                    for b in 0..<x.n {
                        let status = f2a_convT2x2(xp.baseAddress! + b * inChannels * hw, Int32(inChannels), Int32(h), Int32(w),
                                                  packed, bias.data, Int32(oc), activation == .relu ? 1 : 0,
                                                  yp.baseAddress! + b * oc * 4 * hw, Int32(Conv2d.threadCount))
                        precondition(status == 0, "ConvTranspose2d: out of memory for the kernel's workspace")
                    }
                }
            }
        }
        var y = Tensor(shape: [x.n, oc, 2 * h, 2 * w]) { yp in
            x.data.withUnsafeBufferPointer { xp in
                weight.data.withUnsafeBufferPointer { wp in
                    bias.data.withUnsafeBufferPointer { bp in
                        convTranspose2x2BLAS(xp.baseAddress!, batch: x.n, inChannels: inChannels, height: h, width: w,
                                             weight: wp.baseAddress!, bias: bp.baseAddress!, outChannels: oc,
                                             into: yp.baseAddress!)
                    }
                }
            }
        }
        activation.apply(&y)
        return y
    }
}

/// y = convT2x2(x) + bias, stride 2, by BLAS: per image one GEMM
/// [out·4, H·W] = weightᵀ · x, then `convTranspose2x2Scatter`. The layer's path
/// without AVX2/FMA.
/// x: [batch, in, H, W], weight [in, out, 2, 2], y: [batch, out, 2H, 2W], fully written.
package func convTranspose2x2BLAS(_ x: UnsafePointer<Float>, batch: Int, inChannels cin: Int, height h: Int, width w: Int,
                                  weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, outChannels oc: Int,
                                  into y: UnsafeMutablePointer<Float>) {
    let hw = h * w
    var tmp = [Float](repeating: 0, count: oc * 4 * hw)
    tmp.withUnsafeMutableBufferPointer { tp in
        for b in 0..<batch {
            sgemm(transA: true, m: oc * 4, n: hw, k: cin, a: weight, lda: oc * 4,
                  b: x + b * cin * hw, ldb: hw, c: tp.baseAddress!, ldc: hw)
            convTranspose2x2Scatter(tp.baseAddress!, channels: oc, height: h, width: w, bias: bias,
                                    into: y + b * oc * 4 * hw)
        }
    }
}

/// The 2x2 stride-2 layout, forwards: plane (o·4 + 2·dy + dx) of `t` ([out·4, H, W],
/// a GEMM's output) is the (dy, dx) phase of output channel o, so
/// y[o, 2iy + dy, 2ix + dx] = t[o·4 + 2dy + dx, iy, ix] + bias[o]. y: [out, 2H, 2W].
@inline(__always)
package func convTranspose2x2Scatter(_ t: UnsafePointer<Float>, channels oc: Int, height h: Int, width w: Int,
                                     bias: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
    let hw = h * w
    for o in 0..<oc {
        let plane = y + o * 4 * hw
        let bv = bias[o]
        for d in 0..<4 {
            let dy = d >> 1, dx = d & 1
            let phase = t + (o * 4 + d) * hw
            for iy in 0..<h {
                let row = plane + (2 * iy + dy) * 2 * w + dx
                let trow = phase + iy * w
                for ix in 0..<w { row[2 * ix] = trow[ix] + bv }
            }
        }
    }
}

/// The adjoint of `convTranspose2x2Scatter` (the backward pass) without the bias:
/// t[o·4 + 2dy + dx, iy, ix] = dy[o, 2iy + dy, 2ix + dx], or 0 where `gate` (the layer's
/// ReLU output, dy's layout) is not positive (`Activation.reluGate`).
@inline(__always)
package func convTranspose2x2Gather(_ dy: UnsafePointer<Float>, channels oc: Int, height h: Int, width w: Int,
                                    gate: UnsafePointer<Float>? = nil, into t: UnsafeMutablePointer<Float>) {
    let hw = h * w
    for o in 0..<oc {
        for d in 0..<4 {
            let ddy = d >> 1, ddx = d & 1
            let phase = t + (o * 4 + d) * hw
            for iy in 0..<h {
                let at = o * 4 * hw + (2 * iy + ddy) * 2 * w + ddx
                let row = dy + at, trow = phase + iy * w
                if let gate {
                    let grow = gate + at
                    for ix in 0..<w { let v = row[2 * ix]; trow[ix] = grow[2 * ix] > 0 ? v : 0 }
                } else {
                    for ix in 0..<w { trow[ix] = row[2 * ix] }
                }
            }
        }
    }
}
