#if canImport(Glibc)
import Glibc
#endif
import CKernels
import Synchronization
import Testing
@testable import F2ACore

/// One count per index, so that an index run twice (or never) shows.
private final class Counts: Sendable {
    let slots: [Slot]
    final class Slot: Sendable { let value = Atomic<Int>(0) }
    init(_ n: Int) { slots = (0..<n).map { _ in Slot() } }
    func hit(_ i: Int) { slots[i].value.wrappingAdd(1, ordering: .relaxed) }
    var values: [Int] { slots.map { $0.value.load(ordering: .relaxed) } }
}

/// Runs body(t) for t in 0..<n on n plain threads at once (the libvips
/// operation's situation: its worker threads call the library concurrently).
private func onThreads(_ n: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Start: Sendable {
        let index: Int, body: @Sendable (Int) -> Void
        init(_ index: Int, _ body: @escaping @Sendable (Int) -> Void) { self.index = index; self.body = body }
    }
    var threads: [pthread_t] = []
    for t in 0..<n {
        var tid = pthread_t()
        let start = Unmanaged.passRetained(Start(t, body)).toOpaque()
        let status = pthread_create(&tid, nil, { raw in
            let start = Unmanaged<Start>.fromOpaque(raw!).takeRetainedValue()
            start.body(start.index)
            return nil
        }, start)
        precondition(status == 0, "pthread_create: \(status)")
        threads.append(tid)
    }
    for tid in threads { pthread_join(tid, nil) }
}

@Suite("Thread pool")
struct ParallelTests {
    @Test("parallelFor covers 0..<count once in contiguous chunks", arguments: [0, 1, 2, 3, 17, 1000])
    func chunks(_ count: Int) {
        let counts = Counts(max(count, 1))
        final class Ranges: Sendable { let list = Mutex<[Range<Int>]>([]) }
        let ranges = Ranges()
        parallelFor(count, threads: 4) { range in
            ranges.list.withLock { $0.append(range) }
            for i in range { counts.hit(i) }
        }
        #expect(counts.values.prefix(count).allSatisfy { $0 == 1 })
        let sorted = ranges.list.withLock { $0 }.sorted { $0.lowerBound < $1.lowerBound }
        #expect(sorted.count == max(1, min(4, count)) || count == 0)
        #expect(zip(sorted, sorted.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
    }

    @Test("parallelFor from several threads at once, nested inside itself, runs every index exactly once")
    func concurrentAndNested() {
        let callers = 6, rounds = 25, outer = 13, inner = 29
        let counts = Counts(callers * outer * inner)
        onThreads(callers) { t in
            for _ in 0..<rounds {
                parallelFor(outer, threads: 16) { rows in
                    for i in rows {
                        // Nested: the pool is busy with the outer call (or another caller's).
                        parallelFor(inner, threads: 3) { cols in
                            for j in cols { counts.hit((t * outer + i) * inner + j) }
                        }
                    }
                }
            }
        }
        let values = counts.values
        #expect(values.allSatisfy { $0 == rounds }, "counts \(Set(values).sorted()), expected \(rounds) each")
    }

    @Test("The kernels on the pool stay exact while parallelFor runs on other threads")
    func kernelsBesideParallelFor() {
        let x = Tensor(shape: [1, 3, 37, 41], data: (0..<(3 * 37 * 41)).map { Float($0 % 97) / 97 })
        let expected = x.data.map { 2 * $0 - 1 }
        let wrong = Counts(1)
        onThreads(4) { t in
            for _ in 0..<50 {
                if t % 2 == 0 {
                    if affine(x, scale: 2, shift: -1).data != expected { wrong.hit(0) }
                } else {
                    let counts = Counts(500)
                    parallelFor(500) { for i in $0 { counts.hit(i) } }
                    if !counts.values.allSatisfy({ $0 == 1 }) { wrong.hit(0) }
                }
            }
        }
        #expect(wrong.values == [0])
    }
}

/// Keeps the calling thread busy (a pool item that takes that long).
private func busyWait(nanoseconds: Int) {
    var start = timespec(), now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &start)
    repeat { clock_gettime(CLOCK_MONOTONIC, &now) }
    while (now.tv_sec - start.tv_sec) * 1_000_000_000 + (now.tv_nsec - start.tv_nsec) < nanoseconds
}

@Suite("Thread pool claims")
struct PoolClaimTests {
    /// Thread 1 claims from the back of the range (pool.c run_items), so that each core keeps
    /// to its end of the image from layer to layer: its items are a suffix, the caller's a
    /// prefix. Each item takes ~20 us so that both threads get some; when another test holds
    /// the pool, the caller runs them all, which is a prefix too.
    @Test("Thread 1's items are a suffix of the range, the caller's a prefix")
    func claimsFromBothEnds() {
        for n in [2, 7, 64, 1000] {
            var runs = [Int32](repeating: -1, count: n)
            runs.withUnsafeMutableBufferPointer { buffer in
                f2a_parallel({ context, item, thread in
                    busyWait(nanoseconds: 20_000)
                    context!.assumingMemoryBound(to: Int32.self)[Int(item)] = thread
                }, buffer.baseAddress, Int32(n), 2)
            }
            #expect(runs.allSatisfy { $0 == 0 || $0 == 1 }, "n \(n): \(runs)")
            let firstOfWorker = runs.firstIndex(of: 1) ?? n
            #expect(runs[..<firstOfWorker].allSatisfy { $0 == 0 } && runs[firstOfWorker...].allSatisfy { $0 == 1 },
                    "n \(n): threads \(runs)")
        }
    }
}

@Suite("The AVX-512 switch")
struct KernelSwitchTests {
    /// f2a_kernels_set_avx512 is the calling thread's: the trainer's AVX-512-only kernels fall
    /// back to GEMMs with other roundings, so a switch one test flips must not reach another
    /// test's threads, while the pool's workers must run the switching caller's items with its
    /// setting. Meaningful on AVX-512 CPUs (elsewhere every thread reads 0).
    @Test("Is the calling thread's; the pool's workers run its jobs with it")
    func perThread() {
        func onAnotherThread() -> Int32 {
            let seen = Atomic<Int32>(-1)
            onThreads(1) { _ in seen.store(f2a_kernels_avx512(), ordering: .relaxed) }
            return seen.load(ordering: .relaxed)
        }
        let process = onAnotherThread()
        let previous = f2a_kernels_set_avx512(0)
        defer { _ = f2a_kernels_set_avx512(previous) }
        #expect(f2a_kernels_avx512() == 0)
        #expect(onAnotherThread() == process)
        // Items of ~20 us, so that the worker claims some (unless another test holds the pool:
        // then this caller runs them all; a few rounds make that unlikely to last).
        var workerRan = false
        for _ in 0..<20 where !workerRan {
            var seen = [Int32](repeating: -1, count: 2 * 64)
            seen.withUnsafeMutableBufferPointer { buffer in
                f2a_parallel({ context, item, thread in
                    busyWait(nanoseconds: 20_000)
                    let slots = context!.assumingMemoryBound(to: Int32.self)
                    slots[2 * Int(item)] = thread
                    slots[2 * Int(item) + 1] = f2a_kernels_avx512()
                }, buffer.baseAddress, 64, 2)
            }
            #expect(stride(from: 1, to: seen.count, by: 2).allSatisfy { seen[$0] == 0 }, "\(seen)")
            workerRan = stride(from: 0, to: seen.count, by: 2).contains { seen[$0] == 1 }
        }
        #expect(workerRan, "the worker never claimed an item")
    }
}
