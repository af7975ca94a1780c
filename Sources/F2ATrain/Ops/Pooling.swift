#if canImport(Glibc)
import Glibc
#endif
import F2ACore

// MARK: Pooling

/// Gradient of `maxPool2d`: each output gradient goes to its argmax (the windows do not
/// overlap). With `adding`, plus channels `from ..< from + dy.c` of `adding`
/// ([N, ≥ from + dy.c, H, W]): the skip's gradient, read in place from the input gradient
/// of the decoder conv that took [upsampled, skip]. With `gate` (the pooled input, a ReLU
/// output), taken through that ReLU too, plane by plane while it is in cache. One pass,
/// where a split copy, a zero fill, the scatter, an add and the ReLU's gradient were five.
public func maxPoolBackward(_ dy: Tensor, indices: [Int32], inputHeight h: Int, inputWidth w: Int,
                            adding base: Tensor? = nil, from: Int = 0, gate: Tensor? = nil) -> Tensor {
    precondition(indices.count == dy.count, "maxPoolBackward: \(indices.count) indices for \(dy.count) values")
    precondition(base.map { $0.n == dy.n && $0.h == h && $0.w == w && from >= 0 && from + dy.c <= $0.c } ?? true,
                 "maxPoolBackward: channels \(from)..<\(from + dy.c) of \(base?.shape.shapeDescription ?? "")")
    precondition(gate.map { $0.shape == [dy.n, dy.c, h, w] } ?? true,
                 "maxPoolBackward: gate \(gate?.shape.shapeDescription ?? "") for [\(dy.n), \(dy.c), \(h), \(w)]")
    let inPlane = dy.h * dy.w, outPlane = h * w, planes = dy.n * dy.c, baseChannels = base?.c ?? 0
    return Tensor(shape: [dy.n, dy.c, h, w]) { out in
        dy.data.withUnsafeBufferPointer { db in
            indices.withUnsafeBufferPointer { ib in
                (base ?? dy).data.withUnsafeBufferPointer { bb in
                    (gate ?? dy).data.withUnsafeBufferPointer { gb in
                        let d = db.baseAddress!, ip = ib.baseAddress!, bp = bb.baseAddress!, o = out.baseAddress!
                        let gp = gb.baseAddress!
                        parallelChunks(planes, work: planes * outPlane) { range in
                            for p in range {
                                let plane = o + p * outPlane
                                if base != nil {
                                    let (b, c) = p.quotientAndRemainder(dividingBy: dy.c)
                                    plane.update(from: bp + (b * baseChannels + from + c) * outPlane, count: outPlane)
                                } else {
                                    plane.update(repeating: 0, count: outPlane)
                                }
                                for i in 0..<inPlane {
                                    let idx = Int(ip[p * inPlane + i])
                                    precondition(idx >= 0 && idx < outPlane, "maxPoolBackward: index \(idx) out of plane")
                                    plane[idx] += d[p * inPlane + i]
                                }
                                if gate != nil { Activation.reluGate(plane, by: gp + p * outPlane, count: outPlane) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Gradient of `maxUnpool2d`: gathers the gradient at every recorded index. The unpooled
/// channels (as many as `indices` has planes) are the first of `dy`'s, which may have
/// more: the input gradient of a decoder conv that read [unpooled, skip], read in place.
public func maxUnpoolBackward(_ dy: Tensor, indices: [Int32], pooledHeight: Int, pooledWidth: Int) -> Tensor {
    let inPlane = pooledHeight * pooledWidth, outPlane = dy.h * dy.w, channels = indices.count / max(1, dy.n * inPlane)
    precondition(channels * dy.n * inPlane == indices.count && channels <= dy.c,
                 "maxUnpoolBackward: \(indices.count) indices for \(dy.shape.shapeDescription)")
    // Every element gathered: no zero fill first.
    return Tensor(shape: [dy.n, channels, pooledHeight, pooledWidth]) { o in
        dy.data.withUnsafeBufferPointer { d in
            for p in 0..<(dy.n * channels) {
                let (b, c) = p.quotientAndRemainder(dividingBy: channels), src = (b * dy.c + c) * outPlane
                for i in 0..<inPlane { o[p * inPlane + i] = d[src + Int(indices[p * inPlane + i])] }
            }
        }
    }
}
