#if canImport(Glibc)
import Glibc
#endif

/// Runs body(i) for i in 0..<count, split into contiguous chunks over up to
/// `threads` threads (the caller's thread takes the first chunk). Plain
/// pthreads: the library links no Dispatch or Foundation.
public func parallelFor(_ count: Int, threads: Int = Conv2d.threadCount, _ body: @escaping @Sendable (Range<Int>) -> Void) {
    let n = max(1, min(threads, count, 16))
    if n == 1 { if count > 0 { body(0..<count) }; return }
    final class Job: @unchecked Sendable {
        let range: Range<Int>
        let body: @Sendable (Range<Int>) -> Void
        init(_ range: Range<Int>, _ body: @escaping @Sendable (Range<Int>) -> Void) { self.range = range; self.body = body }
    }
    let chunks = (0..<n).map { t in (count * t / n)..<(count * (t + 1) / n) }
    var tids: [pthread_t?] = []
    for chunk in chunks.dropFirst() {
        let job = Unmanaged.passRetained(Job(chunk, body)).toOpaque()
        var tid = pthread_t()
        let started = pthread_create(&tid, nil, { raw in
            let job = Unmanaged<Job>.fromOpaque(raw!).takeRetainedValue()
            job.body(job.range)
            return nil
        }, job) == 0
        if started {
            tids.append(tid)
        } else {
            // No thread to be had: do that share here rather than fail.
            Unmanaged<Job>.fromOpaque(job).release()
            body(chunk)
        }
    }
    body(chunks[0])
    for case let tid? in tids { pthread_join(tid, nil) }
}
