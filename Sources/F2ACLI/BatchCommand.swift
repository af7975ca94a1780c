import ArgumentParser
import F2AImage
import F2AModel
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `--jobs N` or `--jobs auto`.
enum BatchJobs: ExpressibleByArgument, Equatable {
    case auto
    case count(Int)

    init?(argument: String) {
        if argument == "auto" { self = .auto; return }
        guard let n = Int(argument), n >= 1, n <= 64 else { return nil }
        self = .count(n)
    }

    static var defaultValueDescription: String { "auto" }

    /// auto: one worker per online core (measured best on small and mid-size
    /// photos, see docs/BATCH.md), never more workers than files.
    func resolve(cores: Int, files: Int) -> Int {
        switch self {
        case .count(let n): return max(1, min(n, max(files, 1)))
        case .auto: return max(1, min(cores, max(files, 1)))
        }
    }
}

struct Batch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the generator to many photographs: parallel, resumable, shardable.",
        discussion: """
            INPUT: image files, directories (scanned recursively for .jpg .jpeg .png .tif .tiff .webp \
            .heic .heif .avif …, hidden entries skipped) or - for a list of paths on stdin, one per line \
            (with -0: each ended by a NUL byte, as find -print0 writes them). \
            The output tree mirrors the input tree below the deepest directory common to all inputs \
            (or --base): photos/a/x.jpg → OUT/a/x.jpg. Outputs keep the input's band format (16-bit stays \
            16-bit), alpha and metadata, and are written to a temporary file then renamed, so an \
            interrupted or killed run never leaves a partial output; run again with --skip-existing to resume.

            Safety: the output directory may not be an input directory or contain an input; it may lie \
            inside an input directory only as a separate subtree (new, empty or a previous f2a batch \
            output, marked by OUT/.f2a-batch), which is then never scanned; no output may be an input.

            The header line and every --report line name the model and its SHA-256 (what sha256sum \
            prints for the weights file). --quiet prints only failures and errors.

            Sharding: --shard K/N processes items K, K+N, K+2N, … of the input list sorted by relative \
            path. Without --shard, K/N come from JOB_COMPLETION_INDEX and --shard-count or \
            F2A_SHARD_COUNT (Kubernetes Indexed Jobs) or from SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN \
            and SLURM_ARRAY_TASK_COUNT (Slurm arrays). Recipes: docs/BATCH.md.

            Exit status: 0 if every file was written or skipped, 1 if any failed, 2 if the run was \
            refused or could not start, 64 for an invalid option, 130/143 if interrupted by \
            SIGINT/SIGTERM (the files in flight are finished or cancelled cleanly).
            """)

    @Argument(help: "Image files, directories, or - for paths on stdin.") var inputs: [String]
    @Option(name: [.short, .long], help: "Output directory (created if missing).") var output: String
    @Option(name: [.short, .long], help: "Parallel workers: a number or auto (one per core).") var jobs: BatchJobs = .auto
    @Option(help: "Output format: same, jpeg, png, tiff or webp.") var format: OutputFormat = .same
    @Option(help: "JPEG/WebP/HEIF quality 1–100 (0 = libvips default).") var quality: Int = 0
    @Option(help: "Appended to each output's file name stem (photo.jpg → photo<S>.jpg).") var suffix: String = ""
    @Flag(help: "Skip inputs whose output already exists (resume an interrupted run).") var skipExisting = false
    @Option(help: "Process shard K of N (0 <= K < N) of the sorted input list.") var shard: String?
    @Option(help: "Shard count N when the index comes from JOB_COMPLETION_INDEX (or set F2A_SHARD_COUNT).")
    var shardCount: Int?
    @Option(help: "Write one JSON line per file to this path ({shard} is replaced by K).") var report: String?
    @Option(help: "Directory the output tree mirrors (default: deepest directory common to the inputs).")
    var base: String?
    @Flag(help: "List this shard's input → output pairs (tab-separated) and exit.") var dryRun = false
    @Flag(name: [.customShort("0"), .customLong("null")],
          help: "Paths on stdin (INPUT -) end with a NUL byte instead of a newline (find -print0, xargs -0).")
    var nullSeparated = false
    @Flag(name: .shortAndLong, help: "No header, progress or summary: only failures and errors are printed.")
    var quiet = false
    @OptionGroup var model: ModelOptions
    @OptionGroup var apply: ApplyArguments

    func validate() throws {
        guard (0...100).contains(quality) else { throw ValidationError("--quality must be from 0 to 100") }
        guard !suffix.contains("/"), !suffix.contains("\0") else { throw ValidationError("--suffix may not contain '/'") }
        guard !BatchPath.isTemporary(suffix) else { throw ValidationError("--suffix may not contain '\(BatchPath.tempInfix)'") }
        guard !inputs.isEmpty else { throw ValidationError("give at least one INPUT (a file, a directory or -)") }
        guard !output.isEmpty else { throw ValidationError("--output may not be empty") }
        if let shardCount, shardCount < 1 { throw ValidationError("--shard-count must be at least 1") }
    }

    func run() throws {
        do {
            try runBatch()
        } catch let error as BatchError {
            writeStderr("f2a batch: error: \(error.description)\n")
            throw ExitCode(2)
        }
    }

    func runBatch() throws {
        let started = Date()
        let shard = try BatchShard.resolve(option: shard, countOption: shardCount,
                                           environment: ProcessInfo.processInfo.environment)
        var planner = BatchPlanner(arguments: inputs, outputDirectory: output, base: base, format: format, suffix: suffix,
                                   otherInputs: [try? model.path()].compactMap { $0 })
        if nullSeparated { planner.stdinSeparator = 0 }
        let plan = try planner.plan()
        let reportPath = report.map { BatchReport.path($0, shard: shard) }
        if let reportPath { try plan.checkReport(reportPath) }
        let mine = shard.select(plan.items)

        if dryRun {
            for item in mine { print("\(item.input)\t\(item.output)") }
            return
        }
        // Refused once here rather than failing every file.
        do {
            try model.reserveMatrixBuffer()
            _ = try MemoryBudget.configuredLimit()
            try ImageIO.start()
        } catch {
            throw BatchError("\(error)")
        }
        let generator: Generator
        let modelPath: String, modelSHA256: String
        do {
            generator = try model.load()
            modelPath = BatchPath.absolute(try model.path())
            // Which model made the outputs, for the record: the bytes, not the name.
            modelSHA256 = try sha256Hex(ofFile: modelPath)
        } catch {
            throw BatchError("\(error)")
        }
        try Self.prepareOutputDirectory(plan.outputDirectory)

        let cores = BatchRunner.availableCores
        let workers = jobs.resolve(cores: cores, files: mine.count)
        let threads = BatchRunner.applyThreadPolicy(jobs: workers, cores: cores)
        let progress = BatchProgress(total: mine.count, quiet: quiet)
        progress.log("f2a batch: \(mine.count) of \(plan.items.count) file\(plan.items.count == 1 ? "" : "s") "
                     + "(shard \(shard)\(shard.source == "default" ? "" : " from \(shard.source)")), base \(plan.base), "
                     + "output \(plan.outputDirectory), model \(modelPath) (SHA-256 \(modelSHA256)), "
                     + "\(workers) worker\(workers == 1 ? "" : "s") "
                     + "(\(cores) of \(BatchRunner.onlineCores) cores available; convolution threads \(BatchRunner.onlineCores), OpenBLAS \(threads.blas), libvips \(threads.vips) per worker)")
        for (path, message) in plan.scanErrors { progress.error("f2a batch: \(path): \(message)") }
        for path in BatchRunner.removeStaleTemporaries(for: mine) {
            progress.log("f2a batch: removed a temporary file left by an interrupted run: \(path)")
        }

        let reportFile = try reportPath.map {
            try BatchReport(path: $0, shard: shard, model: modelPath, modelSHA256: modelSHA256)
        }
        // A directory that cannot be listed hides its files from every shard: a failure in each.
        for (path, message) in plan.scanErrors {
            let relative = BatchPath.isWithin(path, plan.base) ? BatchPath.relative(path, to: plan.base) : path
            let item = BatchItem(input: path, relative: relative, output: "", planError: message)
            reportFile?.write(BatchOutcome(item: item, status: .failed, seconds: 0, error: message))
        }
        let runner = BatchRunner(items: mine, generator: generator,
                                 settings: .init(options: apply.options, streams: apply.streams,
                                                 quality: quality, skipExisting: skipExisting),
                                 progress: progress, report: reportFile)
        let sources = [SIGINT, SIGTERM].map { sig -> DispatchSourceSignal in
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { runner.requestStop(sig) }
            source.resume()
            return source
        }
        progress.startTicker()
        runner.run(jobs: workers)
        progress.finish()
        sources.forEach { $0.cancel() }

        var tally = progress.counts
        for (path, message) in plan.scanErrors {
            tally.failed += 1
            tally.failures.append((path, message))
        }
        if !quiet { print(tally.summary(total: mine.count, shard: shard, elapsed: Date().timeIntervalSince(started))) }
        let reportFailure = reportFile?.failure
        if let reportFailure { writeStderr("f2a batch: error: \(reportFailure)\n") }
        if runner.stoppedBy != 0 {
            print("stopped by \(runner.stoppedBy == SIGINT ? "SIGINT" : "SIGTERM"); run the same command with --skip-existing to resume")
            throw ExitCode(128 + runner.stoppedBy)
        }
        if tally.failed > 0 || reportFailure != nil { throw ExitCode(1) }
    }

    /// Creates the output directory, marks it as an f2a batch output tree and
    /// checks that files can be created in it, with a clear error if not.
    static func prepareOutputDirectory(_ dir: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        } catch {
            throw BatchError("cannot create the output directory \(dir): \(BatchRunner.describe(error))")
        }
        let marker = dir + "/" + BatchPath.marker
        if BatchPath.kind(marker) != .file {
            let text = Array("This directory holds f2a batch outputs; f2a batch never scans it for inputs.\n".utf8)
            let fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw BatchError("cannot write to the output directory \(dir): \(String(cString: strerror(errno)))")
            }
            _ = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        let probe = dir + "/.f2a-batch-probe-\(getpid())"
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw BatchError("cannot write to the output directory \(dir): \(String(cString: strerror(errno)))")
        }
        close(fd)
        unlink(probe)
    }
}
