#if canImport(Glibc)
import Glibc
#endif
import F2ACore

// MARK: Transposed convolution 2x2 stride 2

/// y = convT(x) + bias; weight [in, out, 2, 2]. F2ACore.ConvTranspose2d's BLAS path
/// itself, so the trainer and the library without AVX2/FMA compute alike.
public func convTranspose2x2Forward(_ x: Tensor, weight: [Float], bias: [Float], outChannels oc: Int) -> Tensor {
    let cin = x.c, h = x.h, w = x.w
    precondition(weight.count == cin * oc * 4 && bias.count == oc)
    var y = Tensor(zeros: [x.n, oc, 2 * h, 2 * w])
    x.data.withUnsafeBufferPointer { xp in
        weight.withUnsafeBufferPointer { wp in
            bias.withUnsafeBufferPointer { bp in
                y.data.withUnsafeMutableBufferPointer { yp in
                    convTranspose2x2BLAS(xp.baseAddress!, batch: x.n, inChannels: cin, height: h, width: w,
                                         weight: wp.baseAddress!, bias: bp.baseAddress!, outChannels: oc,
                                         into: yp.baseAddress!)
                }
            }
        }
    }
    return y
}

public func convTranspose2x2Backward(_ x: Tensor, dy: Tensor, weight: [Float], outChannels oc: Int,
                                     dW: UnsafeMutablePointer<Float>, dB: UnsafeMutablePointer<Float>) -> Tensor {
    let cin = x.c, h = x.h, w = x.w, hw = h * w
    precondition(dy.shape == [x.n, oc, 2 * h, 2 * w])
    var dx = Tensor(zeros: x.shape)
    var tmp = [Float](repeating: 0, count: oc * 4 * hw)
    x.data.withUnsafeBufferPointer { xp in
        dy.data.withUnsafeBufferPointer { dyp in
            weight.withUnsafeBufferPointer { wp in
                dx.data.withUnsafeMutableBufferPointer { dxp in
                    tmp.withUnsafeMutableBufferPointer { tp in
                        for b in 0..<x.n {
                            convTranspose2x2Gather(dyp.baseAddress! + b * oc * 4 * hw, channels: oc, height: h, width: w,
                                                   into: tp.baseAddress!, sums: dB)
                            // dW[cin, oc*4] += x[cin, hw] · tmpᵀ
                            sgemm(transB: true, m: cin, n: oc * 4, k: hw, a: xp.baseAddress! + b * cin * hw, lda: hw,
                                  b: tp.baseAddress!, ldb: hw, beta: 1, c: dW, ldc: oc * 4)
                            // dx[cin, hw] = W[cin, oc*4] · tmp
                            sgemm(m: cin, n: hw, k: oc * 4, a: wp.baseAddress!, lda: oc * 4, b: tp.baseAddress!, ldb: hw,
                                  c: dxp.baseAddress! + b * cin * hw, ldc: hw)
                        }
                    }
                }
            }
        }
    }
    return dx
}
