import Testing
@testable import F2ACore
#if canImport(Glibc)
import Glibc
#endif

@Suite("OpenBLAS's kernel set")
struct BLASKernelsTests {
    @Test("Kernel sets rank by the instructions they use")
    func ranking() {
        #expect(BLASKernels.isAtLeast("SkylakeX", "Haswell"))
        #expect(BLASKernels.isAtLeast("Zen", "Haswell"))
        #expect(BLASKernels.isAtLeast("haswell", "Haswell"))
        #expect(BLASKernels.isAtLeast("SapphireRapids", "SkylakeX"))
        #expect(!BLASKernels.isAtLeast("Prescott", "Haswell"))
        #expect(!BLASKernels.isAtLeast("Sandybridge", "Haswell"))
        #expect(!BLASKernels.isAtLeast("Haswell", "SkylakeX"))
        #expect(!BLASKernels.isAtLeast("Zen", "SkylakeX"))
    }

    /// On a CPU newer than Debian's OpenBLAS (Intel model 207 here) OpenBLAS alone picks
    /// its SSE3 "Prescott" kernels; this fails there without BLASKernels.
    @Test("Once settled, GEMMs run the best kernels this CPU runs, unless OPENBLAS_CORETYPE says otherwise")
    func bestKernels() {
        let choice = BLASKernels.choice
        var c: [Float] = [0]
        let one: [Float] = [2]
        sgemm(m: 1, n: 1, k: 1, a: one, lda: 1, b: one, ldb: 1, c: &c, ldc: 1)
        #expect(c == [4])
        #expect(choice.core == BLASKernels.currentCore)
        if getenv("OPENBLAS_CORETYPE") != nil {
            #expect(choice.replaced == nil, "the user's OPENBLAS_CORETYPE is kept")
            return
        }
        if let best = BLASKernels.bestForThisCPU {
            #expect(BLASKernels.isAtLeast(choice.core, best), "OpenBLAS runs \(choice.description) on a CPU that runs \(best)")
        }
        if let replaced = choice.replaced { #expect(!BLASKernels.isAtLeast(replaced, choice.core)) }
    }

    /// A GEMM big enough for OpenBLAS's blocked, threaded path, with the kernels chosen
    /// again, against a naive product (the replaced kernels would give the same up to
    /// rounding; a wrong switch would not).
    @Test("A blocked GEMM on the chosen kernels matches naive loops", arguments: [(false, false), (false, true), (true, false)])
    func blockedGemm(transA: Bool, transB: Bool) {
        _ = BLASKernels.choice
        let m = 67, n = 301, k = 259
        let a = randomTensor([m, k], seed: 7).data, b = randomTensor([k, n], seed: 8).data
        var c = [Float](repeating: 1, count: m * n)
        sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 0.5,
              a: a, lda: transA ? m : k, b: b, ldb: transB ? k : n, beta: 2, c: &c, ldc: n)
        var worst: Float = 0
        for i in 0..<m {
            for j in 0..<n {
                var s: Double = 0
                for p in 0..<k {
                    s += Double(transA ? a[p * m + i] : a[i * k + p]) * Double(transB ? b[j * k + p] : b[p * n + j])
                }
                worst = max(worst, abs(c[i * n + j] - Float(0.5 * s + 2)))
            }
        }
        #expect(worst < 1e-4)
    }
}
