import F2ACore
import Synchronization

/// A layer's independent GEMMs (the 36 transform positions of a Winograd domain): small
/// ones side by side on the pool's threads, each on one OpenBLAS thread; large ones one
/// after another, each on all of OpenBLAS's threads.
///
/// Why: OpenBLAS splits one GEMM between its threads and joins them at the end; a GEMM of
/// a few million multiply-adds is over before the split pays for itself. The PatchGAN's
/// C512 layer at width 0.5 (128 → 256 channels, 16² → 15², GEMMs of 13 M multiply-adds),
/// forward and backward with both gradients: 8 images 13.7 → 10.9 ms, 16 images 23.7 →
/// 19.9 ms (best of 10, side by side in one process). The 3x3 Winograd weight gradient
/// of width 1.0 (GEMMs of 512 x 512 x thousands of tiles) measured slower side by side.
enum GemmBatch {
    /// GEMMs of at most this many multiply-adds each run side by side.
    static let sideBySideMaxMultiplies = 1 << 24

    /// body(i) for i in 0..<count, each issuing GEMM i (of `multipliesEach` m·n·k).
    /// While `GemmProfile` records, they run one after another: it times each call alone.
    static func run(_ count: Int, multipliesEach: Int, _ body: (Int) -> Void) {
        guard multipliesEach <= sideBySideMaxMultiplies else {
            for i in 0..<count { body(i) }
            return
        }
        sideBySide(count, body)
    }

    /// body(i) for i in 0..<count side by side whatever their size: for GEMMs that
    /// OpenBLAS's threads share badly at any size, such as a few hundred outputs summed over
    /// thousands of columns (it splits the outputs, not the depth).
    static func sideBySide(_ count: Int, _ body: (Int) -> Void) {
        let threads = restingBLASThreads
        guard threads > 1, count > 1, !GemmProfile.enabled else {
            for i in 0..<count { body(i) }
            return
        }
        singleThreadedBLAS.withLock { state in
            if state.batches == 0 { state.resting = blasThreadCount; blasThreadCount = 1 }
            state.batches += 1
        }
        defer {
            singleThreadedBLAS.withLock { state in
                state.batches -= 1
                if state.batches == 0 { blasThreadCount = state.resting }
            }
        }
        withoutActuallyEscaping(body) { b in
            // Each GEMM writes its own output matrix, which Sendable cannot express.
            let box = UncheckedBox(b)
            parallelFor(count, threads: min(threads, Conv2d.threadCount)) { range in for i in range { box.value(i) } }
        }
    }

    /// OpenBLAS's thread count outside the batches: what it was before the first of the
    /// batches now running began, and what it will be once the last has ended.
    static var restingBLASThreads: Int {
        singleThreadedBLAS.withLock { $0.batches > 0 ? $0.resting : blasThreadCount }
    }

    /// OpenBLAS's thread count is the process's: batches on several threads at once (tests
    /// run trainers side by side) each saving and restoring it left it at 1, or put it back
    /// to all threads under a batch still running. The first batch to begin saves it, the
    /// last to end restores it.
    private static let singleThreadedBLAS = Mutex((batches: 0, resting: 1))
}
