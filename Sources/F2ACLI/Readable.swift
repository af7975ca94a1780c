import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Numbers as people read them in messages: three significant digits and a unit
/// (`37.5 ms`, `1.77 GFLOP`), never the nine digits of a Double or a Duration.
enum Readable {
    /// `value` with `digits` significant digits, without an exponent: 1.769996288 → "1.77",
    /// 37.548 → "37.5", 110.4 → "110", 0.012345 → "0.0123", 123456 → "123456".
    static func significant(_ value: Double, digits: Int = 3) -> String {
        guard value.isFinite, value != 0 else { return value.isFinite ? "0" : "\(value)" }
        let magnitude = Int(floor(log10(abs(value))))
        let decimals = max(0, digits - 1 - magnitude)
        return String(format: "%.\(decimals)f", value)
    }

    /// 0.037548533 → "37.5 ms", 1.5 → "1.50 s", 75.2 → "1 min 15 s".
    static func seconds(_ s: Double) -> String {
        if s < 1 { return significant(s * 1000) + " ms" }
        if s < 60 { return significant(s) + " s" }
        let whole = Int(s.rounded())
        return whole < 3600 ? "\(whole / 60) min \(whole % 60) s" : "\(whole / 3600) h \(whole / 60 % 60) min"
    }

    static func duration(_ d: Duration) -> String {
        let (s, attoseconds) = d.components
        return seconds(Double(s) + Double(attoseconds) * 1e-18)
    }
}

/// The progress line of `f2a apply` on a terminal, redrawn in place on stderr from the
/// generator's progress callbacks: a tiled 12 MP photo is otherwise silent for 10 s.
/// Drawn only once a run has taken a quarter of a second, so quick runs print nothing.
final class ApplyProgress {
    private let enabled: Bool
    private let clock = ContinuousClock()
    private let start: ContinuousClock.Instant
    private var shown = ""

    /// Progress goes to stderr when it is a terminal that can redraw a line.
    static var stderrIsTerminal: Bool {
        isatty(2) != 0 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
    }

    init(enabled: Bool) {
        self.enabled = enabled
        start = clock.now
    }

    /// Shows `stage` ("running the model 45 %") with the time since the start.
    func show(_ stage: String) {
        guard enabled else { return }
        let elapsed = clock.now - start
        guard elapsed > .milliseconds(250) else { return }
        let seconds = elapsed.components.seconds
        let text = "f2a apply: \(stage)" + (seconds >= 1 ? " (\(seconds) s)" : "")
        guard text != shown else { return }
        writeStderr("\r\u{1B}[K" + text)
        shown = text
    }

    /// For reading the photo's rows (pass 1 of guided mode): never cancels.
    func reading(_ fraction: Double) -> Bool {
        show("reading the image \(Int((100 * fraction).rounded(.down))) %")
        return true
    }

    /// For `Generator.apply(progress:)`: never cancels.
    func model(_ fraction: Double) -> Bool {
        show("running the model \(Int((100 * fraction).rounded(.down))) %")
        return true
    }

    /// Removes the line (before the command prints anything else, or ends).
    func clear() {
        guard !shown.isEmpty else { return }
        writeStderr("\r\u{1B}[K")
        shown = ""
    }
}
