import CKernels

/// Runs body(range) over 0..<count split into `min(threads, count, 16)`
/// contiguous chunks, on the persistent thread pool of the C kernels
/// (`f2a_parallel`), the caller's thread included; returns when every chunk
/// has run.
///
/// One pool for the whole library: starting threads per call cost tens of
/// microseconds each, and two pools would each size themselves to every core.
/// The pool serves one caller at a time; a call made meanwhile - from another
/// thread (the libvips operation runs the library on several) or from inside
/// a body (nested) - runs its chunks on its own thread, so `body` may itself
/// call `parallelFor` or the kernels.
public func parallelFor(_ count: Int, threads: Int = Conv2d.threadCount, _ body: @Sendable (Range<Int>) -> Void) {
    let chunks = max(1, min(threads, count, 16))
    if chunks == 1 { if count > 0 { body(0..<count) }; return }
    withoutActuallyEscaping(body) { body in
        var job = ChunkedJob(count: count, chunks: chunks, body: body)
        withUnsafeMutablePointer(to: &job) { job in
            f2a_parallel({ context, item, _ in
                let job = context!.assumingMemoryBound(to: ChunkedJob.self)
                job.pointee.run(Int(item))
            }, job, Int32(chunks), Int32(chunks))
        }
    }
}

/// What a pool item needs to find its chunk; lives on the caller's stack for the call.
private struct ChunkedJob {
    let count: Int
    let chunks: Int
    let body: @Sendable (Range<Int>) -> Void

    func run(_ chunk: Int) {
        body((count * chunk / chunks)..<(count * (chunk + 1) / chunks))
    }
}

/// Runs `body` with the thread pool's workers kept awake between dispatches
/// (`f2a_pool_hold`): for a sequence of parallel steps with short serial work
/// in between, such as a forward pass, so that no step waits for a sleeping
/// worker to be woken and scheduled. Nests.
public func withThreadPoolHeld<R, E: Error>(_ body: () throws(E) -> R) throws(E) -> R {
    f2a_pool_hold(1)
    defer { f2a_pool_hold(-1) }
    return try body()
}

/// Splits 0..<n into contiguous chunks run on the thread pool (`parallelFor`)
/// when `work` (elements touched) is large enough to pay for the hand-off.
@inline(__always)
package func parallelChunks(_ n: Int, work: Int, _ body: (Range<Int>) -> Void) {
    if work < 1 << 16 { body(0..<n); return }
    withoutActuallyEscaping(body) { b in
        // The chunks write disjoint channels of raw buffers, which Sendable cannot express.
        let box = UncheckedBox(b)
        parallelFor(n) { box.value($0) }
    }
}

/// The block of `elementChunks`: every range it passes starts at a multiple of this.
package let elementChunkSize = 4096

/// Runs body over contiguous ranges of 0..<count, whole blocks of `elementChunkSize`
/// elements each (the last cut at count), on the thread pool: element-wise passes over a
/// tensor, and sums kept per block so that they do not depend on the threads.
@inline(__always)
package func elementChunks(_ count: Int, _ body: (Range<Int>) -> Void) {
    let size = elementChunkSize
    parallelChunks((count + size - 1) / size, work: count) { blocks in
        body(blocks.lowerBound * size..<min(count, blocks.upperBound * size))
    }
}

package struct UncheckedBox<T>: @unchecked Sendable {
    package let value: T
    package init(_ v: T) { value = v }
}
