import F2ACore
import F2AImage
import F2AModel
import Foundation
import Testing
@testable import F2ATrain

func tempDir(_ tag: String) -> String {
    let d = NSTemporaryDirectory() + "f2a-train-test-\(tag)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
    try! FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

/// A smooth synthetic pair: ambient is a dimmer, warmer, spatially varying version of flash.
func syntheticPair(_ name: String, width: Int, height: Int, seed: UInt64) -> ImagePair {
    var rng = SplitMix64(seed: seed)
    let k = (0..<9).map { _ in Float.random(in: 0.2...1, using: &rng) }
    var f = [Float](repeating: 0, count: width * height * 3), a = f
    for y in 0..<height {
        for x in 0..<width {
            let u = Float(x) / Float(width), v = Float(y) / Float(height)
            for c in 0..<3 {
                let i = (y * width + x) * 3 + c
                f[i] = 0.15 + 0.7 * (k[c] * u + (1 - k[c]) * v) * (0.6 + 0.4 * sinf(6 * u * k[c + 3] + 4 * v))
                a[i] = min(1, 0.05 + f[i] * (0.5 + 0.3 * k[c + 6] * v))
            }
        }
    }
    return ImagePair(name: name, width: width, height: height, flash: f, ambient: a)
}

func tinyConfig(steps: Int, adversarial: Bool) -> TrainConfig {
    var c = TrainConfig()
    c.width = 0.0625; c.levels = 3; c.crop = 16; c.batch = 2; c.steps = steps
    c.scaleMin = 1; c.scaleMax = 1; c.flip = true
    c.discriminator = adversarial ? "conditional" : "none"
    c.adversarialWeight = adversarial ? 1 : 0
    c.discWidth = 0.0625
    c.logEvery = 1000; c.validateEvery = 100_000; c.checkpointEvery = 100_000
    return c
}

@Suite("Trainer")
struct TrainingTests {
    @Test("training forward pass equals F2AModel.Generator.forward", arguments: [GeneratorConfig.Upsample.transpose, .unpool])
    func forwardMatchesInference(_ up: GeneratorConfig.Upsample) throws {
        let g = TrainableGenerator(config: GeneratorConfig(width: 0.0625, levels: 4, upsample: up, activation: .tanh))
        g.initialise(.he, seed: 9)
        var R = Rand(1)
        let x = Tensor(shape: [2, 3, 16, 24], data: R.array(2 * 3 * 16 * 24).map { 0.5 + 0.5 * $0 })
        let ours = g.forward(x).output
        let ref = try g.inferenceModel().forward(x)
        #expect(zip(ours.data, ref.data).map { abs($0 - $1) }.max()! < 1e-5)
    }

    @Test("export → load: the library's Generator reproduces the trainer's forward pass")
    func exportLoad() throws {
        let dir = tempDir("export")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var c = tinyConfig(steps: 3, adversarial: true)
        c.formulation = "ratio-log"
        let pairs = [syntheticPair("a", width: 24, height: 20, seed: 1), syntheticPair("b", width: 24, height: 20, seed: 2)]
        let t = try Trainer(config: c, train: pairs, validation: [], runDir: dir)
        try t.run(log: { _ in })
        let ckPath = dir + "/checkpoint"
        let f32 = dir + "/model.f2aw", f16 = dir + "/model16.f2aw"
        try Exporter.weightsFile(from: ckPath).write(path: f32)
        try Exporter.weightsFile(from: ckPath).write(path: f16, dtype: .f16)
        let loaded = try Generator(file: try WeightsFile.read(path: f32))
        #expect(loaded.config.formulation == .ratioLog && loaded.config.width == 0.0625 && loaded.config.levels == 3)
        var R = Rand(2)
        let x = Tensor(shape: [1, 3, 16, 16], data: R.array(768).map { 0.5 + 0.5 * $0 })
        let mine = t.generator.forward(x).output
        let theirs = try loaded.forward(x)
        #expect(zip(mine.data, theirs.data).map { abs($0 - $1) }.max()! < 1e-5)
        // f16 storage: a half-precision rounding of every weight, so outputs agree to ~1e-2.
        let half = try Generator(file: try WeightsFile.read(path: f16)).forward(x)
        #expect(zip(mine.data, half.data).map { abs($0 - $1) }.max()! < 2e-2)
        // --init-from: a new trainer warm-started from the export has the same generator.
        let warm = try Trainer(config: c, train: pairs, validation: [], runDir: nil)
        try warm.generator.load(try WeightsFile.read(path: f32))
        #expect(warm.generator.params.values == t.generator.params.values)
        var other = c
        other.width = 0.125
        let mismatched = try Trainer(config: other, train: pairs, validation: [], runDir: nil)
        #expect(throws: TrainError.self) { try mismatched.generator.load(try WeightsFile.read(path: f32)) }
        // The export of a weights file is the file itself; a non-model is refused.
        #expect(throws: TrainError.self) { try Exporter.weightsFile(from: dir + "/nothing") }
    }

    @Test("load is as strict as the library: a missing, extra or misshapen tensor is named, with its shapes")
    func strictLoad() throws {
        let config = GeneratorConfig(width: 0.0625, levels: 3)
        let g = TrainableGenerator(config: config)
        let good = WeightsFile.randomlyInitialised(config, seed: 3)
        try g.load(good)
        let loaded = g.params.values
        #expect(g.params.tensor("final.weight") == good.tensors.first { $0.name == "final.weight" }!.tensor)
        func refusal(_ edit: (inout WeightsFile) -> Void) -> String {
            var file = good
            edit(&file)
            do { try g.load(file) } catch { return error.description }
            return "accepted"
        }
        let missing = refusal { $0.tensors.removeAll { $0.name == "dec1.conv2.bias" } }
        #expect(missing == "weights: " + WeightsError.missingTensor(name: "dec1.conv2.bias", expected: [4]).description)
        #expect(missing.contains("'dec1.conv2.bias'") && missing.contains("expected shape [4]"))
        let extra = refusal { $0.tensors.append(("enc9.conv1.weight", Tensor(zeros: [1, 1, 3, 3]))) }
        #expect(extra == "weights: " + WeightsError.unexpectedTensor(name: "enc9.conv1.weight", shape: [1, 1, 3, 3]).description)
        #expect(extra.contains("'enc9.conv1.weight'") && extra.contains("[1, 1, 3, 3]"))
        let misshapen = refusal { file in
            let i = file.tensors.firstIndex { $0.name == "final.weight" }!
            file.tensors[i].tensor = Tensor(zeros: [3, 5, 1, 1])
        }
        #expect(misshapen == "weights: "
                    + WeightsError.shapeMismatch(name: "final.weight", expected: [3, 4, 1, 1], found: [3, 5, 1, 1]).description)
        #expect(misshapen.contains("'final.weight'") && misshapen.contains("[3, 5, 1, 1]") && misshapen.contains("expected [3, 4, 1, 1]"))
        // A refused file leaves the parameters as they were.
        #expect(g.params.values == loaded)
    }

    @Test("ratio-log with a zero final layer starts at the identity, and training improves on it")
    func ratioLogIdentityStart() throws {
        var c = tinyConfig(steps: 40, adversarial: false)
        c.formulation = "ratio-log"; c.initFinalScale = 0; c.lrG = 1e-3; c.flip = false
        let pairs = [syntheticPair("a", width: 16, height: 16, seed: 5), syntheticPair("b", width: 16, height: 16, seed: 6)]
        let t = try Trainer(config: c, train: pairs, validation: [], runDir: nil)
        let b = t.source.batch(step: 0)
        let out = t.generator.forward(b.flash).output
        #expect(zip(out.data, b.flash.data).map { abs($0 - $1) }.max()! < 1e-6)
        let first = t.trainStep(b).reconstruction
        var last = first
        for s in 1..<c.steps { last = t.trainStep(t.source.batch(step: s)).reconstruction }
        #expect(last < first / 2, "ratio MSE \(first) → \(last)")
    }

    @Test("a tiny model memorises two pairs")
    func overfit() throws {
        var c = tinyConfig(steps: 600, adversarial: false)
        c.flip = false
        c.lrG = 3e-3; c.decayFrom = 0.7
        c.reconstructionWeight = 1
        let pairs = [syntheticPair("a", width: 16, height: 16, seed: 3), syntheticPair("b", width: 16, height: 16, seed: 4)]
        let t = try Trainer(config: c, train: pairs, validation: [], runDir: nil)
        let start = t.trainStep(t.source.batch(step: 0)).reconstruction
        var last = start
        for s in 1..<c.steps { last = t.trainStep(t.source.batch(step: s)).reconstruction }
        // The untrained model starts at L1 ≈ 0.25; memorised means 10x lower
        // (measured: ≈ 0.022 after 400 steps, lower after 600).
        #expect(start > 0.1)
        #expect(last < 0.025, "L1 after \(c.steps) steps: \(last) (start \(start))")
    }

    @Test("N steps + checkpoint + resume N steps = 2N steps, bit for bit")
    func resume() throws {
        let dir1 = tempDir("resume1"), dir2 = tempDir("resume2")
        defer { try? FileManager.default.removeItem(atPath: dir1); try? FileManager.default.removeItem(atPath: dir2) }
        var c = tinyConfig(steps: 12, adversarial: true)
        c.reconstruction = "attention-l1"
        c.scaleMin = 1; c.scaleMax = 1.4; c.decayFrom = 0.5
        let pairs = (0..<3).map { syntheticPair("p\($0)", width: 24, height: 20, seed: UInt64($0)) }
        let a = try Trainer(config: c, train: pairs, validation: [], runDir: dir1)
        try a.run(log: { _ in })
        let b = try Trainer(config: c, train: pairs, validation: [], runDir: dir2)
        try b.run(shouldStop: { b.step >= 6 }, log: { _ in })
        #expect(b.step == 6)
        let ck = try Checkpoint.read(path: dir2 + "/checkpoint")
        #expect(ck.step == 6)
        let resumed = try Trainer(config: ck.config, train: pairs, validation: [], runDir: dir2)
        try resumed.restore(from: ck, path: dir2 + "/checkpoint")
        try resumed.run(log: { _ in })
        #expect(resumed.step == 12)
        // Same batches (seeded by step), same BLAS thread count, f32 state saved
        // exactly: the runs are identical, not merely close.
        #expect(resumed.generator.params.values == a.generator.params.values)
        #expect(resumed.discriminator!.params.values == a.discriminator!.params.values)
        #expect(resumed.adamG.m == a.adamG.m && resumed.adamG.v == a.adamG.v && resumed.adamG.t == a.adamG.t)
    }

    @Test("a corrupt or foreign checkpoint is refused with a clear error")
    func corruptCheckpoint() throws {
        let dir = tempDir("corrupt")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let c = tinyConfig(steps: 1, adversarial: true)
        let t = try Trainer(config: c, train: [syntheticPair("a", width: 16, height: 16, seed: 1)], validation: [], runDir: dir)
        let path = dir + "/checkpoint"
        try t.saveCheckpoint(to: path)
        _ = try Checkpoint.read(path: path)
        var bytes = [UInt8](FileManager.default.contents(atPath: path)!)
        func expectError(_ data: [UInt8], contains: String) {
            let p = dir + "/bad"
            FileManager.default.createFile(atPath: p, contents: Data(data))
            do {
                _ = try Checkpoint.read(path: p)
                Issue.record("no error for \(contains)")
            } catch {
                #expect(error.description.contains(p), "\(error)")
                #expect(error.description.contains(contains), "\(error)")
            }
        }
        bytes[bytes.count - 2] ^= 0xFF // the file ends with the last tensor's data (padding precedes tensors)
        expectError(bytes, contains: "checksum")
        expectError(Array(bytes.prefix(bytes.count / 2)), contains: "truncated")
        expectError([UInt8]("hello".utf8), contains: "bad magic")
        // An exported model is not a checkpoint.
        let weights = dir + "/w.f2aw"
        try t.generator.weightsFile().write(path: weights)
        expectError([UInt8](FileManager.default.contents(atPath: weights)!), contains: "not a training checkpoint")
        do { _ = try Checkpoint.read(path: dir + "/missing"); Issue.record("no error") } catch {
            #expect(error.description.contains(dir + "/missing"))
        }
    }
}

@Suite("Discriminator step")
struct DiscriminatorStepTests {
    /// The input phases the forward pass keeps (`keepPhases`) are the ones the backward pass
    /// would make again: the same gradients bit for bit, and only the stride-2 layers keep any.
    @Test("kept input phases give the discriminator's gradients bit for bit", arguments: [NormKind.instance, .batch])
    func keptPhases(_ norm: NormKind) throws {
        var c = tinyConfig(steps: 1, adversarial: true)
        c.discriminator = "conditional"; c.discNorm = norm
        let t = try Trainer(config: c, train: [syntheticPair("a", width: 40, height: 40, seed: 1)], validation: [], runDir: nil)
        let D = try #require(t.discriminator)
        var R = Rand(9)
        let x = R.tensor([6, 6, 64, 64]), r = R.tensor([6, 1, 6, 6])
        func gradients(keep: Bool) -> [[Float]] {
            D.params.zeroGrads()
            let cache = D.forward(x, keepPhases: keep)
            #expect(cache.logits.shape == r.shape)
            #expect(cache.phases.map { $0 != nil } == D.layers.map { keep && PhaseConvolution.applies($0.geometry) })
            _ = D.backward(cache, dLogits: r, parameterGradients: true, inputGradient: nil)
            return D.params.grads
        }
        let plain = gradients(keep: false), kept = gradients(keep: true)
        #expect(plain.count == kept.count)
        for (a, b) in zip(plain, kept) { #expect(a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }) }
    }

    /// A trainer's discriminator step against the plain sequence it replaces: D on the
    /// fake and real inputs separately, each backward pass with its full input gradient.
    @Test("batched discriminator pass and image-only input gradient equal separate passes",
          arguments: [("conditional", NormKind.instance), ("conditional", .batch), ("unconditional", .instance), ("conditional", .none)])
    func matchesSeparatePasses(_ kind: String, _ norm: NormKind) throws {
        var c = tinyConfig(steps: 1, adversarial: true)
        c.discriminator = kind; c.discNorm = norm
        let t = try Trainer(config: c, train: [syntheticPair("a", width: 40, height: 40, seed: 1)], validation: [], runDir: nil)
        let D = try #require(t.discriminator)
        var R = Rand(5)
        let channels = kind == "conditional" ? 6 : 3
        let fakeIn = R.tensor([3, channels, 36, 32]), realIn = R.tensor([3, channels, 36, 32])

        D.params.zeroGrads()
        var st = StepStats()
        let loss = t.discriminatorGradients(D, fake: fakeIn, real: realIn, stats: &st)
        let grads = D.params.grads

        D.params.zeroGrads()
        let cf = D.forward(fakeIn), cr = D.forward(realIn)
        var (lf, gf) = Losses.bceWithLogits(cf.logits, target: 0)
        var (lr, gr) = Losses.bceWithLogits(cr.logits, target: 1)
        Pointwise.affine(&gf, 0.5, 0); Pointwise.affine(&gr, 0.5, 0)
        _ = D.backward(cf, dLogits: gf)
        _ = D.backward(cr, dLogits: gr)
        let referenceLoss = 0.5 * (lf + lr)
        #expect(abs(loss - referenceLoss) <= 1e-6 * max(1, abs(referenceLoss)), "\(loss) vs \(referenceLoss)")
        // Per tensor within 1e-4 of its largest gradient, plus 1e-5 of the largest overall:
        // a conv bias under instance norm has a gradient of 0 up to rounding, and the last
        // bias's is a sum of terms of ±0.25 that nearly cancel.
        let overall = D.params.grads.map { $0.map(abs).max()! }.max()!
        for i in grads.indices {
            let scale = D.params.grads[i].map(abs).max()!
            let worst = zip(grads[i], D.params.grads[i]).map { abs($0 - $1) }.max()!
            #expect(worst <= 1e-4 * scale + 1e-5 * overall, "\(D.params.names[i]): \(worst) of \(scale)")
        }

        // The generator's adversarial term: image channels only, no parameter gradients.
        D.params.zeroGrads()
        let (lg, dImage) = t.adversarialGradient(D, fake: fakeIn, weight: 0.7, stats: &st)
        #expect(D.params.grads.allSatisfy { $0.allSatisfy { $0 == 0 } })
        let cg = D.forward(fakeIn)
        var (lgRef, gg) = Losses.bceWithLogits(cg.logits, target: 1)
        Pointwise.affine(&gg, 0.7, 0)
        let full = D.backward(cg, dLogits: gg, parameterGradients: false)
        let reference = channels == 6 ? splitChannels(full, first: 3).1 : full
        #expect(lg == lgRef)
        #expect(dImage.shape == reference.shape)
        let scale = max(1e-6, reference.data.map(abs).max()!)
        #expect(zip(dImage.data, reference.data).map { abs($0 - $1) }.max()! <= 1e-5 * scale)
    }
}
