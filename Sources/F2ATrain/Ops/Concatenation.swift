#if canImport(Glibc)
import Glibc
#endif
import F2ACore

// MARK: Concatenation

/// [a; b] along the batch dimension (a and b of the same shape but for the batch).
public func concatBatch(_ a: Tensor, _ b: Tensor) -> Tensor {
    precondition(a.rank == b.rank && a.shape.dropFirst() == b.shape.dropFirst(), "concatBatch: \(a.shape) and \(b.shape)")
    var shape = a.shape
    shape[0] += b.shape[0]
    return Tensor(shape: shape, data: a.data + b.data)
}

/// The first `first` samples and the rest.
public func splitBatch(_ t: Tensor, first: Int) -> (Tensor, Tensor) {
    precondition((0...t.n).contains(first))
    let per = t.count / max(t.n, 1)
    var sa = t.shape, sb = t.shape
    sa[0] = first; sb[0] = t.n - first
    return (Tensor(shape: sa, data: Array(t.data[0..<(first * per)])), Tensor(shape: sb, data: Array(t.data[(first * per)...])))
}
