import CKernels
import F2AModel
import Testing

/// `f2a_shifted_gemm` (CKernels/shifted_gemm.c), the four shifted GEMMs of
/// `PhaseConvolution`, against float64 sums in plain loops: rows around the 8-row (AVX-512)
/// and 6-row (AVX2) blocks, column counts around the 48-column item (the last item's loads
/// must not read past B's columns j + off[s], j < n), depths of one and of several 64-row
/// slices that span shifts, no depth at all, A read row-major and transposed, and 1 or 2
/// threads giving the same bits. Both register blocks sum each element in the same order, so
/// the AVX2 and AVX-512 blocks give the same bits too.
@Suite("Four shifted GEMMs summed in one pass (f2a_shifted_gemm)")
struct ShiftedGemmTests {
    struct Case: CustomStringConvertible, Sendable {
        let rows: Int, depth: Int, n: Int, offsets: [Int], transposed: Bool
        var description: String { "\(rows) rows, depth \(depth), \(n) columns, offsets \(offsets)\(transposed ? ", A transposed" : "")" }
    }

    // Skipped, not failed, on CPUs without AVX2: PhaseConvolution runs BLAS GEMMs there (its
    // tests check both paths), and this kernel is never called.
    @Test("Matches float64 loops; the same bits on 1 and 2 threads and with either block",
          .enabled(if: f2a_kernels_available() != 0, "the kernel needs AVX2"), arguments: [
        Case(rows: 8, depth: 16, n: 48, offsets: [0, 1, 49, 50], transposed: false),
        Case(rows: 1, depth: 1, n: 1, offsets: [0, 0, 0, 0], transposed: false),
        Case(rows: 9, depth: 3, n: 47, offsets: [3, 2, 1, 0], transposed: true),
        Case(rows: 12, depth: 24, n: 97, offsets: [0, 1, 33, 34], transposed: false),    // 96 rows of depth: 2 slices
        Case(rows: 17, depth: 40, n: 150, offsets: [11, 10, 1, 0], transposed: true),    // 160: 3 slices, one across shifts
        Case(rows: 32, depth: 64, n: 49, offsets: [0, 7, 20, 27], transposed: false),
        Case(rows: 3, depth: 0, n: 50, offsets: [0, 1, 2, 3], transposed: false),          // an empty sum: zeros
    ])
    func naive(_ c: Case) {
        var rng = SplitMix64(seed: UInt64(c.rows * 1000 + c.depth * 10 + c.n))
        // A(r, s, d) at a[r * aRow + s * aShift + d * aDepth]; transposed: A's rows contiguous in d.
        let (aRow, aShift, aDepth) = c.transposed ? (1, c.rows, 4 * c.rows) : (4 * c.depth, c.depth, 1)
        let a = (0..<(4 * c.rows * c.depth)).map { _ in rng.normal() }
        // B's rows end where the last shifted read does, so reads past it would leave the array.
        let ldb = c.n + c.offsets.max()!
        let b = (0..<(c.depth * ldb)).map { _ in rng.normal() }
        let ldc = c.n + 5
        func run(_ threads: Int32) -> [Float] {
            var out = [Float](repeating: 7, count: c.rows * ldc)
            let rc = f2a_shifted_gemm(a, aRow, aShift, aDepth, Int32(c.rows), Int32(c.depth), b, ldb, c.offsets, Int32(c.n),
                                      &out, ldc, threads)
            #expect(rc == 0)
            return out
        }
        // The AVX2 blocks on this thread (and its pool jobs) only, then the AVX-512 ones where the CPU has them.
        var results: [[Float]] = []
        for wide in [false, true] where !wide || f2a_cpu_has_avx512() != 0 {
            let previous = f2a_kernels_set_avx512(wide ? 1 : 0)
            defer { _ = f2a_kernels_set_avx512(previous) }
            let one = run(1), two = run(2)
            #expect(zip(one, two).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(wide ? "AVX-512" : "AVX2"): 1 and 2 threads differ")
            check(two, wide ? "AVX-512" : "AVX2")
            results.append(two)
        }
        if results.count == 2 {
            #expect(zip(results[0], results[1]).allSatisfy { $0.bitPattern == $1.bitPattern }, "AVX2 and AVX-512 blocks differ")
        }

        func check(_ got: [Float], _ blocks: String) {
            var worst = 0.0
            for r in 0..<c.rows {
                for j in 0..<ldc {
                    let value = Double(got[r * ldc + j])
                    guard j < c.n else { #expect(value == 7, "\(blocks): column \(j) past n was written"); continue }
                    var sum = 0.0, scale = 0.0
                    for s in 0..<4 {
                        for d in 0..<c.depth {
                            let t = Double(a[r * aRow + s * aShift + d * aDepth]) * Double(b[d * ldb + j + c.offsets[s]])
                            sum += t; scale += abs(t)
                        }
                    }
                    worst = max(worst, abs(value - sum) / max(scale, 1e-30))
                }
            }
            #expect(worst < 1e-6, "\(blocks): worst error relative to the sum of |terms|: \(worst)")
        }
    }
}
