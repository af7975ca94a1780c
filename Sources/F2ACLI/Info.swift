import ArgumentParser
import F2AImage
import F2AModel

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Describe a weights file.")

    @Argument(help: "Weights file (default: the shipped model).") var path: String?

    func run() throws { try withExitStatus(work) }

    func work() throws {
        let file = try path ?? DefaultModel.path()
        let weights: WeightsFile
        let generator: Generator
        do {
            weights = try WeightsFile.read(path: file)
            generator = try Generator(file: weights)
        } catch {
            throw CommandFailure.refused(error.description)
        }
        let c = generator.config
        print("file:        \(file)")
        print("model:       \(c.summary)")
        print("description: \(c.description.isEmpty ? "(none)" : c.description)")
        print("parameters:  \(c.parameterCount) in \(weights.tensors.count) tensors")
        print("input:       padded (reflect) to a multiple of \(c.sizeMultiple)")
        print("cost:        \(Readable.significant(c.flops(height: 256, width: 256) / 1e9)) GFLOP at 256x256")
    }
}
