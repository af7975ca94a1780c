#if canImport(Glibc)
import Glibc
#endif
import F2ACore

// MARK: Transposed convolution 2x2 stride 2

/// y = convT(x) + bias; weight [in, out, 2, 2]. Same GEMM and scatter as
/// F2ACore.ConvTranspose2d, so the result is identical.
public func convTranspose2x2Forward(_ x: Tensor, weight: [Float], bias: [Float], outChannels oc: Int) -> Tensor {
    let cin = x.c, h = x.h, w = x.w, hw = h * w
    precondition(weight.count == cin * oc * 4 && bias.count == oc)
    var y = Tensor(zeros: [x.n, oc, 2 * h, 2 * w])
    var tmp = [Float](repeating: 0, count: oc * 4 * hw)
    x.data.withUnsafeBufferPointer { xp in
        weight.withUnsafeBufferPointer { wp in
            y.data.withUnsafeMutableBufferPointer { yp in
                tmp.withUnsafeMutableBufferPointer { tp in
                    for b in 0..<x.n {
                        sgemm(transA: true, m: oc * 4, n: hw, k: cin, a: wp.baseAddress!, lda: oc * 4,
                              b: xp.baseAddress! + b * cin * hw, ldb: hw, c: tp.baseAddress!, ldc: hw)
                        let out = yp.baseAddress! + b * oc * 4 * hw
                        for o in 0..<oc {
                            let plane = out + o * 4 * hw
                            let bv = bias[o]
                            for d in 0..<4 {
                                let dy = d >> 1, dx = d & 1
                                let t = tp.baseAddress! + (o * 4 + d) * hw
                                for iy in 0..<h {
                                    let row = plane + (2 * iy + dy) * 2 * w + dx
                                    let trow = t + iy * w
                                    for ix in 0..<w { row[2 * ix] = trow[ix] + bv }
                                }
                            }
                        }
                    }
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
                            let src = dyp.baseAddress! + b * oc * 4 * hw
                            for o in 0..<oc {
                                let plane = src + o * 4 * hw
                                var s: Float = 0
                                for d in 0..<4 {
                                    let ddy = d >> 1, ddx = d & 1
                                    let t = tp.baseAddress! + (o * 4 + d) * hw
                                    for iy in 0..<h {
                                        let row = plane + (2 * iy + ddy) * 2 * w + ddx
                                        let trow = t + iy * w
                                        for ix in 0..<w { let v = row[2 * ix]; trow[ix] = v; s += v }
                                    }
                                }
                                dB[o] += s
                            }
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
