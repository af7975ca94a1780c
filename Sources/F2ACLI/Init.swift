import ArgumentParser
import F2AModel

extension GeneratorConfig.Upsample: ExpressibleByArgument {}
extension GeneratorConfig.OutputActivation: ExpressibleByArgument {}
extension GeneratorConfig.Formulation: ExpressibleByArgument {}

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a randomly initialised (untrained) weights file.",
        discussion: "For plumbing, tests and benchmarks: the output is noise, not an ambient image.")

    @Argument(help: "Output weights file.") var output: String
    @Option(help: "Channel width multiplier (1.0 = VGG-16); the encoder's when --decoder-width is given.") var width: Double = 0.25
    @Option(help: "Decoder channel width multiplier (default: --width).") var decoderWidth: Double?
    @Option(help: "Encoder blocks, 1–5.") var levels: Int = 5
    @Option(help: "transpose or unpool.") var upsample: GeneratorConfig.Upsample = .transpose
    @Option(help: "sigmoid or tanh.") var activation: GeneratorConfig.OutputActivation = .sigmoid
    @Option(help: "rgb or ratio-log.") var formulation: GeneratorConfig.Formulation = .rgb
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Flag(help: "Store tensors as float16.") var f16 = false
    @Flag(help: ArgumentHelp("Zero the output layer: with --formulation ratio-log the model then returns its input exactly.",
                             discussion: "A warm start for training (f2a-train --init-from) that begins at the identity baseline."))
    var zeroOutput = false

    func validate() throws {
        guard width.isFinite, width > 0, width <= 4 else { throw ValidationError("--width must be in (0, 4]") }
        if let decoderWidth, !(decoderWidth.isFinite && decoderWidth > 0 && decoderWidth <= 4) {
            throw ValidationError("--decoder-width must be in (0, 4]")
        }
        guard (1...5).contains(levels) else { throw ValidationError("--levels must be from 1 to 5") }
        let config = GeneratorConfig(width: width, decoderWidth: decoderWidth, levels: levels, upsample: upsample)
        if let (_, reason) = config.inconsistency { throw ValidationError("--decoder-width \(reason)") }
    }

    func run() throws { try withExitStatus(work) }

    func work() throws {
        let config = GeneratorConfig(width: width, decoderWidth: decoderWidth, levels: levels, upsample: upsample, activation: activation,
                                     formulation: formulation,
                                     description: zeroOutput && formulation == .ratioLog
                                        ? "identity initialisation (seed \(seed), zero output layer, ratio-log): returns its input"
                                        : "random initialisation (seed \(seed)), untrained: for plumbing only")
        var weights = WeightsFile.randomlyInitialised(config, seed: seed)
        if zeroOutput {
            for i in weights.tensors.indices where weights.tensors[i].name.hasPrefix("final.") {
                weights.tensors[i].tensor.data = [Float](repeating: 0, count: weights.tensors[i].tensor.count)
            }
        }
        do {
            try weights.write(path: output, dtype: f16 ? .f16 : .f32)
        } catch {
            throw CommandFailure.failed(error.description)
        }
        print("wrote \(output): \(config.summary), \(config.parameterCount) parameters")
    }
}
