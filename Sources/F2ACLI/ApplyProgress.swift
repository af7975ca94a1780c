import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The progress line of `f2a apply` on a terminal, redrawn in place on stderr from the
/// generator's progress callbacks: a tiled 12 MP photo is otherwise silent for 10 s.
/// Drawn only once a run has taken a quarter of a second, so quick runs print nothing.
final class ApplyProgress: @unchecked Sendable {
    private let enabled: Bool
    /// `writing` is called from libvips' worker threads.
    private let lock = NSLock()
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
        lock.lock(); defer { lock.unlock() }
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

    /// For pass 2 of streamed guided mode (the photo mapped while it is encoded): the fraction
    /// of its pixels mapped, from any thread. `destination`: a path, or "to standard output".
    func writing(to destination: String) -> @Sendable (Double) -> Void {
        show("writing \(destination)")
        return { [self] fraction in show("writing \(destination) \(Int((100 * fraction).rounded(.down))) %") }
    }

    /// Removes the line (before the command prints anything else, or ends).
    func clear() {
        lock.lock(); defer { lock.unlock() }
        guard !shown.isEmpty else { return }
        writeStderr("\r\u{1B}[K")
        shown = ""
    }
}
