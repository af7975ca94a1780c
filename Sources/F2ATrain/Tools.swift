import CKernels
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

    /// What a benchmark trains: the options of `f2a-train train` that change the
    /// cost of a step. Everything else (learning rates, augmentation) is the default.
    public struct Setup: Sendable {
        public var width = 0.25
        /// nil: the same as `width`.
        public var decoderWidth: Double? = nil
        public var levels = 5
        public var freezeEncoderBlocks = 0
        public var formulation = "rgb"
        public var reconstruction = "l1"
        public var crop = 128
        public var batch = 8
        public var discriminator = "conditional"
        public var discWidth = 0.5
        public var discNorm = NormKind.instance

        public init() {}

        public var trainConfig: TrainConfig {
            var c = TrainConfig()
            c.width = width; c.decoderWidth = decoderWidth ?? 0; c.levels = levels
            c.freezeEncoderBlocks = freezeEncoderBlocks
            c.formulation = formulation; c.reconstruction = reconstruction
            c.crop = crop; c.batch = batch
            c.discriminator = discriminator; c.discWidth = discWidth; c.discNorm = discNorm
            c.scaleMin = 1; c.scaleMax = 1.25
            return c
        }
    }

    /// Per-step timings of one benchmark run.
    public struct Result: Sendable {
        public var setup: Setup
        public var hasDiscriminator: Bool
        /// Generator parameters, and those training changes (not in frozen blocks).
        public var parameters: Int
        public var trainableParameters: Int
        public var discriminatorParameters: Int
        /// Wall time of each timed `trainStep`.
        public var stepSeconds: [Double] = []
        /// Sums over the timed steps (`StepStats`; data is built inline, outside `stepSeconds`).
        public var forward = 0.0, backward = 0.0, optimiser = 0.0, data = 0.0
        /// Per step; nil unless GEMMs were profiled.
        public var gemm: (flops: Double, inStep: Double, alone: Double)?

        public var medianStepSeconds: Double {
            let s = stepSeconds.sorted()
            return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
        }

        /// Samples per second of the median step.
        public var samplesPerSecond: Double { Double(setup.batch) / medianStepSeconds }
    }

    /// A trainer for `setup` on random pairs (the augmentation scales them up to any crop).
    public static func trainer(_ setup: Setup, steps: Int) throws(TrainError) -> Trainer {
        var c = setup.trainConfig
        c.steps = steps + 1
        let pairs = (0..<4).map { randomPair(320, 240, seed: UInt64($0)) }
        return try Trainer(config: c, train: pairs, validation: [], runDir: nil)
    }

    /// One warm-up step, then `steps` timed steps. With `profileGemm`, every GEMM of
    /// the timed steps is recorded and the same GEMMs are then timed standalone (which
    /// runs the GEMMs one after another: the steps are slower). With `layerTimes`,
    /// `LayerTimes` holds the timed steps' layers afterwards.
    public static func run(_ setup: Setup, steps: Int, profileGemm: Bool, layerTimes: Bool = false) throws(TrainError) -> Result {
        let t = try trainer(setup, steps: steps)
        _ = t.trainStep(t.source.batch(step: 0))
        let scales = t.generatorLRScales, sizes = t.generator.params.values.map(\.count)
        var r = Result(setup: setup, hasDiscriminator: t.discriminator != nil, parameters: t.generator.params.count,
                       trainableParameters: zip(scales, sizes).reduce(0) { $0 + ($1.0 == 0 ? 0 : $1.1) },
                       discriminatorParameters: t.discriminator?.params.count ?? 0)
        GemmProfile.reset()
        GemmProfile.enabled = profileGemm
        LayerTimes.reset()
        if layerTimes { LayerTimes.startRecording() }
        defer { GemmProfile.enabled = false; if layerTimes { LayerTimes.stopRecording() } }
        for s in 1...max(1, steps) {
            let d0 = now()
            let b = t.source.batch(step: s)
            r.data += now() - d0
            let s0 = now()
            let st = t.trainStep(b)
            r.stepSeconds.append(now() - s0)
            r.forward += st.forward; r.backward += st.backward; r.optimiser += st.optimiser
        }
        GemmProfile.enabled = false
        if profileGemm {
            let n = Double(r.stepSeconds.count)
            r.gemm = (GemmProfile.totalFlops / n, GemmProfile.totalSeconds / n, GemmProfile.standaloneSeconds() / n)
        }
        return r
    }

    public static let tableHeader = """
        | G width | D | crop | batch | samples/s | step | forward | backward | optimiser | data | GEMM GFLOP/step | GEMM in step | GEMM alone | GFLOP/s (step) | GEMM alone / GEMM in step | GEMM alone / step |
        |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|
        """

    /// A row of `tableHeader`: means over the timed steps, in ms.
    public static func tableRow(_ r: Result) -> String {
        let s = r.setup, n = Double(r.stepSeconds.count)
        let computeTime = (r.forward + r.backward + r.optimiser) / n
        func ms(_ v: Double) -> String { String(format: "%.0f", v / n * 1000) }
        var widths = "\(s.width)"
        if let d = s.decoderWidth, d != s.width { widths += " / dec \(d)" }
        if s.freezeEncoderBlocks > 0 { widths += ", enc1–\(s.freezeEncoderBlocks) frozen" }
        var row = "| \(widths) | \(r.hasDiscriminator ? "\(s.discriminator) \(s.discWidth)" : "none") | \(s.crop) | \(s.batch) | "
            + String(format: "%.2f", Double(s.batch) / computeTime) + " | " + String(format: "%.0f", computeTime * 1000)
            + " | \(ms(r.forward)) | \(ms(r.backward)) | \(ms(r.optimiser)) | \(ms(r.data)) | "
        if let g = r.gemm {
            row += String(format: "%.1f | %.0f | %.0f | %.1f | %.0f %% | %.0f %% |", g.flops / 1e9, g.inStep * 1000, g.alone * 1000,
                          g.flops / 1e9 / computeTime, 100 * g.alone / g.inStep, 100 * g.alone / computeTime)
        } else {
            row += " |  |  |  |  |  |"
        }
        return row
    }

    /// One JSON object (one line) per run: what bench/train/bench_train.py reads.
    public static func json(_ r: Result) -> String {
        let s = r.setup, n = Double(r.stepSeconds.count)
        let object: [String: Any] = [
            "engine": "f2a-train",
            "width": s.width, "decoder_width": s.decoderWidth ?? s.width, "levels": s.levels,
            "freeze_encoder_blocks": s.freezeEncoderBlocks, "formulation": s.formulation, "reconstruction": s.reconstruction,
            "crop": s.crop, "batch": s.batch,
            "discriminator": r.hasDiscriminator ? s.discriminator : "none", "disc_width": s.discWidth, "disc_norm": s.discNorm.rawValue,
            "generator_parameters": r.parameters, "trainable_generator_parameters": r.trainableParameters,
            "discriminator_parameters": r.discriminatorParameters,
            "threads": ["conv": Conv2d.threadCount, "blas": blasThreadCount],
            "blas_kernels": BLASKernels.choice.description, "avx512": f2a_kernels_avx512() != 0,
            "step_ms": r.stepSeconds.map { ($0 * 1e6).rounded() / 1000 },
            "median_step_ms": r.medianStepSeconds * 1000,
            "samples_per_s": r.samplesPerSecond,
            "forward_ms": r.forward / n * 1000, "backward_ms": r.backward / n * 1000, "optimiser_ms": r.optimiser / n * 1000,
        ]
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }

    /// The generator (a weights file the library loads) and, when the setup has one, the
    /// discriminator of `setup` with their initial parameters, so that another framework can
    /// build the same networks from the names and shapes instead of a copy of the architecture.
    /// The discriminator's file has no loader here; its config entries give what the
    /// parameter shapes do not say: each conv's stride and padding, which layers are
    /// normalised and activated.
    public static func writeModels(_ setup: Setup, directory: String) throws -> [String] {
        let t = try trainer(setup, steps: 1)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let gPath = (directory as NSString).appendingPathComponent("generator.f2aw")
        try t.generator.weightsFile(description: "f2a-train bench: random initialisation").write(path: gPath)
        guard let d = t.discriminator else { return [gPath] }
        var entries: [(key: String, value: ConfigValue)] = [
            ("architecture", .string("patchgan")),
            ("input_channels", .int(Int64(d.inputChannels))),
            ("norm", .string(d.norm.rawValue)),
            ("leaky_relu_slope", .float(Double(PatchDiscriminator.slope))),
            ("layers", .int(Int64(d.layers.count))),
        ]
        for (i, l) in d.layers.enumerated() {
            entries += [("conv\(i).stride", .int(Int64(l.geometry.stride))), ("conv\(i).padding", .int(Int64(l.geometry.padding))),
                        ("conv\(i).norm", .int(l.norm ? 1 : 0)), ("conv\(i).activation", .int(l.activation ? 1 : 0))]
        }
        let tensors = d.params.names.map { (name: $0, tensor: d.params.tensor($0)) }
        let dPath = (directory as NSString).appendingPathComponent("discriminator.f2aw")
        try WeightsFile(config: entries, tensors: tensors).write(path: dPath)
        return [gPath, dPath]
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
