import Foundation
import Synchronization

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
        /// Multiply-adds ×2 of the direct convolution per `Phase`, summed: what the time did, for
        /// GFLOP/s (0 where not counted). A backward pass split into its parts counts them there.
        public var flops: [Double] = Array(repeating: 0, count: Phase.allCases.count)
    }

    /// The recording thread's id (`pthread_self`), 0 when off. One thread's: a step's layers
    /// run on the thread that calls `trainStep`, and the tests run trainers side by side,
    /// whose layers would otherwise land in another test's recording.
    private static let recorder = Atomic<UInt>(0)

    /// Whether layers on the calling thread are recorded.
    public static var enabled: Bool {
        let r = recorder.load(ordering: .relaxed)
        return r != 0 && r == UInt(pthread_self())
    }

    /// Records the layers run on the calling thread from now until `stopRecording()`.
    public static func startRecording() { recorder.store(UInt(pthread_self()), ordering: .relaxed) }

    public static func stopRecording() { recorder.store(0, ordering: .relaxed) }

    nonisolated(unsafe) private static var recorded: [Entry] = []
    nonisolated(unsafe) private static var slots: [Key: Int] = [:]
    /// Trainers on other threads (tests run side by side) may record at the same time.
    private static let lock = NSLock()

    /// In the order the layers were first recorded.
    public static var entries: [Entry] { lock.withLock { recorded } }

    public static func reset() { lock.withLock { recorded = []; slots = [:] } }

    /// A start time for `record`, or 0 when off.
    @inline(__always) static func start() -> Double { enabled ? now() : 0 }

    /// Adds the time since `t0` (from `start`) and `flops` to a layer's phase. `description`
    /// is only evaluated for a layer's first record.
    @inline(__always) static func record(_ key: @autoclosure () -> Key, _ phase: Phase, since t0: Double,
                                         _ description: @autoclosure () -> String, flops: @autoclosure () -> Double = 0) {
        guard enabled else { return }
        let dt = now() - t0, k = key(), f = flops()
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
            recorded[slot].flops[phase.rawValue] += f
        }
    }

    /// The entries as a table, in ms per step over `steps` steps and GFLOP/s (direct-convolution
    /// FLOPs over the time): one row per layer and a total per network and pass.
    public static func table(steps: Int) -> String {
        let n = Double(max(1, steps))
        func cell(_ seconds: Double, _ flops: Double) -> String {
            String(format: "%8.2f", seconds / n * 1000) + (flops > 0 && seconds > 0 ? String(format: " (%3.0f)", flops / seconds / 1e9) : "")
        }
        func cells(_ s: [Double], _ f: [Double], split: Bool) -> String {
            // A backward pass split into parts: its FLOPs are theirs.
            let backwardFlops = f[1] + f[2] + f[3]
            return "\(cell(s[0], f[0])) | \(cell(s[1], backwardFlops)) | " + (split ? "\(cell(s[2], f[2])) | \(cell(s[3], f[3])) |" : " | |")
        }
        var lines = ["| layer | pass | forward ms (GFLOP/s) | backward | of which weights | of which input |", "|---|---|---|---|---|---|"]
        var totals: [(pass: String, seconds: [Double], flops: [Double])] = []
        for e in entries {
            let pass = e.key.network == "G" ? "G" : "\(e.key.network) ×\(e.key.images)"
            if let i = totals.firstIndex(where: { $0.pass == pass }) {
                for p in Phase.allCases { totals[i].seconds[p.rawValue] += e.seconds[p.rawValue]; totals[i].flops[p.rawValue] += e.flops[p.rawValue] }
            } else {
                totals.append((pass, e.seconds, e.flops))
            }
            let split = e.seconds[Phase.weightGradient.rawValue] + e.seconds[Phase.inputGradient.rawValue] > 0
            lines.append("| \(e.description) | \(pass) | " + cells(e.seconds, e.flops, split: split))
        }
        for t in totals {
            lines.append("| **all layers** | \(t.pass) | " + cells(t.seconds, t.flops, split: true))
        }
        return lines.joined(separator: "\n")
    }
}
