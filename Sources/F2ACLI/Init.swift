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
    @Option(help: "Channel width multiplier (1.0 = VGG-16).") var width: Double = 0.25
    @Option(help: "Encoder blocks, 1–5.") var levels: Int = 5
    @Option(help: "transpose or unpool.") var upsample: GeneratorConfig.Upsample = .transpose
    @Option(help: "sigmoid or tanh.") var activation: GeneratorConfig.OutputActivation = .sigmoid
    @Option(help: "rgb or ratio-log.") var formulation: GeneratorConfig.Formulation = .rgb
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Flag(help: "Store tensors as float16.") var f16 = false

    func validate() throws {
        guard width.isFinite, width > 0, width <= 4 else { throw ValidationError("--width must be in (0, 4]") }
        guard (1...5).contains(levels) else { throw ValidationError("--levels must be in 1...5") }
    }

    func run() throws {
        let config = GeneratorConfig(width: width, levels: levels, upsample: upsample, activation: activation,
                                     formulation: formulation,
                                     description: "random initialisation (seed \(seed)), untrained: for plumbing only")
        do {
            try WeightsFile.randomlyInitialised(config, seed: seed).write(path: output, dtype: f16 ? .f16 : .f32)
        } catch {
            throw ValidationError(error.description)
        }
        print("wrote \(output): \(config.summary), \(config.parameterCount) parameters")
    }
}
