import Foundation

/// Optional accounting of where a training step's time goes, layer by layer
/// (`f2a-train bench --layers`): the wall time of each layer's forward pass and backward
/// pass, and of the two parts of a 3x3 convolution's backward pass, summed over the steps
/// recorded. Off by default; when off, a layer costs two branches.
///
/// Why: the layers of one step differ several-fold in time per FLOP (narrow full-resolution
/// layers, Winograd-domain layers of few tiles, the discriminator's stride-2 layers), and
/// which kernel to work on next follows from where the step's time goes, not from its
/// FLOPs. That used to take a scratch build with timers in it.
///
/// The times are wall time on the calling thread while the layer's kernels run on all
/// threads: they add up to the step's time less what runs between the layers (losses,
/// the optimiser).
public enum LayerTimes {
    public enum Phase: Int, Sendable, CaseIterable {
        case forward, backward
        /// Parts of `backward` for a 3x3 convolution of the generator: its weight (and bias)
        /// gradient, and its input gradient. Where no kernel computes the input gradient on
        /// its own (the im2col fallback), both are under `weightGradient`.
        case weightGradient, inputGradient
    }

    /// A layer in one kind of pass: the generator's, or the discriminator's on a batch of
    /// `images` (its update sees the fake and the real batch together, the generator's
    /// adversarial term the fake one alone).
    public struct Key: Hashable, Sendable {
        public var network: String
        public var images: Int
        public var index: Int
    }

    public struct Entry: Sendable {
        public var key: Key
        /// The layer's name and shape, e.g. "enc2.conv1 16 → 32 at 64×64".
        public var description: String
        /// Seconds per `Phase`, summed.
        public var seconds: [Double] = Array(repeating: 0, count: Phase.allCases.count)
    }

    nonisolated(unsafe) public static var enabled = false
    nonisolated(unsafe) private static var recorded: [Entry] = []
    nonisolated(unsafe) private static var slots: [Key: Int] = [:]
    /// Trainers on other threads (tests run side by side) may record at the same time.
    private static let lock = NSLock()

    /// In the order the layers were first recorded.
    public static var entries: [Entry] { lock.withLock { recorded } }

    public static func reset() { lock.withLock { recorded = []; slots = [:] } }

    /// A start time for `record`, or 0 when off.
    @inline(__always) static func start() -> Double { enabled ? now() : 0 }

    /// Adds the time since `t0` (from `start`) to a layer's phase. `description` is only
    /// evaluated for a layer's first record.
    @inline(__always) static func record(_ key: @autoclosure () -> Key, _ phase: Phase, since t0: Double,
                                         _ description: @autoclosure () -> String) {
        guard enabled else { return }
        let dt = now() - t0, k = key()
        lock.withLock {
            let slot: Int
            if let s = slots[k] {
                slot = s
            } else {
                slot = recorded.count
                slots[k] = slot
                recorded.append(Entry(key: k, description: description()))
            }
            recorded[slot].seconds[phase.rawValue] += dt
        }
    }

    /// The entries as a table, in ms per step over `steps` steps: one row per layer and a
    /// total per network and pass.
    public static func table(steps: Int) -> String {
        let n = Double(max(1, steps))
        func ms(_ s: Double) -> String { String(format: "%8.2f", s / n * 1000) }
        var lines = ["| layer | pass | forward | backward | of which weights | of which input |", "|---|---|---|---|---|---|"]
        var totals: [(pass: String, seconds: [Double])] = []
        for e in entries {
            let pass = e.key.network == "G" ? "G" : "\(e.key.network) ×\(e.key.images)"
            if let i = totals.firstIndex(where: { $0.pass == pass }) {
                for p in Phase.allCases { totals[i].seconds[p.rawValue] += e.seconds[p.rawValue] }
            } else {
                totals.append((pass, e.seconds))
            }
            let s = e.seconds
            let split = s[Phase.weightGradient.rawValue] + s[Phase.inputGradient.rawValue] > 0
            lines.append("| \(e.description) | \(pass) | \(ms(s[0])) | \(ms(s[1])) | "
                         + (split ? "\(ms(s[2])) | \(ms(s[3])) |" : " | |"))
        }
        for t in totals {
            lines.append("| **all layers** | \(t.pass) | \(ms(t.seconds[0])) | \(ms(t.seconds[1])) | \(ms(t.seconds[2])) | \(ms(t.seconds[3])) |")
        }
        return lines.joined(separator: "\n")
    }
}
