import F2AImage
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Progress on stderr: a one-line bar redrawn in place when stderr is a terminal
/// (done/total, images/s, ETA, failures; failure messages printed above it),
/// else one plain log line per file (for CI logs, kubectl logs, Slurm .out files).
/// Quiet (`--quiet`): failures and errors only.
final class BatchProgress: @unchecked Sendable {
    let total: Int
    let terminal: Bool
    let quiet: Bool
    private let lock = NSLock()
    private let start = Date()
    private var tally = BatchTally()
    private var barShown = false
    private var ticker: Thread?
    private var stopped = false

    init(total: Int, quiet: Bool = false,
         terminal: Bool = isatty(2) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb") {
        self.total = total
        self.quiet = quiet
        self.terminal = terminal && !quiet
    }

    /// Redraws the bar twice a second so images/s and the ETA stay live during long images.
    func startTicker() {
        guard terminal else { return }
        let thread = Thread { [self] in
            while true {
                usleep(500_000)
                lock.lock()
                if stopped { lock.unlock(); return }
                drawBar()
                lock.unlock()
            }
        }
        ticker = thread
        thread.start()
    }

    /// An information line (not shown with --quiet).
    func log(_ message: String) {
        guard !quiet else { return }
        error(message)
    }

    /// A line shown also with --quiet: a failure, or what the user must know.
    func error(_ message: String) {
        lock.lock()
        defer { lock.unlock() }
        emit(message)
    }

    func record(_ o: BatchOutcome) {
        lock.lock()
        defer { lock.unlock() }
        tally.add(o)
        if quiet {
            if o.status == .failed { emit("failed: \(o.item.input): \(o.error ?? "")") }
        } else if terminal {
            if o.status == .failed { emit("failed: \(o.item.input): \(o.error ?? "")") }
            drawBar()
        } else {
            let n = String(tally.done).leftPad(String(total).count)
            var line = "[\(n)/\(total)] \(o.status.rawValue.leftPad(7, right: true)) \(o.item.relative)"
            switch o.status {
            case .ok: line += " -> \(o.item.output) (" + String(format: "%.2f", o.seconds) + " s)"
            case .failed: line += ": \(o.error ?? "")"
            default: break
            }
            emit(line)
        }
    }

    /// Clears the bar (before the summary).
    func finish() {
        lock.lock()
        defer { lock.unlock() }
        stopped = true
        if terminal && barShown { writeStderr("\r\u{1B}[K"); barShown = false }
    }

    var counts: BatchTally { lock.lock(); defer { lock.unlock() }; return tally }

    /// Prints a line, keeping the bar below it (called with the lock held).
    private func emit(_ line: String) {
        if terminal && barShown { writeStderr("\r\u{1B}[K") }
        writeStderr(line + "\n")
        if terminal && barShown { drawBar() }
    }

    private func drawBar() {
        let elapsed = Date().timeIntervalSince(start)
        let processed = tally.ok + tally.failed
        let rate = elapsed > 0 ? Double(processed) / elapsed : 0
        let remaining = total - tally.done
        let eta = rate > 0 ? Readable.duration(seconds: Double(remaining) / rate, .clock) : "--:--"
        let text = " \(tally.done)/\(total)  " + String(format: "%.2f", rate) + " img/s  ETA \(eta)  failed \(tally.failed)"
        var ws = winsize()
        let columns = ioctl(2, UInt(TIOCGWINSZ), &ws) == 0 && ws.ws_col > 0 ? Int(ws.ws_col) : 80
        let width = max(10, min(40, columns - text.count - 3))
        let filled = total > 0 ? width * tally.done / total : width
        let bar = "[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "]"
        writeStderr("\r\u{1B}[K" + bar + text)
        barShown = true
    }
}

extension String {
    func leftPad(_ n: Int, right: Bool = false) -> String {
        count >= n ? self : (right ? self + String(repeating: " ", count: n - count)
                                   : String(repeating: " ", count: n - count) + self)
    }
}

/// Unbuffered write to fd 2 (no shared FILE*, safe from any thread).
func writeStderr(_ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress! + offset, $0.count - offset) }
        if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
        offset += n
    }
}
