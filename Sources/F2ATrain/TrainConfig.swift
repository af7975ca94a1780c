import F2AImage
import F2AModel
import Foundation

/// Everything that defines a training run. Stored in every checkpoint (as
/// JSON) so that `--resume` and `export` need nothing else; a `--config`
/// file holds any subset of these keys.
public struct TrainConfig: Codable, Sendable, Equatable {
    // Data
    public var data: [String] = []
    /// Pairs with these names form the validation split and are never trained on.
    public var valNames: [String] = DataSplit.faid32Validation
    /// Longer side after the initial resize (0 keeps the original size).
    public var resize: Int = 320
    public var crop: Int = 128
    public var scaleMin: Double = 1.0
    public var scaleMax: Double = 1.25
    public var flip: Bool = true
    /// Random exposure change of both images, ± stops in linear light (`Augmentation`).
    public var exposureJitter: Double = 0
    /// Random per-channel gain of both images, ± stops (`Augmentation`).
    public var colourJitter: Double = 0
    /// Scale each training target's exposure to its flash image's
    /// (`ImagePair.exposureMatched`); validation keeps the real targets.
    public var matchExposure: Bool = false
    /// Fraction of training samples rendered by F2ASynth.
    public var synthRatio: Double = 0
    /// Distinct synthetic pairs (rendered once, then cached).
    public var synthPool: Int = 256
    /// F2ASynth flash convention: "only" (like FAID), "as-shot" or "mix".
    public var synthFlashMode: String = "only"
    /// Fraction of real-pair samples whose flash-only input is replaced by a
    /// photo composed as a camera records it (`AsShotComposition`).
    public var asShotRatio: Double = 0
    public var asShot = AsShotComposition()

    // Generator
    public var width: Double = 0.25
    /// Decoder channel multiplier; 0: the same as `width`.
    public var decoderWidth: Double = 0
    public var levels: Int = 5
    public var upsample: String = "transpose"
    public var activation: String = "sigmoid"
    public var formulation: String = "rgb"
    public var initG: InitScheme = .he
    /// Scale of the final 1x1 conv's initial weights (0 starts a ratio-log
    /// model at the identity A = F, since r = sigmoid(0) = ½ decodes to F).
    public var initFinalScale: Double = 1
    /// Encoder blocks 1...N keep their initial (e.g. pretrained) weights.
    public var freezeEncoderBlocks: Int = 0
    /// Learning-rate multiplier of the encoder blocks that are not frozen
    /// (fine-tuning a pretrained encoder more gently than the decoder).
    public var encoderLRScale: Double = 1
    /// The weights file the generator started from (`--init-from`, an absolute path), or ""
    /// for a random start (`initG`): where the run began, and a file export never writes over.
    public var initFrom: String = ""

    // Discriminator
    /// "conditional" (sees flash + image, pix2pix), "unconditional" (image only), "none".
    public var discriminator: String = "conditional"
    /// Base filters = 64 · discWidth.
    public var discWidth: Double = 0.5
    public var discNorm: NormKind = .instance
    public var initD: InitScheme = .normal

    // Losses
    /// "l1" or "attention-l1" (the seed's attention-guided L1) on the image
    /// for rgb models, MSE on the log ratio for ratio-log models; or "mse":
    /// squared error on the output image for either formulation; or
    /// "exposure-free-mse": the same after the best gain per sample
    /// (`Losses.exposureFreeMSE`).
    public var reconstruction: String = "l1"
    public var reconstructionWeight: Double = 100
    /// Weight of an added `Losses.coarseExposureFreeMSE` on 8 × 8 blocks (with
    /// "exposure-free-mse" only; 0: none).
    public var coarseReconstructionWeight: Double = 0
    public var adversarialWeight: Double = 1
    /// Multiply the discriminator's image input by the attention map (seed option).
    public var attentionToDiscriminator: Bool = false

    // Optimisation
    public var batch: Int = 8
    public var steps: Int = 10_000
    public var lrG: Double = 2e-4
    public var lrD: Double = 2e-4
    public var beta1: Double = 0.5
    public var beta2: Double = 0.999
    /// Fraction of `steps` after which the learning rates decay linearly to zero.
    public var decayFrom: Double = 0.5
    public var seed: UInt64 = 1

    // Bookkeeping
    public var logEvery: Int = 10
    public var checkpointEvery: Int = 250
    public var validateEvery: Int = 250

    public init() {}

    public var generatorConfig: GeneratorConfig {
        get throws(TrainError) {
            guard let u = GeneratorConfig.Upsample(rawValue: upsample) else { throw .config("upsample '\(upsample)' is not transpose or unpool") }
            guard let a = GeneratorConfig.OutputActivation(rawValue: activation) else { throw .config("activation '\(activation)' is not sigmoid or tanh") }
            guard let f = GeneratorConfig.Formulation(rawValue: formulation) else { throw .config("formulation '\(formulation)' is not rgb or ratio-log") }
            guard width > 0 && width <= 4 else { throw .config("width \(width) is outside (0, 4]") }
            guard decoderWidth >= 0 && decoderWidth <= 4 else { throw .config("decoderWidth \(decoderWidth) is outside (0, 4] (0: the encoder's width)") }
            guard (1...5).contains(levels) else { throw .config("levels \(levels) is outside 1 to 5") }
            let config = GeneratorConfig(width: width, decoderWidth: decoderWidth == 0 ? nil : decoderWidth, levels: levels, upsample: u, activation: a, formulation: f)
            if let (_, reason) = config.inconsistency { throw .config("decoderWidth \(reason)") }
            return config
        }
    }

    public func validate() throws(TrainError) {
        _ = try generatorConfig
        guard ["conditional", "unconditional", "none"].contains(discriminator) else {
            throw .config("discriminator '\(discriminator)' is not conditional, unconditional or none")
        }
        guard ["l1", "attention-l1", "mse", "exposure-free-mse"].contains(reconstruction) else {
            throw .config("reconstruction '\(reconstruction)' is not l1, attention-l1, mse or exposure-free-mse")
        }
        guard coarseReconstructionWeight == 0 || (reconstruction == "exposure-free-mse" && coarseReconstructionWeight > 0 && crop % 8 == 0) else {
            throw .config("coarseReconstructionWeight needs reconstruction exposure-free-mse, a positive weight and a crop that is a multiple of 8")
        }
        guard crop > 0, crop % (1 << (levels - 1)) == 0 else { throw .config("crop \(crop) must be a positive multiple of \(1 << (levels - 1))") }
        guard batch > 0, steps >= 0 else { throw .config("batch and steps must be positive") }
        guard scaleMin > 0, scaleMax >= scaleMin else { throw .config("need 0 < scaleMin <= scaleMax") }
        guard (0...4).contains(exposureJitter), (0...4).contains(colourJitter) else {
            throw .config("exposureJitter and colourJitter must lie in 0 to 4 stops")
        }
        guard (0...1).contains(synthRatio) else { throw .config("synthRatio \(synthRatio) is outside [0, 1]") }
        guard (0...levels).contains(freezeEncoderBlocks) else {
            throw .config("freezeEncoderBlocks \(freezeEncoderBlocks) is outside 0 to \(levels) (the encoder's blocks)")
        }
        guard encoderLRScale >= 0, encoderLRScale.isFinite else { throw .config("encoderLRScale \(encoderLRScale) must be ≥ 0") }
        guard (0...1).contains(asShotRatio) else { throw .config("asShotRatio \(asShotRatio) is outside [0, 1]") }
        guard 0 <= asShot.shareMin, asShot.shareMin <= asShot.shareMax, asShot.shareMax < 1 else {
            throw .config("asShot share range \(asShot.shareMin)–\(asShot.shareMax) must lie in [0, 1)")
        }
        guard 0 < asShot.exposureMin, asShot.exposureMin <= asShot.exposureMax, asShot.exposureMax <= 1 else {
            throw .config("asShot exposure range \(asShot.exposureMin)–\(asShot.exposureMax) must lie in (0, 1]")
        }
        guard asShot.readNoise >= 0, asShot.shotNoise >= 0 else { throw .config("asShot noise must be ≥ 0") }
        guard logEvery > 0, checkpointEvery > 0, validateEvery > 0 else { throw .config("intervals must be positive") }
    }

    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return String(decoding: try! e.encode(self), as: UTF8.self)
    }

    /// Keys missing from `s` (written by an older version) take their defaults.
    public static func fromJSON(_ s: String) throws(TrainError) -> TrainConfig {
        try merging(TrainConfig(), jsonObject: s, source: "configuration")
    }

    /// `base` overridden by the keys of a JSON object (unknown keys are errors).
    public static func merging(_ base: TrainConfig, jsonObject text: String, source: String) throws(TrainError) -> TrainConfig {
        guard let obj = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            throw .config("\(source) is not a JSON object")
        }
        var dict = (try! JSONSerialization.jsonObject(with: Data(base.json.utf8))) as! [String: Any]
        func decode(_ dict: [String: Any]) -> TrainConfig? {
            try? JSONDecoder().decode(TrainConfig.self, from: try! JSONSerialization.data(withJSONObject: dict))
        }
        // Key by key, so that a value of the wrong kind is named by its key: the decoder's own
        // error is Swift (typeMismatch(Swift.Int, …)) and at times names no key at all.
        for k in obj.keys.sorted() {
            guard let old = dict[k] else {
                throw .config("\(source): unknown key '\(k)' (known: \(dict.keys.sorted().joined(separator: ", ")))")
            }
            dict[k] = obj[k]
            if decode(dict) == nil {
                throw .config("\(source): \(k): expected \(expectation(key: k, default: old)), found \(fragment(obj[k]!))")
            }
        }
        return decode(dict)!
    }

    /// What a key takes, in words, from the JSON of its default value.
    static func expectation(key: String, default value: Any) -> String {
        switch key {
        case "initG", "initD": return InitScheme.allCases.map(\.rawValue).joined(separator: " or ")
        case "discNorm": return NormKind.allCases.map(\.rawValue).joined(separator: ", ") + " (one of them)"
        default: break
        }
        let json = fragment(value)
        if json.hasPrefix("\"") { return "text" }
        if json.hasPrefix("[") { return "a list" }
        if json.hasPrefix("{") { return "an object with the same keys as the default \(json)" }
        if json == "true" || json == "false" { return "true or false" }
        return json.contains(".") || json.contains("e") ? "a number" : "a whole number"
    }

    /// A JSON value as JSON text.
    static func fragment(_ value: Any) -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys]) else {
            return "\(value)"
        }
        return String(decoding: data, as: UTF8.self)
    }
}
