import ArgumentParser
import CToolStartup
import F2ACore
import F2AImage
import F2AModel
import F2ATrain
import Foundation

nonisolated(unsafe) var stopRequested: sig_atomic_t = 0

func installStopHandlers() {
    let handler: @convention(c) (Int32) -> Void = { _ in stopRequested = 1 }
    signal(SIGINT, handler)
    signal(SIGTERM, handler)
}

func log(_ s: String) {
    print(s)
    fflush(nil)
}

func warn(_ s: String) {
    fflush(nil)
    FileHandle.standardError.write(Data("warning: \(s)\n".utf8))
}

/// A refusal before anything is written (exit status 2, as in f2a): the never-overwrite rule,
/// kept by the same helper as f2a (ProtectedInputs).
struct Refusal: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Runs a command: a Refusal is "Error: <message>" and exit status 2, a Foundation file error
/// "Error: PATH: reason" and status 1; the rest goes to ArgumentParser as before.
func withExitStatus(_ body: () throws -> Void) throws {
    func fail(_ message: String, _ status: Int32) -> ExitCode {
        FileHandle.standardError.write(Data("Error: \(message)\n".utf8))
        return ExitCode(status)
    }
    do {
        try body()
    } catch let refusal as Refusal {
        throw fail(refusal.description, 2)
    } catch let error as InputOverwrite {
        throw fail(error.description, 2)
    } catch let error as CocoaError {
        throw fail(errorSentence(error), 1)
    }
}

/// The image files of the pairs in `dirs` (a directory that cannot be read adds none: loading
/// the data reports it).
func pairImages(in dirs: [String]) -> [String] {
    dirs.flatMap { dir in ((try? PairDiscovery.find(in: dir)) ?? []).flatMap { [$0.flash, $0.ambient] } }
}

/// Refuses `out` when it is, or lies inside, one of `dirs` (what a data directory holds is input).
func refuseInside(_ out: String, _ dirs: [String], what: String) throws(Refusal) {
    for dir in dirs where Paths.isPhysicallyWithin(out, dir) {
        throw Refusal("refusing to write \(what) \(out) into the data directory \(dir)"
                      + (Paths.physical(out) == Paths.physical(dir) ? "" : " (it lies inside it)")
                      + ": give a directory outside the data")
    }
}

@main
struct F2ATrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "f2a-train",
        abstract: "Train the flash-to-ambient generator (pix2pix: U-Net/VGG-16 + PatchGAN) on CPU.",
        version: Flash2AmbientVersion.string,
        subcommands: [Train.self, Export.self, Bench.self, AsShot.self],
        defaultSubcommand: Train.self)
}

/// The defaults every option of `train` falls back to: TrainConfig's, its one owner.
private let defaults = TrainConfig()

/// Help text that shows the default the way ArgumentParser does for non-optional options:
/// train's options are optional so that a --config file can set what the command line leaves out.
private func defaulted(_ text: String, _ value: Any) -> ArgumentHelp {
    ArgumentHelp("\(text) (default: \(value))")
}

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train (the default subcommand).",
        discussion: """
            Data directories hold pairs as flash/NAME.png + ambient/NAME.png or NAME_flash.png + \
            NAME_ambient.png. Pairs whose NAME is in the validation list (default: the 6 faid32 names \
            in data/faid32-split.md) are never trained on. RUNDIR receives checkpoint, best-checkpoint, \
            best.f2aw, log.jsonl, validation.csv, loss-curve.png and samples.png. Options given on the \
            command line override a --config JSON file, which overrides the defaults.
            """)

    @Option(name: .customLong("data"), help: "Pair directory (repeatable).") var data: [String] = []
    @Option(help: "Run directory.") var out: String
    @Option(help: "JSON file with any TrainConfig keys.") var config: String?
    @Flag(help: "Continue from RUNDIR/checkpoint.") var resume = false
    @Option(help: defaulted("Warm-start the generator from an exported weights file.", "none: random, by --init-g"))
    var initFrom: String?

    @Option(help: defaulted("Generator width (1.0 = VGG-16); the encoder's width when --decoder-width is given.", defaults.width))
    var width: Double?
    @Option(help: defaulted("Decoder width.", "the same as --width")) var decoderWidth: Double?
    @Option(help: defaulted("Encoder levels, 1 to 5.", defaults.levels)) var levels: Int?
    @Option(help: defaulted("transpose or unpool.", defaults.upsample)) var upsample: String?
    @Option(help: defaulted("sigmoid or tanh.", defaults.activation)) var activation: String?
    @Option(help: defaulted("rgb or ratio-log.", defaults.formulation)) var formulation: String?
    @Option(help: defaulted("Generator init: he or normal.", defaults.initG.rawValue)) var initG: String?
    @Option(help: defaulted("Scale of the final conv's initial weights (0: a ratio-log model starts at the identity).",
                            defaults.initFinalScale))
    var initFinalScale: Double?
    @Option(help: defaulted("Encoder blocks 1 to N keep their initial weights (e.g. from --init-from).",
                            defaults.freezeEncoderBlocks))
    var freezeEncoderBlocks: Int?
    @Option(help: defaulted("Learning-rate multiplier of the encoder blocks that are not frozen.", defaults.encoderLRScale))
    var encoderLrScale: Double?
    @Option(help: defaulted("Longer side after the initial resize (0: none).", defaults.resize)) var resize: Int?
    @Option(help: defaulted("Crop size.", defaults.crop)) var crop: Int?
    @Option(help: defaulted("Random scale range, min.", defaults.scaleMin)) var scaleMin: Double?
    @Option(help: defaulted("Random scale range, max.", defaults.scaleMax)) var scaleMax: Double?
    @Flag(help: defaulted("Disable horizontal flips.", defaults.flip ? "flips on" : "flips off")) var noFlip = false
    @Option(help: defaulted("Random exposure change of both images of a sample, ± stops in linear light.", defaults.exposureJitter)) var exposureJitter: Double?
    @Option(help: defaulted("Random gain per colour channel of both images (white balance), ± stops.", defaults.colourJitter)) var colourJitter: Double?
    @Flag(help: defaulted("Train towards ambient images scaled to the flash image's exposure (validation keeps the real ones).",
                          defaults.matchExposure ? "on" : "off"))
    var matchExposure = false
    @Option(help: defaulted("Batch size.", defaults.batch)) var batch: Int?
    @Option(help: defaulted("Total optimisation steps.", defaults.steps)) var steps: Int?
    @Option(help: "Total epochs over the training pairs (alternative to --steps).") var epochs: Double?
    @Option(help: defaulted("Generator learning rate.", defaults.lrG)) var lrG: Double?
    @Option(help: defaulted("Discriminator learning rate.", defaults.lrD)) var lrD: Double?
    @Option(help: defaulted("Adam beta1.", defaults.beta1)) var beta1: Double?
    @Option(help: defaulted("Fraction of the steps after which learning rates decay linearly to 0.", defaults.decayFrom))
    var decayFrom: Double?
    @Option(help: defaulted("conditional, unconditional or none.", defaults.discriminator)) var discriminator: String?
    @Option(help: defaulted("Discriminator width (base filters 64·w).", defaults.discWidth)) var discWidth: Double?
    @Option(help: defaulted("Discriminator norm: instance, batch or none.", defaults.discNorm.rawValue)) var discNorm: String?
    @Option(help: defaulted("l1 or attention-l1 (rgb: on the image; ratio-log: MSE on the log ratio either way), "
                            + "mse (on the output image) or exposure-free-mse (the same after the best gain per sample).", defaults.reconstruction))
    var reconstruction: String?
    @Option(help: defaulted("Weight of the reconstruction loss (pix2pix λ = 100).", defaults.reconstructionWeight))
    var recWeight: Double?
    @Option(help: defaulted("Weight of an added exposure-free squared error on 8x8 block means (with --reconstruction "
                            + "exposure-free-mse; 0: none).", defaults.coarseReconstructionWeight))
    var coarseWeight: Double?
    @Option(help: defaulted("Weight of the adversarial loss (0 disables the discriminator).", defaults.adversarialWeight))
    var advWeight: Double?
    @Flag(help: defaulted("Multiply the discriminator's image input by the attention map.",
                          defaults.attentionToDiscriminator ? "on" : "off"))
    var attentionToDiscriminator = false
    @Option(help: defaulted("Fraction of synthetic (F2ASynth) samples.", defaults.synthRatio)) var synthRatio: Double?
    @Option(help: defaulted("Distinct synthetic pairs (rendered once, cached).", defaults.synthPool)) var synthPool: Int?
    @Option(help: defaulted("Synthetic flash images: only, as-shot or mix.", defaults.synthFlashMode)) var synthFlashMode: String?
    @Option(help: defaulted("Fraction of real-pair samples whose flash-only input is recomposed as a camera records it "
                            + "(ambient + flash, exposure, clipping, noise).", defaults.asShotRatio))
    var asShotRatio: Double?
    @Option(help: defaulted("Comma-separated validation pair names.", defaults.valNames.joined(separator: ",")))
    var valNames: String?
    @Option(help: defaulted("Random seed.", defaults.seed)) var seed: UInt64?
    @Option(help: defaulted("Progress line interval (steps).", defaults.logEvery)) var logEvery: Int?
    @Option(help: defaulted("Checkpoint interval (steps).", defaults.checkpointEvery)) var checkpointEvery: Int?
    @Option(help: defaulted("Validation interval (steps).", defaults.validateEvery)) var validateEvery: Int?
    @Option(help: defaulted("OpenBLAS threads.", "one per core")) var threads: Int?

    func apply(to c: inout TrainConfig) throws {
        if !data.isEmpty { c.data = data.map { ($0 as NSString).standardizingPath } }
        if let width { c.width = width }
        if let decoderWidth { c.decoderWidth = decoderWidth }
        if let levels { c.levels = levels }
        if let upsample { c.upsample = upsample }
        if let activation { c.activation = activation }
        if let formulation { c.formulation = formulation }
        if let initG { guard let s = InitScheme(rawValue: initG) else { throw ValidationError("--init-g: he or normal") }; c.initG = s }
        if let initFinalScale { c.initFinalScale = initFinalScale }
        if let freezeEncoderBlocks { c.freezeEncoderBlocks = freezeEncoderBlocks }
        if let initFrom { c.initFrom = Paths.absolute(initFrom) }
        if let encoderLrScale { c.encoderLRScale = encoderLrScale }
        if let resize { c.resize = resize }
        if let crop { c.crop = crop }
        if let scaleMin { c.scaleMin = scaleMin }
        if let scaleMax { c.scaleMax = scaleMax }
        if noFlip { c.flip = false }
        if let exposureJitter { c.exposureJitter = exposureJitter }
        if let colourJitter { c.colourJitter = colourJitter }
        if matchExposure { c.matchExposure = true }
        if let batch { c.batch = batch }
        if let steps { c.steps = steps }
        if let lrG { c.lrG = lrG }
        if let lrD { c.lrD = lrD }
        if let beta1 { c.beta1 = beta1 }
        if let decayFrom { c.decayFrom = decayFrom }
        if let discriminator { c.discriminator = discriminator }
        if let discWidth { c.discWidth = discWidth }
        if let discNorm { guard let n = NormKind(rawValue: discNorm) else { throw ValidationError("--disc-norm: instance, batch or none") }; c.discNorm = n }
        if let reconstruction { c.reconstruction = reconstruction }
        if let recWeight { c.reconstructionWeight = recWeight }
        if let coarseWeight { c.coarseReconstructionWeight = coarseWeight }
        if let advWeight { c.adversarialWeight = advWeight }
        if attentionToDiscriminator { c.attentionToDiscriminator = true }
        if let synthRatio { c.synthRatio = synthRatio }
        if let synthPool { c.synthPool = synthPool }
        if let synthFlashMode { c.synthFlashMode = synthFlashMode }
        if let asShotRatio { c.asShotRatio = asShotRatio }
        if let valNames { c.valNames = valNames.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
        if let seed { c.seed = seed }
        if let logEvery { c.logEvery = logEvery }
        if let checkpointEvery { c.checkpointEvery = checkpointEvery }
        if let validateEvery { c.validateEvery = validateEvery }
    }

    /// What a run writes into RUNDIR (Trainer and this command).
    static let runFiles = ["checkpoint", "best-checkpoint", "best.f2aw", "log.jsonl", "validation.csv",
                           "loss-curve.png", "samples.png", "config.json"]

    func run() throws { try withExitStatus(work) }

    func work() throws {
        if let threads { blasThreadCount = threads }
        f2a_retain_freed_blocks()
        let fm = FileManager.default
        let ckPath = (out as NSString).appendingPathComponent("checkpoint")
        var cfg = TrainConfig()
        var checkpoint: Checkpoint? = nil
        if resume, fm.fileExists(atPath: ckPath) {
            let ck = try Checkpoint.read(path: ckPath)
            checkpoint = ck
            cfg = ck.config
            // Only the length of the run and the bookkeeping may change on resume.
            if let steps { cfg.steps = steps }
            if let logEvery { cfg.logEvery = logEvery }
            if let checkpointEvery { cfg.checkpointEvery = checkpointEvery }
            if let validateEvery { cfg.validateEvery = validateEvery }
            log("resuming \(ckPath) at step \(ck.step)")
        } else {
            if resume { log("no checkpoint in \(out): starting a new run") }
            if let config {
                let text: String
                do { text = try String(contentsOfFile: config, encoding: .utf8) } catch {
                    throw TrainError.config("cannot read \(config): \(errorReason(error))")
                }
                cfg = try TrainConfig.merging(cfg, jsonObject: text, source: config)
            }
            try apply(to: &cfg)
        }
        // Never over an input: the run directory is not a data directory, and no file the run
        // writes is a pair image, the --config file or the --init-from weights (resuming
        // rewrites the run's own checkpoint by design).
        try refuseInside(out, cfg.data, what: "the run")
        let inputs = ProtectedInputs(pairImages(in: cfg.data) + [config, cfg.initFrom].compactMap { $0 }.filter { !$0.isEmpty })
        for name in Self.runFiles { try inputs.check(output: (out as NSString).appendingPathComponent(name)) }
        try fm.createDirectory(atPath: out, withIntermediateDirectories: true)
        let (train, val) = try Trainer.loadData(cfg, log: log)
        if let epochs, checkpoint == nil {
            cfg.steps = Int((epochs * Double(train.count) / Double(cfg.batch)).rounded(.up))
        }
        let trainer = try Trainer(config: cfg, train: train, validation: val, runDir: out, synthetic: try SynthSupport.provider(cfg))
        if let checkpoint { try trainer.restore(from: checkpoint, path: ckPath) }
        else if !cfg.initFrom.isEmpty {
            let file = try WeightsFile.read(path: cfg.initFrom)
            try trainer.generator.load(file)
            log("generator initialised from \(cfg.initFrom)")
        }
        try (cfg.json + "\n").write(toFile: (out as NSString).appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
        let gc = try cfg.generatorConfig
        log("generator: \(gc.summary), \(trainer.generator.params.count) parameters; "
            + (trainer.discriminator.map { "discriminator: \(cfg.discriminator) PatchGAN, \($0.params.count) parameters" } ?? "no discriminator"))
        log("training \(cfg.steps) steps, batch \(cfg.batch), crop \(cfg.crop), \(String(format: "%.1f", trainer.source.epoch(afterSteps: cfg.steps))) epochs, OpenBLAS threads \(blasThreadCount), kernels \(BLASKernels.choice.description)")
        installStopHandlers()
        if trainer.step == 0 { try trainer.validateAndReport(log: log) }
        try trainer.run(shouldStop: { stopRequested != 0 }, log: log)
        log("checkpoint written to \(ckPath) at step \(trainer.step); best validation PSNR \(String(format: "%.2f", trainer.bestPSNR)) dB at step \(trainer.bestStep)")
        if trainer.bestStep == 0 && trainer.step > 0 {
            let start = cfg.initFrom.isEmpty ? "the random initialisation, untrained" : "the --init-from weights, unchanged"
            warn("the best validation (\(String(format: "%.2f", trainer.bestPSNR)) dB) is at step 0, before any training: "
                 + "\(out)/best-checkpoint and best.f2aw are \(start). Train longer, or export \(out) "
                 + "(the last step) knowing it validated worse.")
        }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the inference weights file of a checkpoint.",
        discussion: "SOURCE is a run directory (its checkpoint), a checkpoint file, or a weights file (re-encoded).")

    @Argument(help: "Run directory, checkpoint or weights file.") var source: String
    @Argument(help: "Output weights file (.f2aw).") var output: String
    @Flag(help: "Store tensors as float16.") var f16 = false

    func run() throws { try withExitStatus(work) }

    func work() throws {
        var path = source
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            path = (path as NSString).appendingPathComponent("checkpoint")
        }
        let (file, checkpoint) = try Exporter.read(path)
        // Never over an input: the source, its run's checkpoints, the run's pair images or the
        // weights it started from.
        var inputs = ProtectedInputs([path])
        if let checkpoint {
            let run = (path as NSString).deletingLastPathComponent
            for name in ["checkpoint", "best-checkpoint"] where FileManager.default.fileExists(atPath: run + "/" + name) {
                inputs.add(run + "/" + name)
            }
            for image in pairImages(in: checkpoint.config.data) { inputs.add(image) }
            if !checkpoint.config.initFrom.isEmpty { inputs.add(checkpoint.config.initFrom) }
        }
        try inputs.check(output: output)
        if let checkpoint, let warning = Exporter.warning(checkpoint) { warn(warning) }
        try file.write(path: output, dtype: f16 ? .f16 : .f32)
        let g = try Generator(file: try WeightsFile.read(path: output))
        print("wrote \(output) (\(f16 ? "f16" : "f32")): \(g.config.summary)")
    }
}

struct AsShot: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "as-shot",
        abstract: "Write flash photos as a camera records them, composed from flash-only pairs (for evaluation).",
        discussion: """
            For every pair of DIR (flash/NAME + ambient/NAME, FAID's flash-only convention) writes \
            OUT/flash/NAME.png, the flash photo as shot (ambient + flash in linear light, exposure \
            normalised, clipped, with sensor noise: the composition training uses with \
            --as-shot-ratio, at the middle of its ambient-share and exposure ranges unless --random), \
            and OUT/ambient/NAME.png, the ambient image. `f2a eval --pairs OUT` then scores a model \
            on real-looking flash photos.
            """)

    @Option(help: "Directory with flash/ and ambient/ subdirectories.") var pairs: String
    @Option(help: "Output directory.") var out: String
    @Option(help: "Longer side after resizing (0: original size).") var resize = 0
    @Flag(help: "Draw each pair's ambient share and exposure at random (seeded) instead of the middle of the ranges.") var random = false
    @Option(help: "Random seed (noise, and the draws with --random).") var seed: UInt64 = 1

    func run() throws { try withExitStatus(work) }

    func work() throws {
        let composition = AsShotComposition()
        // Never over an input: OUT is not DIR or inside it, and no output is one of its images.
        try refuseInside(out, [pairs], what: "the as-shot pairs")
        let found = try PairDiscovery.find(in: pairs)
        let inputs = ProtectedInputs(found.flatMap { [$0.flash, $0.ambient] })
        for files in found {
            for dir in ["flash", "ambient"] { try inputs.check(output: "\(out)/\(dir)/\(files.name).png") }
        }
        for dir in ["flash", "ambient"] {
            try FileManager.default.createDirectory(atPath: (out as NSString).appendingPathComponent(dir), withIntermediateDirectories: true)
        }
        for files in found {
            let pair = try PairDiscovery.load(files, resizeLong: resize)
            // Seeded by the name, so a pair gets the same composite in any directory.
            let nameHash = files.name.utf8.reduce(UInt64(0xCBF2_9CE4_8422_2325)) { ($0 ^ UInt64($1)) &* 0x100_0000_01B3 }
            var rng = SplitMix64(seed: seed ^ nameHash)
            var draw = composition.draw(&rng)
            if !random {
                draw.share = (composition.shareMin + composition.shareMax) / 2
                draw.exposure = (composition.exposureMin + composition.exposureMax) / 2
            }
            let shot = composition.compose(pair, draw)
            try saveRGB8(shot.flash, width: shot.width, height: shot.height, to: "\(out)/flash/\(files.name).png")
            try saveRGB8(shot.ambient, width: shot.width, height: shot.height, to: "\(out)/ambient/\(files.name).png")
            print(String(format: "%@: ambient share %.2f, exposure %.3f", files.name, draw.share, draw.exposure))
        }
    }
}

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure training throughput on random data.",
        discussion: """
            One warm-up step, then --steps timed steps per width. The table gives means per step; \
            --json prints one JSON object per width instead (each step's wall time, the median, \
            samples/s of the median step) and skips the GEMM profiling. bench/train/bench_train.py \
            (make bench-train) compares this with PyTorch.
            """)

    @Option(help: "Generator widths (the encoder's when --decoder-width is given).") var width: [Double] = [1.0, 0.5, 0.25]
    @Option(help: "Decoder width (default: the same as --width).") var decoderWidth: Double?
    @Option(help: "Encoder levels, 1 to 5.") var levels = 5
    @Option(help: "Encoder blocks 1...N frozen (as f2a-train train --freeze-encoder-blocks).") var freezeEncoderBlocks = 0
    @Option(help: "rgb or ratio-log.") var formulation = "rgb"
    @Option(help: "l1, attention-l1, mse or exposure-free-mse (as f2a-train train).") var reconstruction = "l1"
    @Option var crop = 128
    @Option var batch = 8
    @Option(help: "Timed steps per width (after one warm-up step).") var steps = 3
    @Option(help: "conditional, unconditional or none.") var discriminator = "conditional"
    @Option var discWidth = 0.5
    @Option(help: "OpenBLAS threads.") var threads: Int?
    @Flag(help: "One JSON line per width instead of the table.") var json = false
    @Flag(help: "After each table row, every GEMM shape of the timed steps: calls and time per step, slowest first.") var gemmShapes = false
    @Flag(help: ArgumentHelp("After each table row, the time and GFLOP/s of every layer per step: forward, backward, and a 3x3 convolution's weight and input gradients.",
                             discussion: "Skips the GEMM profiling, which would run the side-by-side GEMMs one after another."))
    var layers = false
    @Option(help: ArgumentHelp("Write DIR/generator.f2aw (and DIR/discriminator.f2aw) with the initial parameters of this setup, then stop.",
                               discussion: "For bench/train/bench_train.py, which builds the same networks in PyTorch from them. Needs a single --width."))
    var writeModels: String?

    func validate() throws {
        guard steps >= 1 else { throw ValidationError("--steps must be at least 1") }
        guard writeModels == nil || width.count == 1 else { throw ValidationError("--write-models needs a single --width") }
        guard !(layers && (json || gemmShapes)) else { throw ValidationError("--layers goes with the table alone (not --json or --gemm-shapes)") }
    }

    func setup(width w: Double) -> BenchRunner.Setup {
        var s = BenchRunner.Setup()
        s.width = w; s.decoderWidth = decoderWidth; s.levels = levels; s.freezeEncoderBlocks = freezeEncoderBlocks
        s.formulation = formulation; s.reconstruction = reconstruction
        s.crop = crop; s.batch = batch; s.discriminator = discriminator; s.discWidth = discWidth
        return s
    }

    func run() throws {
        if let threads { blasThreadCount = threads }
        f2a_retain_freed_blocks()
        if let writeModels {
            for path in try BenchRunner.writeModels(setup(width: width[0]), directory: writeModels) { print("wrote \(path)") }
            return
        }
        if !json {
            print("Times per step in ms; data is built on a background thread during training (shown: its cost when built inline).")
            if !layers {
                print("GEMM in step: time inside sgemm during the steps; GEMM alone: the same calls timed standalone (median of 3).")
            }
            print("OpenBLAS kernels: \(BLASKernels.choice.description), threads \(blasThreadCount).")
            print(BenchRunner.tableHeader)
        }
        for w in width {
            let r = try BenchRunner.run(setup(width: w), steps: steps, profileGemm: !json && !layers, layerTimes: layers)
            log(json ? BenchRunner.json(r) : BenchRunner.tableRow(r))
            if layers {
                let step = r.stepSeconds.reduce(0, +) / Double(r.stepSeconds.count)
                log("\nPer layer, ms per step (wall time of the calling thread, mean of \(r.stepSeconds.count) steps of "
                    + String(format: "%.1f ms", step * 1000) + "; the rest of a step is losses, the optimiser and data):\n")
                log(LayerTimes.table(steps: r.stepSeconds.count) + "\n")
            }
            if gemmShapes && !json {
                let n = Double(r.stepSeconds.count)
                for (shape, v) in GemmProfile.calls.sorted(by: { $0.value.seconds > $1.value.seconds }) {
                    let flops = 2 * Double(shape.m * shape.n * shape.k) * Double(v.count)
                    log("  " + (shape.transA ? "Aᵀ" : "A ") + (shape.transB ? "Bᵀ" : "B ")
                        + String(format: " m %5d n %6d k %5d beta %.0f: %4.1f calls, %7.1f ms, %6.1f GFLOP/s per step",
                                 shape.m, shape.n, shape.k, shape.beta,
                               Double(v.count) / n, v.seconds / n * 1000, flops / v.seconds / 1e9))
                }
            }
        }
    }
}
