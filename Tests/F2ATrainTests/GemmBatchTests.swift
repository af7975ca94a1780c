import Testing
@testable import F2ATrain
import F2ACore

/// `GemmBatch`: independent GEMMs side by side (small) or one after another (large) give
/// every GEMM's product, and OpenBLAS's thread count is what it was before.
@Suite("Independent GEMMs side by side")
struct GemmBatchTests {
    @Test("36 GEMMs, small and large, match naive loops; the BLAS thread count is restored",
          arguments: [(m: 9, n: 20, k: 7), (m: 260, n: 260, k: 256)])
    func products(_ shape: (m: Int, n: Int, k: Int)) {
        let (m, n, k) = shape
        #expect((m * n * k <= GemmBatch.sideBySideMaxMultiplies) == (m < 100))
        var R = Rand(UInt64(m))
        let a = R.array(36 * m * k), b = R.array(36 * k * n)
        var c = [Float](repeating: .nan, count: 36 * m * n)
        let threads = blasThreadCount
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    let (ab, bb, cb) = (ap.baseAddress!, bp.baseAddress!, cp.baseAddress!)
                    GemmBatch.run(36, multipliesEach: m * n * k) { i in
                        sgemm(m: m, n: n, k: k, a: ab + i * m * k, lda: k, b: bb + i * k * n, ldb: n,
                              c: cb + i * m * n, ldc: n)
                    }
                }
            }
        }
        #expect(blasThreadCount == threads)
        // Every GEMM of the small batch, three of the large one (naive loops are slow in debug builds).
        var worst = 0.0
        for i in m < 100 ? Array(0..<36) : [0, 17, 35] {
            for r in 0..<m {
                for col in 0..<n {
                    var s = 0.0
                    for j in 0..<k { s += Double(a[(i * m + r) * k + j]) * Double(b[(i * k + j) * n + col]) }
                    worst = max(worst, abs(Double(c[(i * m + r) * n + col]) - s))
                }
            }
        }
        #expect(worst < 1e-4)
    }
}
