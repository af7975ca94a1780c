#if canImport(Glibc)
import Glibc
#endif
import F2ACore

// MARK: Transposed convolution 2x2 stride 2

/// y = convT(x) + bias, and ReLU if `relu`; weight [in, out, 2, 2]. F2ACore's
/// ConvTranspose2d: the inference engine's kernel (GEMM, scatter, bias and ReLU fused, on
/// the thread pool) where the CPU runs it, as in the exported model's forward pass;
/// packing the weights, which change every step, is one pass over them.
public func convTranspose2x2Forward(_ x: Tensor, weight: [Float], bias: [Float], outChannels oc: Int,
                                    relu: Bool = false) -> Tensor {
    precondition(weight.count == x.c * oc * 4 && bias.count == oc)
    let layer = ConvTranspose2d(weight: Tensor(shape: [x.c, oc, 2, 2], data: weight), bias: Tensor(shape: [oc], data: bias))
    return layer(x, activation: relu ? .relu : .identity)
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
