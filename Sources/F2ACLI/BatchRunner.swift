import F2ACore
import F2AImage
import F2AModel
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Runs the items of one shard on `jobs` worker threads sharing one loaded model
/// (a Generator is immutable and thread-safe). Each worker takes the next file
/// in sorted order and either streams it through guided mode (reads its rows, runs the
/// network at working size, then maps it while saving) or decodes it whole and runs the
/// model in place on its pixels; either way it saves through the atomic saver (temporary
/// file beside the output, then rename).
final class BatchRunner: @unchecked Sendable {
    struct Settings: Sendable {
        var options: ApplyOptions
        /// Guided mode streams each photo (`StreamedGuided`) instead of decoding it whole.
        var streams: Bool
        var quality: Int
        var skipExisting: Bool
    }

    let items: [BatchItem]
    let generator: Generator
    let settings: Settings
    let progress: BatchProgress
    let report: BatchReport?

    private let lock = NSLock()
    private var next = 0
    private var stopSignal: Int32 = 0
    /// Outputs whose temporary file may exist right now (being saved).
    private var saving = Set<String>()

    init(items: [BatchItem], generator: Generator, settings: Settings, progress: BatchProgress, report: BatchReport?) {
        self.items = items
        self.generator = generator
        self.settings = settings
        self.progress = progress
        self.report = report
    }

    /// The signal that asked the run to stop (0 if none).
    var stoppedBy: Int32 { lock.lock(); defer { lock.unlock() }; return stopSignal }

    /// Thread policy. The 3x3 convolutions always split each layer over one
    /// thread per online CPU (F2ACore's Conv2d.threadCount, fixed per process);
    /// the rest is divided between the workers: OpenBLAS and libvips get
    /// cores / jobs threads each (at least 1), so with jobs = cores every
    /// worker's GEMMs and decoding run single-threaded.
    static func applyThreadPolicy(jobs: Int, cores: Int) -> (blas: Int, vips: Int) {
        let share = max(1, cores / max(1, jobs))
        blasThreadCount = share
        // Read by libvips when it starts (on the first image), unless the user set it.
        setenv("VIPS_CONCURRENCY", String(share), 0)
        return (blasThreadCount, Int(ProcessInfo.processInfo.environment["VIPS_CONCURRENCY"] ?? "") ?? share)
    }

    static var onlineCores: Int { max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }

    /// CPUs this process may really use: the online CPUs, limited by the affinity
    /// mask (taskset, Slurm/cpuset) and the cgroup CPU quota (Kubernetes limits,
    /// docker --cpus), rounded up. What `--jobs auto` sizes itself on.
    static var availableCores: Int {
        var cores = onlineCores
        if let allowed = allowedCPUs() { cores = min(cores, max(1, allowed)) }
        if let quota = cgroupQuota() { cores = min(cores, max(1, Int(quota.rounded(.up)))) }
        return cores
    }

    /// Number of CPUs in this process's affinity mask ("Cpus_allowed_list: 0-3,8" in /proc/self/status).
    static func allowedCPUs() -> Int? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
              let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") }) else { return nil }
        var count = 0
        for range in line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces).split(separator: ",") {
            let ends = range.split(separator: "-").compactMap { Int($0) }
            if ends.count == 1 { count += 1 } else if ends.count == 2, ends[1] >= ends[0] { count += ends[1] - ends[0] + 1 }
        }
        return count > 0 ? count : nil
    }

    /// CPUs allowed by the cgroup quota (v2 cpu.max, else v1 cfs_quota_us/cfs_period_us); nil if unlimited.
    static func cgroupQuota() -> Double? {
        func read(_ path: String) -> String? {
            (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let max = read("/sys/fs/cgroup/cpu.max") {
            let parts = max.split(separator: " ")
            if parts.count == 2, let q = Double(parts[0]), let p = Double(parts[1]), q > 0, p > 0 { return q / p }
            return nil
        }
        if let q = read("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").flatMap(Double.init),
           let p = read("/sys/fs/cgroup/cpu/cpu.cfs_period_us").flatMap(Double.init), q > 0, p > 0 {
            return q / p
        }
        return nil
    }

    /// Processes every item; returns when all are done or a stop was requested
    /// and the files in flight have finished (or been cancelled).
    func run(jobs: Int) {
        let n = max(1, min(jobs, items.count))
        let group = DispatchGroup()
        let work = { [self] in
            while let item = take() {
                let outcome = process(item)
                ImageIO.releaseFreeMemory()
                report?.write(outcome)
                progress.record(outcome)
            }
        }
        // The calling thread is one of the workers. A thread that cannot be created (under
        // ulimit -v its stack may not fit; Foundation's Thread.start then fails silently and
        // the run waited forever for it) leaves fewer workers, said once.
        var started = 1
        while started < n {
            group.enter()
            guard Self.startThread({ work(); group.leave() }) else {
                group.leave()
                progress.error("f2a batch: only \(started) of \(n) workers could be started (a thread could not be "
                               + "created: ulimit -v or -u?); continuing with \(started)")
                break
            }
            started += 1
        }
        work()
        group.wait()
    }

    /// Runs `body` on a new detached thread with an 8 MB stack (the network's activations
    /// live on the heap; the stack needs only the default). False when the thread cannot be
    /// created.
    static func startThread(_ body: @escaping () -> Void) -> Bool {
        final class Body { let run: () -> Void; init(_ run: @escaping () -> Void) { self.run = run } }
        let context = Unmanaged.passRetained(Body(body)).toOpaque()
        var attributes = pthread_attr_t()
        pthread_attr_init(&attributes)
        defer { pthread_attr_destroy(&attributes) }
        pthread_attr_setstacksize(&attributes, 8 << 20)
        pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
        var thread = pthread_t()
        let status = pthread_create(&thread, &attributes, { context in
            Unmanaged<Body>.fromOpaque(context!).takeRetainedValue().run()
            return nil
        }, context)
        if status != 0 { Unmanaged<Body>.fromOpaque(context).release() }
        return status == 0
    }

    private func take() -> BatchItem? {
        lock.lock()
        defer { lock.unlock() }
        guard stopSignal == 0, next < items.count else { return nil }
        defer { next += 1 }
        return items[next]
    }

    /// First SIGINT/SIGTERM: start no new file, cancel the model runs in flight,
    /// let saves in progress finish (their rename is atomic), then summarise.
    /// Second signal: remove the temporary files of saves in flight and exit now.
    func requestStop(_ signal: Int32) {
        lock.lock()
        let again = stopSignal != 0
        if !again { stopSignal = signal }
        let inFlight = saving
        lock.unlock()
        if again {
            for output in inFlight { unlink(Self.temporaryPath(of: output, pid: getpid())) }
            writeStderr("\nf2a batch: stopped by a second signal\n")
            _exit(128 + signal)
        }
        progress.error("f2a batch: \(signal == SIGINT ? "interrupted" : "terminated"): finishing the files being saved "
                     + "(signal again to stop at once)")
    }

    private var stopping: Bool { lock.lock(); defer { lock.unlock() }; return stopSignal != 0 }

    func process(_ item: BatchItem) -> BatchOutcome {
        let start = Date()
        func outcome(_ status: BatchStatus, _ error: String? = nil, _ size: (width: Int, height: Int)? = nil) -> BatchOutcome {
            var o = BatchOutcome(item: item, status: status, seconds: Date().timeIntervalSince(start), error: error)
            if let size {
                o.width = size.width
                o.height = size.height
                o.mode = settings.options.resolvedMode(width: size.width, height: size.height).rawValue
            }
            return o
        }
        if let error = item.planError { return outcome(.failed, error) }
        if settings.skipExisting && Self.isNonEmptyFile(item.output) { return outcome(.skipped) }
        let dir = BatchPath.parent(item.output)
        if BatchPath.kind(dir) != .directory {
            do {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            } catch {
                return outcome(.failed, "cannot create the directory \(dir): \(Self.describe(error))")
            }
        }
        var size: (width: Int, height: Int)?
        do {
            if settings.streams {
                try processStreamed(item) { size = $0 }
            } else {
                try processWhole(item) { size = $0 }
            }
            return outcome(.ok, nil, size)
        } catch is Cancelled {
            return outcome(.interrupted, "cancelled", size)
        } catch {
            return outcome(.failed, errorSentence(error), size)
        }
    }

    /// Guided mode, streamed: pass 1 and the network stop at a stop request; pass 2 writes
    /// the output, so like any save it runs to its end.
    private func processStreamed(_ item: BatchItem, opened: ((width: Int, height: Int)) -> Void) throws {
        let image = try StreamedImage(path: item.input) { [settings, generator] width, height in
            try generator.checkBeforeDecoding(width: width, height: height, options: settings.options)
        }
        opened((image.width, image.height))
        let plan = try StreamedGuided.read(image, named: "'\(item.input)'", generator: generator,
                                           options: settings.options, reading: { [self] _ in !stopping })
        try StreamedGuided.finish(plan, progress: { [self] _ in !stopping })
        try whileSaving(item) {
            try image.save(to: item.output, quality: settings.quality, mapping: plan.regionMap, bytes: plan.regionMap8)
        }
    }

    private func processWhole(_ item: BatchItem, opened: ((width: Int, height: Int)) -> Void) throws {
        let decoded = try DecodedImage(path: item.input) { [settings, generator] width, height in
            try generator.checkBeforeDecoding(width: width, height: height, options: settings.options)
        }
        opened((decoded.width, decoded.height))
        // Again with the decoded pixels taken: under ulimit -v they count against what is left.
        try generator.checkMemory(width: decoded.width, height: decoded.height, options: settings.options)
        let pixels = decoded.pixels
        let view = RGBImageView(base: UnsafePointer(pixels.baseAddress!), width: decoded.width,
                                height: decoded.height, rowStride: 3 * decoded.width)
        // In place: halves the memory per worker.
        try generator.apply(view, to: pixels.baseAddress!, outputRowStride: 3 * decoded.width,
                            options: settings.options, progress: { [self] _ in !stopping })
        try whileSaving(item) { try decoded.save(UnsafeBufferPointer(pixels), to: item.output, quality: settings.quality) }
    }

    /// Runs a save of `item`'s output, known meanwhile as in flight (a second signal removes
    /// its temporary file).
    private func whileSaving(_ item: BatchItem, _ save: () throws -> Void) throws {
        lock.lock(); saving.insert(item.output); lock.unlock()
        defer { lock.lock(); saving.remove(item.output); lock.unlock() }
        try save()
    }

    /// An existing output counts as done (outputs only ever appear complete, by rename);
    /// an empty file — what a power cut can leave after a rename — is redone.
    static func isNonEmptyFile(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && st.st_size > 0
    }

    static func describe(_ error: Error) -> String { errorReason(error) }

    /// The saver's temporary name for `output` (f2aio_temporary_path, vipsio.c).
    static func temporaryPath(of output: String, pid: Int32) -> String {
        temporaryImagePath(output, pid: pid) ?? output + BatchPath.tempInfix
    }

    /// Removes temporary files left by a killed run for this shard's outputs
    /// (only the saver's temporary names of outputs in `items`, and only when
    /// their pid is not a live f2a process on this machine). Returns the paths removed.
    static func removeStaleTemporaries(for items: [BatchItem]) -> [String] {
        // The saver's name is "<dir>/.f2a-tmp-<pid>-<hash of the name><suffix>": an output is
        // recognised by what follows the pid.
        let prefix = BatchPath.tempInfix
        func afterPid(_ name: String) -> (pid: Int32, rest: Substring)? {
            guard name.hasPrefix(prefix) else { return nil }
            let tail = name.dropFirst(prefix.count)
            let digits = tail.prefix(while: { $0.isASCII && $0.isNumber })
            guard !digits.isEmpty, let pid = Int32(digits), tail.dropFirst(digits.count).first == "-" else { return nil }
            return (pid, tail.dropFirst(digits.count + 1))
        }
        var byDir: [String: Set<Substring>] = [:]
        for item in items {
            guard let name = temporaryImagePath(item.output, pid: 0).map(BatchPath.name),
                  let rest = afterPid(name)?.rest else { continue }
            byDir[BatchPath.parent(item.output), default: []].insert(rest)
        }
        var removed: [String] = []
        for (dir, outputs) in byDir {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: dir) else { continue }
            for name in names {
                guard let (pid, rest) = afterPid(name), outputs.contains(rest), !isLiveF2A(pid) else { continue }
                if unlink(dir + "/" + name) == 0 { removed.append(dir + "/" + name) }
            }
        }
        return removed.sorted()
    }

    /// Called before this process saves anything, so a file with our own pid is
    /// stale too (containers restart with the same pid).
    static func isLiveF2A(_ pid: Int32) -> Bool {
        if pid == getpid() { return false }
        guard kill(pid, 0) == 0 || errno == EPERM,
              let comm = try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8) else { return false }
        return comm.hasPrefix("f2a")
    }
}
