import F2ACore
import Foundation

/// Optional accounting of every GEMM the trainer issues (shape, flops, time),
/// used by `f2a-train bench` to compare the training step with OpenBLAS on
/// the same shapes. Off by default; when off the cost is one branch per GEMM.
public enum GemmProfile {
    public struct Shape: Hashable, Sendable { public var transA: Bool, transB: Bool, m: Int, n: Int, k: Int, beta: Float }
    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) public static var calls: [Shape: (count: Int, seconds: Double)] = [:]

    public static func reset() { calls = [:] }

    public static var totalSeconds: Double { calls.values.reduce(0) { $0 + $1.seconds } }
    public static var totalFlops: Double { calls.reduce(0) { $0 + Double($1.value.count) * 2 * Double($1.key.m * $1.key.n * $1.key.k) } }

    /// Times every recorded shape standalone (median of `repeats`, same
    /// thread count) and returns Σ count·time: what the step's GEMMs cost on
    /// their own.
    public static func standaloneSeconds(repeats: Int = 3) -> Double {
        var total = 0.0
        for (s, v) in calls {
            let rowsA = s.transA ? s.k : s.m, colsA = s.transA ? s.m : s.k
            let rowsB = s.transB ? s.n : s.k, colsB = s.transB ? s.k : s.n
            let a = [Float](repeating: 0.5, count: rowsA * colsA), b = [Float](repeating: 0.25, count: rowsB * colsB)
            var c = [Float](repeating: 0, count: s.m * s.n)
            var times: [Double] = []
            for _ in 0..<repeats {
                let t0 = now()
                a.withUnsafeBufferPointer { ap in b.withUnsafeBufferPointer { bp in c.withUnsafeMutableBufferPointer { cp in
                    F2ACore.sgemm(transA: s.transA, transB: s.transB, m: s.m, n: s.n, k: s.k, a: ap.baseAddress!, lda: colsA,
                                  b: bp.baseAddress!, ldb: colsB, beta: s.beta, c: cp.baseAddress!, ldc: s.n)
                } } }
                times.append(now() - t0)
            }
            total += Double(v.count) * times.sorted()[times.count / 2]
        }
        return total
    }
}

/// The trainer's GEMM: F2ACore.sgemm, with optional profiling.
@inline(__always)
func sgemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int,
           a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
           beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    if !GemmProfile.enabled {
        F2ACore.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
        return
    }
    let t0 = now()
    F2ACore.sgemm(transA: transA, transB: transB, m: m, n: n, k: k, a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    let dt = now() - t0
    let key = GemmProfile.Shape(transA: transA, transB: transB, m: m, n: n, k: k, beta: beta)
    let old = GemmProfile.calls[key] ?? (0, 0)
    GemmProfile.calls[key] = (old.count + 1, old.seconds + dt)
}
