import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What happened to one input.
enum BatchStatus: String, Sendable {
    case ok, skipped, failed, interrupted
}

struct BatchOutcome: Sendable {
    var item: BatchItem
    var status: BatchStatus
    var seconds: Double
    var error: String?
    var width: Int?
    var height: Int?
    var mode: String?
    /// Unix time at which the file finished.
    var finished: Double = Date().timeIntervalSince1970
}

/// The --report file: one JSON object per line, written (one write call, O_APPEND)
/// as each file finishes, so an interrupted run leaves a valid partial report.
/// Fields: input, relative, output, status (ok|skipped|failed|interrupted), seconds,
/// time (UTC, ISO 8601, when the file finished), shard ("K/N"), model (its absolute path),
/// model_sha256, and when known error, width, height, mode.
final class BatchReport: @unchecked Sendable {
    private let fd: Int32
    private let path: String
    private let shard: String
    private let model: String
    private let modelSHA256: String
    private let lock = NSLock()
    private var firstFailure: String?

    /// Why a line could not be written, if one could not: the run then exits
    /// non-zero, since a report missing lines would pass for a complete one.
    var failure: String? { lock.lock(); defer { lock.unlock() }; return firstFailure }

    /// "{shard}" in the path is replaced by the shard index (one report per shard on shared storage).
    static func path(_ template: String, shard: BatchShard) -> String {
        template.replacingOccurrences(of: "{shard}", with: String(shard.index))
    }

    init(path: String, shard: BatchShard, model: String, modelSHA256: String) throws {
        let dir = BatchPath.parent(BatchPath.absolute(path))
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw BatchError("cannot write the report \(path): \(String(cString: strerror(errno)))")
        }
        self.path = path
        self.shard = shard.description
        self.model = model
        self.modelSHA256 = modelSHA256
    }

    deinit { close(fd) }

    func write(_ outcome: BatchOutcome) {
        var fields: [(String, String)] = [
            ("input", Self.quote(outcome.item.input)),
            ("relative", Self.quote(outcome.item.relative)),
            ("output", Self.quote(outcome.item.output)),
            ("status", Self.quote(outcome.status.rawValue)),
            ("seconds", String(format: "%.3f", outcome.seconds)),
            ("time", Self.quote(Self.iso8601(outcome.finished))),
            ("shard", Self.quote(shard)),
            ("model", Self.quote(model)),
            ("model_sha256", Self.quote(modelSHA256)),
        ]
        if let e = outcome.error { fields.append(("error", Self.quote(e))) }
        if let w = outcome.width, let h = outcome.height { fields += [("width", "\(w)"), ("height", "\(h)")] }
        if let m = outcome.mode { fields.append(("mode", Self.quote(m))) }
        let line = "{" + fields.map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}\n"
        lock.lock()
        defer { lock.unlock() }
        let bytes = Array(line.utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                if firstFailure == nil {
                    firstFailure = "cannot write the report \(path): \(String(cString: strerror(n < 0 ? errno : EIO)))"
                }
                return
            }
            done += n
        }
    }

    static func iso8601(_ t: Double) -> String {
        var time = time_t(t)
        var parts = tm()
        gmtime_r(&time, &parts)
        let ms = Int((t - Double(time)) * 1000)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1,
                      Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), max(0, min(999, ms)))
    }

    /// A JSON string literal (RFC 8259 escaping).
    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 { out += String(format: "\\u%04x", scalar.value) } else { out.unicodeScalars.append(scalar) }
            }
        }
        return out + "\""
    }
}

/// Counts for the summary and the exit status.
struct BatchTally {
    var ok = 0, skipped = 0, failed = 0, interrupted = 0
    var processedSeconds = 0.0
    var failures: [(String, String)] = []

    mutating func add(_ o: BatchOutcome) {
        switch o.status {
        case .ok: ok += 1
        case .skipped: skipped += 1
        case .failed:
            failed += 1
            failures.append((o.item.input, o.error ?? "failed"))
        case .interrupted: interrupted += 1
        }
    }

    var done: Int { ok + skipped + failed + interrupted }

    func summary(total: Int, shard: BatchShard, elapsed: Double) -> String {
        var lines = ["f2a batch: shard \(shard), \(total) file\(total == 1 ? "" : "s"): \(ok) written, "
                     + "\(skipped) skipped (existing), \(failed) failed"
                     + (interrupted > 0 ? ", \(interrupted) interrupted" : "")
                     + (done < total ? ", \(total - done) not started" : "")
                     + String(format: " in %.1f s (%.2f images/s)", elapsed, elapsed > 0 ? Double(ok + failed) / elapsed : 0)]
        let shown = failures.prefix(20)
        for (input, error) in shown { lines.append("  failed: \(input): \(error)") }
        if failures.count > shown.count { lines.append("  … and \(failures.count - shown.count) more (see --report)") }
        return lines.joined(separator: "\n")
    }
}

struct BatchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}
