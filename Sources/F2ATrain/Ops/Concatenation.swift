#if canImport(Glibc)
import Glibc
#endif
import F2ACore

// MARK: Concatenation

/// Splits a channel-concatenated gradient back into its two parts.
public func splitChannels(_ t: Tensor, first: Int) -> (Tensor, Tensor) {
    let second = t.c - first, plane = t.h * t.w
    var a = Tensor(zeros: [t.n, first, t.h, t.w]), b = Tensor(zeros: [t.n, second, t.h, t.w])
    t.data.withUnsafeBufferPointer { s in
        a.data.withUnsafeMutableBufferPointer { ap in
            b.data.withUnsafeMutableBufferPointer { bp in
                for i in 0..<t.n {
                    let src = s.baseAddress! + i * t.c * plane
                    if first > 0 { (ap.baseAddress! + i * first * plane).update(from: src, count: first * plane) }
                    if second > 0 { (bp.baseAddress! + i * second * plane).update(from: src + first * plane, count: second * plane) }
                }
            }
        }
    }
    return (a, b)
}
