import CKernels

/// 2x2 max pooling with stride 2, returning the argmax of every window as a
/// flat index into its input plane (PyTorch's `return_indices` convention),
/// which `maxUnpool2d` consumes. Odd trailing rows/columns are dropped.
public func maxPool2d(_ x: Tensor) -> (output: Tensor, indices: [Int32]) {
    precondition(x.rank == 4, "maxPool2d expects NCHW, got \(x.shape.shapeDescription)")
    let oh = x.h / 2, ow = x.w / 2, planes = x.n * x.c
    var y = Tensor(zeros: [x.n, x.c, oh, ow])
    var indices = [Int32](repeating: 0, count: y.count)
    let w = x.w, inPlane = x.h * x.w, outPlane = oh * ow
    x.data.withUnsafeBufferPointer { xp in
        y.data.withUnsafeMutableBufferPointer { yp in
            indices.withUnsafeMutableBufferPointer { ip in
                for p in 0..<planes {
                    let src = xp.baseAddress! + p * inPlane
                    for oy in 0..<oh {
                        for ox in 0..<ow {
                            var best = (2 * oy) * w + 2 * ox
                            var value = src[best]
                            // First maximum wins, in row-major window order.
                            if src[best + 1] > value { value = src[best + 1]; best += 1 }
                            let below = (2 * oy + 1) * w + 2 * ox
                            if src[below] > value { value = src[below]; best = below }
                            if src[below + 1] > value { value = src[below + 1]; best = below + 1 }
                            let o = p * outPlane + oy * ow + ox
                            yp[o] = value
                            ip[o] = Int32(best)
                        }
                    }
                }
            }
        }
    }
    return (y, indices)
}

/// Inverse of `maxPool2d`: places each value at its recorded argmax in a
/// zero plane of size `height` x `width`. x: [N, C, h, w], indices as returned
/// by the pooling of a [N, C, height, width] tensor.
public func maxUnpool2d(_ x: Tensor, indices: [Int32], height: Int, width: Int) -> Tensor {
    precondition(indices.count == x.count, "maxUnpool2d: \(indices.count) indices for \(x.count) values")
    var y = Tensor(zeros: [x.n, x.c, height, width])
    let inPlane = x.h * x.w, outPlane = height * width
    x.data.withUnsafeBufferPointer { xp in
        y.data.withUnsafeMutableBufferPointer { yp in
            indices.withUnsafeBufferPointer { ip in
                for p in 0..<(x.n * x.c) {
                    for i in 0..<inPlane {
                        let idx = Int(ip[p * inPlane + i])
                        precondition(idx >= 0 && idx < outPlane, "maxUnpool2d: index \(idx) out of plane")
                        yp[p * outPlane + idx] = xp[p * inPlane + i]
                    }
                }
            }
        }
    }
    return y
}

/// 2x2 max pooling with stride 2 without the argmax indices (which only
/// `maxUnpool2d` needs): vectorised on the thread pool with AVX2/FMA.
public func maxPool2dValues(_ x: Tensor) -> Tensor {
    guard simdKernelsAvailable else { return maxPool2d(x).output }
    precondition(x.rank == 4, "maxPool2dValues expects NCHW, got \(x.shape.shapeDescription)")
    return Tensor(shape: [x.n, x.c, x.h / 2, x.w / 2]) { yp in
        x.data.withUnsafeBufferPointer {
            f2a_maxpool2x2($0.baseAddress!, Int32(x.n * x.c), Int32(x.h), Int32(x.w), yp.baseAddress!,
                           Int32(Conv2d.threadCount))
        }
    }
}
