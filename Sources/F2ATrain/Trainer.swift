import F2ACore
import F2AImage
import F2AModel
import Foundation

/// Losses and timings of one step.
public struct StepStats: Sendable {
    public var reconstruction = 0.0
    public var adversarial = 0.0
    public var discriminator = 0.0
    public var forward = 0.0
    public var backward = 0.0
    public var optimiser = 0.0
    public var data = 0.0
}

/// Validation result: means over the validation split.
public struct Validation: Sendable {
    public var step: Int
    public var psnr: Double
    public var ssim: Double
    public var identityPSNR: Double
    public var identitySSIM: Double
    /// Exposure-aligned PSNR (`Metrics.exposureAlignedPSNR`) of the model and of the identity.
    public var ea = 0.0
    public var identityEA = 0.0
    public var count: Int
    /// (flash, generated, ambient, width, height) per pair.
    public var images: [([Float], [Float], [Float], Int, Int)]
    /// (name, PSNR, SSIM) per pair.
    public var perPair: [(String, Double, Double)] = []
}

@inline(__always) func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) * 1e-9
}

/// The pix2pix training loop for the U-Net/VGG-16 generator.
public final class Trainer: @unchecked Sendable {
    public let config: TrainConfig
    public let generator: TrainableGenerator
    public let discriminator: PatchDiscriminator?
    public var adamG: Adam
    /// Learning-rate multiplier of each generator parameter (0 = frozen).
    public let generatorLRScales: [Float]
    public var adamD: Adam?
    public private(set) var step = 0
    public var bestPSNR = -Double.infinity
    public var bestStep = -1
    public let source: BatchSource
    public let validationPairs: [ImagePair]
    public let runDir: String?
    var identity: (psnr: Double, ssim: Double, ea: Double)?
    var history: [(step: Int, rec: Double, adv: Double, d: Double)] = []
    var valHistory: [(step: Int, psnr: Double)] = []

    /// A trainer on in-memory pairs. `runDir` nil disables files (tests).
    public init(config: TrainConfig, train: [ImagePair], validation: [ImagePair], runDir: String?,
                synthetic: (@Sendable (UInt64, Int) -> ImagePair)? = nil) throws(TrainError) {
        try config.validate()
        self.config = config
        let gc = try config.generatorConfig
        generator = TrainableGenerator(config: gc, frozenEncoderBlocks: config.freezeEncoderBlocks)
        generator.initialise(config.initG, seed: config.seed &+ 11)
        if config.initFinalScale != 1 {
            let i = generator.params.id("final.weight")
            for j in generator.params.values[i].indices { generator.params.values[i][j] *= Float(config.initFinalScale) }
        }
        if config.discriminator != "none" && config.adversarialWeight > 0 {
            let d = PatchDiscriminator(inputChannels: config.discriminator == "conditional" ? 6 : 3,
                                       width: config.discWidth, norm: config.discNorm)
            d.initialise(config.initD, seed: config.seed &+ 23)
            discriminator = d
            adamD = Adam(for: d.params, beta1: Float(config.beta1), beta2: Float(config.beta2))
        } else {
            discriminator = nil
        }
        adamG = Adam(for: generator.params, beta1: Float(config.beta1), beta2: Float(config.beta2))
        generatorLRScales = Self.learningRateScales(names: generator.params.names, config: config)
        source = try BatchSource(pairs: train, batchSize: config.batch,
                                 augmentation: Augmentation(crop: config.crop, scaleMin: config.scaleMin, scaleMax: config.scaleMax, flip: config.flip,
                                                             exposureJitter: config.exposureJitter, colourJitter: config.colourJitter),
                                 seed: config.seed, syntheticRatio: config.synthRatio, synthetic: synthetic,
                                 matchExposure: config.matchExposure, asShotRatio: config.asShotRatio, asShot: config.asShot)
        validationPairs = validation
        self.runDir = runDir
    }

    /// Loads the pairs of `config.data` and splits them by `config.valNames`.
    public static func loadData(_ config: TrainConfig, log: (String) -> Void = { print($0) }) throws(TrainError) -> (train: [ImagePair], validation: [ImagePair]) {
        guard !config.data.isEmpty else { throw .data("no data directory given (--data DIR)") }
        var files: [PairFiles] = []
        for d in config.data { files += try PairDiscovery.find(in: d) }
        let valSet = Set(config.valNames)
        var train: [ImagePair] = [], val: [ImagePair] = []
        for f in files {
            let p = try PairDiscovery.load(f, resizeLong: config.resize)
            if valSet.contains(f.name) { val.append(p) } else { train.append(p) }
        }
        let missing = valSet.subtracting(val.map(\.name))
        if !missing.isEmpty { log("warning: validation names not found in the data: \(missing.sorted().joined(separator: ", "))") }
        log("data: \(train.count) training pairs, \(val.count) validation pairs (\(val.map(\.name).joined(separator: ", ")))")
        return (train, val)
    }

    /// 0 for the parameters of frozen encoder blocks (`enc1.` … `encN.`),
    /// `encoderLRScale` for the other encoder blocks, 1 for the decoder.
    static func learningRateScales(names: [String], config: TrainConfig) -> [Float] {
        names.map { name in
            guard name.hasPrefix("enc"), let dot = name.firstIndex(of: "."),
                  let block = Int(name[name.index(name.startIndex, offsetBy: 3)..<dot]) else { return 1 }
            return block <= config.freezeEncoderBlocks ? 0 : Float(config.encoderLRScale)
        }
    }

    // MARK: Checkpoints

    public func saveCheckpoint(to path: String) throws(TrainError) {
        try Checkpoint.write(path: path, config: config, step: step, bestPSNR: bestPSNR, bestStep: bestStep,
                             generator: generator.params, adamG: adamG,
                             discriminator: discriminator?.params, adamD: adamD)
    }

    public func restore(from ck: Checkpoint, path: String) throws(TrainError) {
        try Checkpoint.restore(ck.generator, adam: ck.generatorAdam, into: generator.params, &adamG, what: "generator", path: path)
        generator.parametersChanged()
        if let d = discriminator {
            guard let values = ck.discriminator, let adam = ck.discriminatorAdam, var a = adamD else {
                throw .checkpoint(path: path, reason: "has no discriminator but the configuration needs one")
            }
            try Checkpoint.restore(values, adam: adam, into: d.params, &a, what: "discriminator", path: path)
            adamD = a
        }
        step = ck.step
        bestPSNR = ck.bestPSNR
        bestStep = ck.bestStep
    }

    // MARK: One step

    func discriminatorInput(flash: Tensor, image: Tensor, attention: Tensor?) -> Tensor {
        var img = image
        if let attention {
            let plane = img.h * img.w
            for i in img.data.indices { img.data[i] *= attention.data[(i / (3 * plane)) * plane + i % plane] }
        }
        Pointwise.affine(&img, 2, -1)
        if config.discriminator == "conditional" {
            var f = flash
            Pointwise.affine(&f, 2, -1)
            return concatChannels(f, img)
        }
        return img
    }

    /// The channels of the discriminator's input that hold the image (after the flash
    /// in a conditional discriminator's).
    var imageChannels: Range<Int> { config.discriminator == "conditional" ? 3..<6 : 0..<3 }

    /// d loss / d image from d loss / d (the image channels of the discriminator input).
    func imageGradient(_ dImageChannels: Tensor, attention: Tensor?) -> Tensor {
        var d = dImageChannels
        Pointwise.affine(&d, 2, 0)
        if let attention {
            let plane = d.h * d.w
            for i in d.data.indices { d.data[i] *= attention.data[(i / (3 * plane)) * plane + i % plane] }
        }
        return d
    }

    /// The discriminator's loss ½ [BCE(D(fake), 0) + BCE(D(real), 1)] on the
    /// discriminator inputs of a batch; accumulates its parameter gradients. Instance
    /// norm (or none) keeps every sample's statistics to itself, so fake and real go
    /// through as one batch of 2N; batch norm's statistics are per batch, so they go
    /// through separately, as PyTorch's pix2pix does. No input gradient is computed.
    func discriminatorGradients(_ D: PatchDiscriminator, fake fakeIn: Tensor, real realIn: Tensor, stats st: inout StepStats) -> Double {
        var t0 = now()
        let n = fakeIn.n
        if D.norm != .batch {
            let c = D.forward(concatBatch(fakeIn, realIn), keepPhases: true)
            let (logitsF, logitsR) = splitBatch(c.logits, first: n)
            var (lf, gf) = Losses.bceWithLogits(logitsF, target: 0)
            var (lr, gr) = Losses.bceWithLogits(logitsR, target: 1)
            st.forward += now() - t0; t0 = now()
            Pointwise.affine(&gf, 0.5, 0); Pointwise.affine(&gr, 0.5, 0)
            _ = D.backward(c, dLogits: concatBatch(gf, gr), parameterGradients: true, inputGradient: nil)
            st.backward += now() - t0
            return 0.5 * (lf + lr)
        }
        let cf = D.forward(fakeIn, keepPhases: true)
        var (lf, gf) = Losses.bceWithLogits(cf.logits, target: 0)
        let cr = D.forward(realIn, keepPhases: true)
        var (lr, gr) = Losses.bceWithLogits(cr.logits, target: 1)
        st.forward += now() - t0; t0 = now()
        Pointwise.affine(&gf, 0.5, 0); Pointwise.affine(&gr, 0.5, 0)
        _ = D.backward(cf, dLogits: gf, parameterGradients: true, inputGradient: nil)
        _ = D.backward(cr, dLogits: gr, parameterGradients: true, inputGradient: nil)
        st.backward += now() - t0
        return 0.5 * (lf + lr)
    }

    /// The generator's adversarial loss BCE(D(fake), 1) and `weight` × its gradient with
    /// respect to the image channels of the discriminator input (no parameter gradients).
    func adversarialGradient(_ D: PatchDiscriminator, fake fakeIn: Tensor, weight: Float, stats st: inout StepStats) -> (Double, Tensor) {
        var t0 = now()
        let cg = D.forward(fakeIn)
        var (lg, gg) = Losses.bceWithLogits(cg.logits, target: 1)
        st.forward += now() - t0; t0 = now()
        Pointwise.affine(&gg, weight, 0)
        let dIn = D.backward(cg, dLogits: gg, parameterGradients: false, inputGradient: imageChannels)!
        st.backward += now() - t0
        return (lg, dIn)
    }

    /// One optimisation step (discriminator, then generator) on a batch.
    public func trainStep(_ batch: Batch) -> StepStats {
        var st = StepStats()
        var t0 = now()
        let total = config.steps
        let decay = Int((config.decayFrom * Double(total)).rounded())
        let lrG = LRSchedule(base: Float(config.lrG), decayStart: decay, total: total).rate(at: step)
        let lrD = LRSchedule(base: Float(config.lrD), decayStart: decay, total: total).rate(at: step)

        let cache = generator.forward(batch.flash)
        let fake = cache.output
        let needAttention = config.reconstruction == "attention-l1" || config.attentionToDiscriminator
        let att = needAttention ? Losses.attention(flash: batch.flash, ambient: batch.ambient) : nil
        var dOutput: Tensor? = nil, dRaw: Tensor? = nil
        let w = Float(config.reconstructionWeight)
        if config.reconstruction == "mse" {
            // Squared error on the decoded image: the objective PSNR measures.
            var (l, g) = Losses.mse(fake, batch.ambient)
            Pointwise.affine(&g, w, 0)
            dOutput = g; st.reconstruction = l
        } else if config.reconstruction == "exposure-free-mse" {
            // FAID's ambient exposure is not predictable from the flash image; exposure-matched
            // targets remove most of it, this removes what is left from the objective (EA-PSNR's).
            var (l, g) = Losses.exposureFreeMSE(fake, batch.ambient, anchor: 0.1)
            Pointwise.affine(&g, w, 0)
            if config.coarseReconstructionWeight > 0 {
                var (_, gc) = Losses.coarseExposureFreeMSE(fake, batch.ambient, factor: 8, anchor: 0.1)
                Pointwise.affine(&gc, Float(config.coarseReconstructionWeight), 0)
                Pointwise.add(&g, gc)
            }
            dOutput = g; st.reconstruction = l
        } else if generator.config.formulation == .ratioLog {
            var (l, g) = Losses.mse(cache.raw, Losses.ratioTarget(ambient: batch.ambient, flash: batch.flash))
            Pointwise.affine(&g, w, 0)
            dRaw = g; st.reconstruction = l
        } else {
            var (l, g) = Losses.l1(fake, batch.ambient, attention: config.reconstruction == "attention-l1" ? att : nil)
            Pointwise.affine(&g, w, 0)
            dOutput = g; st.reconstruction = l
        }
        st.forward += now() - t0

        if let D = discriminator, adamD != nil {
            let dAtt = config.attentionToDiscriminator ? att : nil
            let fakeIn = discriminatorInput(flash: batch.flash, image: fake, attention: dAtt)
            let realIn = discriminatorInput(flash: batch.flash, image: batch.ambient, attention: dAtt)
            // Discriminator: ½ [BCE(D(x, G(x)), 0) + BCE(D(x, y), 1)].
            D.params.zeroGrads()
            st.discriminator = discriminatorGradients(D, fake: fakeIn, real: realIn, stats: &st)
            t0 = now()
            adamD!.step(D.params, lr: lrD)
            st.optimiser += now() - t0
            // Generator's adversarial term against the updated discriminator.
            let (lg, dIn) = adversarialGradient(D, fake: fakeIn, weight: Float(config.adversarialWeight), stats: &st)
            st.adversarial = lg
            t0 = now()
            let dImg = imageGradient(dIn, attention: dAtt)
            if dOutput == nil { dOutput = dImg } else { Pointwise.add(&dOutput!, dImg) }
            st.backward += now() - t0
        }
        t0 = now()
        generator.params.zeroGrads()
        generator.backward(cache, dOutput: dOutput, dRaw: dRaw)
        st.backward += now() - t0; t0 = now()
        adamG.step(generator.params, lr: lrG, scales: generatorLRScales)
        st.optimiser += now() - t0
        step += 1
        return st
    }

    // MARK: Validation

    public func validate() -> Validation {
        let g = generator.inferenceModel()
        var v = Validation(step: step, psnr: 0, ssim: 0, identityPSNR: 0, identitySSIM: 0, count: validationPairs.count, images: [])
        guard !validationPairs.isEmpty else { return v }
        for p in validationPairs {
            var out = [Float](repeating: 0, count: p.flash.count)
            p.flash.withUnsafeBufferPointer { fp in
                let view = RGBImageView(base: fp.baseAddress!, width: p.width, height: p.height, rowStride: 3 * p.width)
                out.withUnsafeMutableBufferPointer { try! g.apply(view, to: $0.baseAddress!, outputRowStride: 3 * p.width) }
            }
            let psnr = Metrics.psnr(out, p.ambient), ssim = Metrics.ssimGray(out, p.ambient, width: p.width, height: p.height)
            v.psnr += psnr; v.ssim += ssim
            v.ea += Metrics.exposureAlignedPSNR(out, p.ambient).psnr
            v.perPair.append((p.name, psnr, ssim))
            if identity == nil {
                v.identityPSNR += Metrics.psnr(p.flash, p.ambient)
                v.identitySSIM += Metrics.ssimGray(p.flash, p.ambient, width: p.width, height: p.height)
                v.identityEA += Metrics.exposureAlignedPSNR(p.flash, p.ambient).psnr
            }
            v.images.append((p.flash, out, p.ambient, p.width, p.height))
        }
        let n = Double(validationPairs.count)
        v.psnr /= n; v.ssim /= n; v.ea /= n
        if let identity { (v.identityPSNR, v.identitySSIM, v.identityEA) = identity } else {
            v.identityPSNR /= n; v.identitySSIM /= n; v.identityEA /= n
            identity = (v.identityPSNR, v.identitySSIM, v.identityEA)
        }
        return v
    }

    // MARK: The loop

    func appendLog(_ line: String, file: String) {
        guard let runDir else { return }
        let path = (runDir as NSString).appendingPathComponent(file)
        if !FileManager.default.fileExists(atPath: path) { _ = FileManager.default.createFile(atPath: path, contents: nil) }
        if let h = FileHandle(forWritingAtPath: path) {
            h.seekToEndOfFile()
            h.write(Data((line + "\n").utf8))
            try? h.close()
        }
    }

    /// Reloads the loss history of a resumed run from its log (up to the checkpoint's step).
    func reloadHistory() {
        guard let runDir, let text = try? String(contentsOfFile: (runDir as NSString).appendingPathComponent("log.jsonl"), encoding: .utf8) else { return }
        for line in text.split(separator: "\n") {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  let s = o["step"] as? Int, s <= step else { continue }
            if o["type"] as? String == "train" {
                history.append((s, o["rec"] as? Double ?? 0, o["adv"] as? Double ?? 0, o["d"] as? Double ?? 0))
            } else if o["type"] as? String == "val", let p = o["psnr"] as? Double {
                valHistory.append((s, p))
            }
        }
    }

    /// A JSON number (null when not finite, e.g. the PSNR of identical images).
    static func json(_ v: Double) -> String { v.isFinite ? "\(v)" : "null" }

    static func fmt(_ v: Double, _ digits: Int = 4) -> String { String(format: "%.\(digits)f", v) }

    /// Trains until `config.steps` (or until `shouldStop` returns true),
    /// logging, validating and checkpointing as configured. Writes a final
    /// checkpoint when it stops.
    public func run(shouldStop: () -> Bool = { false }, log: (String) -> Void = { print($0) }) throws(TrainError) {
        let total = config.steps
        if runDir != nil { reloadHistory() }
        guard step < total else { log("already at step \(step) of \(total)"); return }
        let loader = BackgroundLoader(source: source, from: step, to: total)
        defer { loader.stop() }
        var window = StepStats(), windowSteps = 0, windowStart = now()
        var rateEMA: Double? = nil
        while step < total {
            if shouldStop() { log("stopping at step \(step) (signal)"); break }
            let t0 = now()
            let batch = loader.next()
            let dataTime = now() - t0
            var st = trainStep(batch)
            st.data = dataTime
            window.reconstruction += st.reconstruction; window.adversarial += st.adversarial; window.discriminator += st.discriminator
            window.forward += st.forward; window.backward += st.backward; window.optimiser += st.optimiser; window.data += st.data
            windowSteps += 1
            if step % config.logEvery == 0 || step == total {
                let n = Double(windowSteps), elapsed = now() - windowStart
                let sps = n * Double(config.batch) / elapsed
                rateEMA = rateEMA.map { 0.7 * $0 + 0.3 * sps } ?? sps
                let eta = Double(total - step) * Double(config.batch) / rateEMA!
                let rec = window.reconstruction / n, adv = window.adversarial / n, dl = window.discriminator / n
                let gan = discriminator == nil ? "" : " adv \(Self.fmt(adv, 3)) D \(Self.fmt(dl, 3))"
                log("step \(step)/\(total) ep \(Self.fmt(source.epoch(afterSteps: step), 1)) | rec \(Self.fmt(rec))\(gan) | "
                    + "\(Self.fmt(sps, 2)) samples/s | fwd \(Self.fmt(window.forward / n * 1000, 0)) bwd \(Self.fmt(window.backward / n * 1000, 0)) "
                    + "opt \(Self.fmt(window.optimiser / n * 1000, 0)) data \(Self.fmt(window.data / n * 1000, 0)) ms | ETA \(Readable.duration(seconds: eta, .compact))")
                appendLog("{\"type\":\"train\",\"step\":\(step),\"epoch\":\(Self.fmt(source.epoch(afterSteps: step), 3)),\"rec\":\(rec),\"adv\":\(adv),\"d\":\(dl),"
                          + "\"samples_per_s\":\(Self.fmt(sps, 3)),\"forward_ms\":\(Self.fmt(window.forward / n * 1000, 1)),\"backward_ms\":\(Self.fmt(window.backward / n * 1000, 1)),"
                          + "\"optimiser_ms\":\(Self.fmt(window.optimiser / n * 1000, 1)),\"data_ms\":\(Self.fmt(window.data / n * 1000, 1)),\"time\":\(Int(Date().timeIntervalSince1970))}", file: "log.jsonl")
                history.append((step, rec, adv, dl))
                window = StepStats(); windowSteps = 0; windowStart = now()
            }
            if step % config.validateEvery == 0 || step == total {
                try validateAndReport(log: log)
                windowStart = now()
            }
            if let runDir, step % config.checkpointEvery == 0 {
                try saveCheckpoint(to: (runDir as NSString).appendingPathComponent("checkpoint"))
                windowStart = now()
            }
        }
        if let runDir { try saveCheckpoint(to: (runDir as NSString).appendingPathComponent("checkpoint")) }
    }

    /// Validation, logs, plots and the best model.
    public func validateAndReport(log: (String) -> Void) throws(TrainError) {
        let v = validate()
        guard v.count > 0 else { return }
        let improved = v.psnr > bestPSNR
        if improved { bestPSNR = v.psnr; bestStep = step }
        log("validate step \(step): PSNR \(Self.fmt(v.psnr, 2)) dB SSIM \(Self.fmt(v.ssim)) EA-PSNR \(Self.fmt(v.ea, 2)) dB "
            + "(identity \(Self.fmt(v.identityPSNR, 2)) dB \(Self.fmt(v.identitySSIM)) EA \(Self.fmt(v.identityEA, 2)) dB) "
            + "on \(v.count) pairs; best \(Self.fmt(bestPSNR, 2)) dB at step \(bestStep)")
        valHistory.append((step, v.psnr))
        guard let runDir else { return }
        appendLog("{\"type\":\"val\",\"step\":\(step),\"psnr\":\(Self.json(v.psnr)),\"ssim\":\(Self.json(v.ssim)),\"identity_psnr\":\(Self.json(v.identityPSNR)),\"identity_ssim\":\(v.identitySSIM),\"ea_psnr\":\(Self.json(v.ea)),\"identity_ea_psnr\":\(Self.json(v.identityEA)),\"pairs\":\(v.count),"
                  + "\"per_pair\":{" + v.perPair.map { "\"\($0.0)\":[\(Self.json($0.1)),\(Self.json($0.2))]" }.joined(separator: ",") + "},\"time\":\(Int(Date().timeIntervalSince1970))}", file: "log.jsonl")
        let csv = (runDir as NSString).appendingPathComponent("validation.csv")
        if !FileManager.default.fileExists(atPath: csv) { appendLog("step,psnr,ssim,identity_psnr,identity_ssim", file: "validation.csv") }
        appendLog("\(step),\(v.psnr),\(v.ssim),\(v.identityPSNR),\(v.identitySSIM)", file: "validation.csv")
        do {
            try Plots.sampleGrid(v.images, to: (runDir as NSString).appendingPathComponent("samples.png"))
            try Plots.lossCurve(train: history.map { ($0.step, $0.rec) }, validation: valHistory, identityPSNR: v.identityPSNR,
                                to: (runDir as NSString).appendingPathComponent("loss-curve.png"))
        } catch { log("warning: cannot write plots: \(error)") }
        if improved {
            let path = (runDir as NSString).appendingPathComponent("best.f2aw")
            do {
                try generator.weightsFile(description: description(psnr: v.psnr, ssim: v.ssim)).write(path: path)
                try saveCheckpoint(to: (runDir as NSString).appendingPathComponent("best-checkpoint"))
            } catch { throw .io("cannot write \(path): \(error)") }
        }
    }

    func description(psnr: Double, ssim: Double) -> String {
        "f2a-train step \(step), width \(config.width), crop \(config.crop), batch \(config.batch), "
            + "validation \(Self.fmt(psnr, 2)) dB / SSIM \(Self.fmt(ssim)) on \(validationPairs.count) pairs at \(config.resize) px"
    }
}
