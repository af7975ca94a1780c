import F2ACore
import F2ASynth
import F2AModel
import Foundation

/// Export of inference weights.
public enum Exporter {
    /// The generator's weights file from a checkpoint, or a verified copy of
    /// a weights file.
    public static func weightsFile(from path: String) throws(TrainError) -> WeightsFile {
        try read(path).weights
    }

    /// The generator's weights file from a checkpoint (with the checkpoint, whose run it
    /// describes), or a verified copy of a weights file (no checkpoint).
    public static func read(_ path: String) throws(TrainError) -> (weights: WeightsFile, checkpoint: Checkpoint?) {
        let file: WeightsFile
        do { file = try WeightsFile.read(path: path) } catch { throw .checkpoint(path: path, reason: "\(error)") }
        if case .string(let k) = file[config: "kind"], k == Checkpoint.kind {
            let ck = try Checkpoint.parse(file, path: path)
            return (try generator(from: ck, path: path).weightsFile(description: description(ck)), ck)
        }
        do { _ = try Generator(file: file) } catch { throw .checkpoint(path: path, reason: "neither a checkpoint nor a loadable weights file: \(error)") }
        return (file, nil)
    }

    /// What is wrong with exporting `ck` as a model, if anything: a checkpoint of step 0 is
    /// the initialisation, and a run whose best validation is at step 0 never improved on it.
    public static func warning(_ ck: Checkpoint) -> String? {
        let start = ck.config.initFrom.isEmpty ? "the random initialisation, untrained"
                                               : "the --init-from weights \(ck.config.initFrom), unchanged"
        if ck.step == 0 {
            return "this checkpoint is from step 0, before any training: the model is \(start)"
        }
        if ck.bestStep == 0 {
            return String(format: "the run's best validation PSNR (%.2f dB) is at step 0, before any training: ", ck.bestPSNR)
                + "its best-checkpoint and best.f2aw are \(start), and the trained steps validated worse"
        }
        return nil
    }

    public static func generator(from ck: Checkpoint, path: String) throws(TrainError) -> TrainableGenerator {
        let g = TrainableGenerator(config: try ck.config.generatorConfig)
        var adam = Adam(for: g.params)
        try Checkpoint.restore(ck.generator, adam: ck.generatorAdam, into: g.params, &adam, what: "generator", path: path)
        return g
    }

    static func description(_ ck: Checkpoint) -> String {
        let c = ck.config
        var s = "f2a-train step \(ck.step): width \(c.width), crop \(c.crop), batch \(c.batch), "
            + "\(c.reconstruction) x\(c.reconstructionWeight), adversarial \(c.discriminator) x\(c.adversarialWeight), "
            + "data \(c.data.map { ($0 as NSString).lastPathComponent }.joined(separator: "+"))"
        if ck.bestStep >= 0 { s += String(format: "; best validation %.2f dB at step %d", ck.bestPSNR, ck.bestStep) }
        return String(s.prefix(1000))
    }
}

/// Throughput benchmark on random pairs.
public enum BenchRunner {
    static func randomPair(_ w: Int, _ h: Int, seed: UInt64) -> ImagePair {
        var rng = SplitMix64(seed: seed)
        // Smooth random images: a few random gradients.
        var f = [Float](repeating: 0, count: w * h * 3), a = f
        let coef = (0..<12).map { _ in Float.random(in: -1...1, using: &rng) }
        for y in 0..<h {
            for x in 0..<w {
                let u = Float(x) / Float(w), v = Float(y) / Float(h)
                for c in 0..<3 {
                    let base = 0.5 + 0.3 * coef[c] * u + 0.3 * coef[c + 3] * v
                    f[(y * w + x) * 3 + c] = min(max(base, 0), 1)
                    a[(y * w + x) * 3 + c] = min(max(0.6 * base + 0.1 * coef[c + 6], 0), 1)
                }
            }
        }
        return ImagePair(name: "random\(seed)", width: w, height: h, flash: f, ambient: a)
    }

    public static func run(width: Double, crop: Int, batch: Int, steps: Int, discriminator: String, discWidth: Double) throws(TrainError) -> String {
        var c = TrainConfig()
        c.width = width; c.crop = crop; c.batch = batch; c.steps = steps + 1
        c.discriminator = discriminator; c.discWidth = discWidth; c.scaleMin = 1; c.scaleMax = 1.25
        let pairs = (0..<4).map { randomPair(320, 240, seed: UInt64($0)) }
        let t = try Trainer(config: c, train: pairs, validation: [], runDir: nil)
        _ = t.trainStep(t.source.batch(step: 0))
        var sum = StepStats()
        GemmProfile.reset()
        GemmProfile.enabled = true
        defer { GemmProfile.enabled = false }
        for s in 1...steps {
            let d0 = now()
            let b = t.source.batch(step: s)
            let dt = now() - d0
            var st = t.trainStep(b)
            st.data = dt
            sum.forward += st.forward; sum.backward += st.backward; sum.optimiser += st.optimiser; sum.data += st.data
        }
        GemmProfile.enabled = false
        let n = Double(steps)
        let gemmInStep = GemmProfile.totalSeconds / n, gemmFlops = GemmProfile.totalFlops / n
        let gemmAlone = GemmProfile.standaloneSeconds() / n
        let computeTime = (sum.forward + sum.backward + sum.optimiser) / n
        func ms(_ v: Double) -> String { String(format: "%.0f", v / n * 1000) }
        return "| \(width) | \(t.discriminator == nil ? "none" : "\(discriminator) \(discWidth)") | \(crop) | \(batch) | "
            + String(format: "%.2f", Double(batch) / computeTime) + " | " + String(format: "%.0f", computeTime * 1000)
            + " | \(ms(sum.forward)) | \(ms(sum.backward)) | \(ms(sum.optimiser)) | \(ms(sum.data)) | "
            + String(format: "%.1f | %.0f | %.0f | %.1f | %.0f %% | %.0f %% |", gemmFlops / 1e9, gemmInStep * 1000, gemmAlone * 1000,
                     gemmFlops / 1e9 / computeTime, 100 * gemmAlone / gemmInStep, 100 * gemmAlone / computeTime)
    }
}

/// Synthetic pairs from F2ASynth (issue 5), mixed into training batches.
public enum SynthSupport {
    /// Renders (and caches) pairs from a pool of `config.synthPool` seeds, at
    /// 1.25x the crop size in 4:3, so that the usual scale/crop/flip
    /// augmentation applies. Nil when `config.synthRatio` is 0.
    public static func provider(_ config: TrainConfig) throws(TrainError) -> (@Sendable (UInt64, Int) -> ImagePair)? {
        guard config.synthRatio > 0 else { return nil }
        guard let mode = FlashMode(rawValue: config.synthFlashMode) else {
            throw .config("synthFlashMode '\(config.synthFlashMode)' is not one of " + FlashMode.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let h = max(16, config.crop * 5 / 4), w = max(16, h * 4 / 3)
        let options = SynthOptions(width: w, height: h, flashMode: mode)
        do { try options.validate() } catch { throw .config("synthetic pairs: \(error)") }
        let cache = SynthCache(pool: max(1, config.synthPool), seed: config.seed, options: options)
        return { seed, _ in cache.pair(seed) }
    }
}

final class SynthCache: @unchecked Sendable {
    let pool: Int, seed: UInt64, options: SynthOptions
    var pairs: [Int: ImagePair] = [:]
    let lock = NSLock()

    init(pool: Int, seed: UInt64, options: SynthOptions) { self.pool = pool; self.seed = seed; self.options = options }

    func pair(_ draw: UInt64) -> ImagePair {
        let slot = Int(draw % UInt64(pool))
        lock.lock()
        if let p = pairs[slot] { lock.unlock(); return p }
        lock.unlock()
        let s = renderPair(seed: mix(seed ^ 0x53594E54, UInt64(slot)), options: options)
        let p = ImagePair(name: "synth\(slot)", width: s.width, height: s.height, flash: s.flash, ambient: s.ambient)
        lock.lock(); pairs[slot] = p; lock.unlock()
        return p
    }
}
