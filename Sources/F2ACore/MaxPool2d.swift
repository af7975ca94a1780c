import CKernels

/// 2x2 max pooling with stride 2, returning the argmax of every window as a
/// flat index into its input plane (PyTorch's `return_indices` convention),
/// which `maxUnpool2d` consumes. Odd trailing rows/columns are dropped.
public func maxPool2d(_ x: Tensor) -> (output: Tensor, indices: [Int32]) {
    precondition(x.rank == 4, "maxPool2d expects NCHW, got \(x.shape.shapeDescription)")
    let oh = x.h / 2, ow = x.w / 2, planes = x.n * x.c
    let w = x.w, inPlane = x.h * x.w, outPlane = oh * ow
    var indices = [Int32](unsafeUninitializedCapacity: planes * outPlane) { _, n in n = planes * outPlane }
    // Every output and index is written; the planes are shared out on the thread pool. The
    // comparisons are selects: as branches on the data they were mispredicted about half
    // the time.
    let y = Tensor(shape: [x.n, x.c, oh, ow]) { yp in
        x.data.withUnsafeBufferPointer { xp in
            indices.withUnsafeMutableBufferPointer { ip in
                let xs = xp.baseAddress!, ys = yp.baseAddress!, idx = ip.baseAddress!
                parallelChunks(planes, work: planes * inPlane) { range in
                    for p in range {
                        let src = xs + p * inPlane
                        for oy in 0..<oh {
                            for ox in 0..<ow {
                                // First maximum wins, in row-major window order (NaN never wins).
                                let top = (2 * oy) * w + 2 * ox, below = top + w
                                var best = top, value = src[top]
                                @inline(__always) func consider(_ at: Int) {
                                    let v = src[at], wins = v > value
                                    value = wins ? v : value
                                    best = wins ? at : best
                                }
                                consider(top + 1); consider(below); consider(below + 1)
                                let o = p * outPlane + oy * ow + ox
                                ys[o] = value
                                idx[o] = Int32(best)
                            }
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
