/// Concatenates two NCHW tensors along the channel axis (U-Net skips).
public func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.rank == 4 && b.rank == 4 && a.n == b.n && a.h == b.h && a.w == b.w,
                 "concatChannels: \(a.shape.shapeDescription) vs \(b.shape.shapeDescription)")
    let pa = a.c * a.h * a.w, pb = b.c * b.h * b.w
    // Copied over whole (no zero fill first), each image's two parts on the thread pool.
    return Tensor(shape: [a.n, a.c + b.c, a.h, a.w]) { yp in
        a.data.withUnsafeBufferPointer { ab in
            b.data.withUnsafeBufferPointer { bb in
                let y = yp.baseAddress!, sa = ab.baseAddress!, sb = bb.baseAddress!
                parallelChunks(2 * a.n, work: a.n * (pa + pb)) { parts in
                    for part in parts {
                        let (i, second) = part.quotientAndRemainder(dividingBy: 2)
                        let dst = y + i * (pa + pb)
                        if second == 0 { dst.update(from: sa + i * pa, count: pa) } else { (dst + pa).update(from: sb + i * pb, count: pb) }
                    }
                }
            }
        }
    }
}
