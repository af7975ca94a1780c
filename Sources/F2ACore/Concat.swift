/// Concatenates two NCHW tensors along the channel axis (U-Net skips).
public func concatChannels(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.rank == 4 && b.rank == 4 && a.n == b.n && a.h == b.h && a.w == b.w,
                 "concatChannels: \(a.shape.shapeDescription) vs \(b.shape.shapeDescription)")
    let pa = a.c * a.h * a.w, pb = b.c * b.h * b.w
    // Copied over whole: no zero fill first.
    return Tensor(shape: [a.n, a.c + b.c, a.h, a.w]) { yp in
        for i in 0..<a.n {
            let dst = yp.baseAddress! + i * (pa + pb)
            a.data.withUnsafeBufferPointer { dst.update(from: $0.baseAddress! + i * pa, count: pa) }
            b.data.withUnsafeBufferPointer { (dst + pa).update(from: $0.baseAddress! + i * pb, count: pb) }
        }
    }
}
