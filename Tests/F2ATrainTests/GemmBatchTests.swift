import Foundation
import Synchronization
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
        // Other tests' batches may be running: their count is theirs until the last ends.
        let threads = GemmBatch.restingBLASThreads
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
        #expect(GemmBatch.restingBLASThreads == threads)
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

    /// Batches that overlap in time on two threads (forced here: each waits inside for the
    /// other to have begun) keep OpenBLAS single-threaded until the last ends, and leave the
    /// count as it was. Each saving and restoring it left 1 behind, and the second batch ran
    /// on after the first had put all threads back.
    @Test("Overlapping batches on two threads restore OpenBLAS's thread count once, at the end",
          .enabled(if: GemmBatch.restingBLASThreads > 1, "OpenBLAS has one thread here"))
    func overlapping() {
        final class Rendezvous: Sendable {
            let started = Atomic<Int>(0), firstDone = Atomic<Bool>(false), insideSecond = Atomic<Int>(-1)
        }
        @Sendable func batch(_ r: Rendezvous, first: Bool) {
            GemmBatch.sideBySide(2) { i in
                guard i == 0 else { return }
                r.started.add(1, ordering: .sequentiallyConsistent)
                while r.started.load(ordering: .sequentiallyConsistent) < 2 { sched_yield() }
                guard !first else { return }
                // The one to end last: after the other has ended, OpenBLAS is still single-threaded.
                while !r.firstDone.load(ordering: .sequentiallyConsistent) { sched_yield() }
                r.insideSecond.store(blasThreadCount, ordering: .sequentiallyConsistent)
            }
            if first { r.firstDone.store(true, ordering: .sequentiallyConsistent) }
        }
        let resting = GemmBatch.restingBLASThreads, r = Rendezvous(), done = DispatchSemaphore(value: 0)
        Thread { batch(r, first: false); done.signal() }.start()
        batch(r, first: true)
        done.wait()
        #expect(r.insideSecond.load(ordering: .sequentiallyConsistent) == 1)
        #expect(GemmBatch.restingBLASThreads == resting)
    }
}
