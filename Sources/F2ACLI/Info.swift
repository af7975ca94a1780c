import ArgumentParser
import F2AImage
import F2AModel

struct Info: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Describe a weights file.",
        discussion: """
            --layers prints GeneratorConfig.layers as JSON instead: the configuration the graph \
            needs (levels, size_multiple, upsample, activation, formulation) and one object per \
            layer in evaluation order (name, kind, input, in, out, level, padding and the shapes \
            of its weight and bias). tools/onnx/f2a_to_onnx.py builds its graph from it.
            """)

    @Argument(help: "Weights file (default: the shipped model).") var path: String?
    @Flag(help: "Print the network's layer list as JSON.") var layers = false

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
        if layers {
            print(Self.layersJSON(c))
            return
        }
        print("file:        \(file)")
        print("model:       \(c.summary)")
        print("description: \(c.description.isEmpty ? "(none)" : c.description)")
        print("parameters:  \(c.parameterCount) in \(weights.tensors.count) tensors")
        print("input:       padded (reflect) to a multiple of \(c.sizeMultiple)")
        print("cost:        \(Readable.significant(c.flops(height: 256, width: 256) / 1e9)) GFLOP at 256x256")
    }

    /// One layer a line, so that the list also reads (and diffs) as text. Every string is
    /// a raw value or a layer name built from ASCII identifiers: nothing needs escaping.
    static func layersJSON(_ c: GeneratorConfig) -> String {
        func shape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }
        let rows = c.layers.map { l in
            "  {\"name\": \"\(l.name)\", \"kind\": \"\(l.kind.rawValue)\", \"input\": \"\(l.input.rawValue)\", "
                + "\"in\": \(l.inChannels), \"out\": \(l.outChannels), \"level\": \(l.level), "
                + "\"padding\": \(c.padding(l)), \"weight\": \(shape(c.weightShape(l))), \"bias\": \(shape(c.biasShape(l)))}"
        }
        return "{\"levels\": \(c.levels), \"size_multiple\": \(c.sizeMultiple), \"upsample\": \"\(c.upsample.rawValue)\", "
            + "\"activation\": \"\(c.activation.rawValue)\", \"formulation\": \"\(c.formulation.rawValue)\",\n"
            + " \"layers\": [\n" + rows.joined(separator: ",\n") + "\n]}"
    }
}
