import F2ACore

/// Architecture of the generator: a U-Net whose encoder is VGG-16's
/// convolutional part (Chávez et al., VISAPP 2020; Isola et al. pix2pix).
///
/// Encoder block b (1-based, b ≤ levels) has `vggBlocks[b-1].convs` 3x3 convs
/// with `encoderChannels(b)` outputs each, ReLU, and a 2x2 max-pool before the next
/// block. The decoder walks back up: at level b < levels it upsamples (2x2
/// transposed conv, or 1x1 conv then max-unpool with block b's pooling
/// indices) to `decoderChannels(b)`, concatenates block b's output (the skip) and
/// applies the same number of 3x3 convs as encoder block b. A final 1x1 conv
/// maps to 3 channels, followed by the output activation.
public struct GeneratorConfig: Equatable, Sendable {
    public enum Upsample: String, Sendable, CaseIterable { case transpose, unpool }
    public enum OutputActivation: String, Sendable, CaseIterable { case sigmoid, tanh }
    /// What the network's 3 output channels mean.
    public enum Formulation: String, Sendable, CaseIterable {
        /// The ambient image itself.
        case rgb
        /// r = ½·log2((A+1)/(F+1)) + ½, inverted as A = clamp((F+1)·2^(2r−1) − 1, 0, 1).
        case ratioLog = "ratio-log"
    }

    /// VGG-16's convolutional blocks: output channels at width 1 and conv count.
    public static let vggBlocks: [(channels: Int, convs: Int)] = [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]

    /// Channel multiplier of the encoder: 1.0 is VGG-16; 0.25 divides every layer's width by 4.
    public var width: Double
    /// Channel multiplier of the decoder (upsampling and decoder convs). A pretrained
    /// VGG-16 encoder (width 1.0) can feed a narrow decoder, which keeps the model small
    /// and its training cheap.
    public var decoderWidth: Double
    /// Encoder blocks used, 1...5. The input is padded to a multiple of 2^(levels−1).
    public var levels: Int
    public var upsample: Upsample
    public var activation: OutputActivation
    public var formulation: Formulation
    /// Free text stored in the file (e.g. "random initialisation, untrained").
    public var description: String

    /// `decoderWidth` nil: the same as `width` (the symmetric U-Net).
    public init(width: Double = 0.25, decoderWidth: Double? = nil, levels: Int = 5, upsample: Upsample = .transpose,
                activation: OutputActivation = .sigmoid, formulation: Formulation = .rgb,
                description: String = "") {
        self.width = width
        self.decoderWidth = decoderWidth ?? width
        self.levels = levels
        self.upsample = upsample
        self.activation = activation
        self.formulation = formulation
        self.description = description
    }

    /// Why this combination cannot be built, or nil. Max-unpooling puts each decoder
    /// channel where its encoder channel's maximum was, so it needs as many decoder
    /// channels as encoder channels at every level.
    public var inconsistency: (key: String, reason: String)? {
        if upsample == .unpool && (1...levels).contains(where: { encoderChannels($0) != decoderChannels($0) }) {
            return ("decoder_width", "\(decoderWidth) differs from width \(width), which unpool upsampling "
                        + "cannot do (it reuses the encoder's pooling indices channel by channel)")
        }
        return nil
    }

    /// Output channels of encoder block `block` (1-based), at least 1.
    public func encoderChannels(_ block: Int) -> Int { Self.scaled(block, width) }

    /// Output channels of the decoder's level `block` (its upsampling and convs), at least 1.
    public func decoderChannels(_ block: Int) -> Int { Self.scaled(block, decoderWidth) }

    private static func scaled(_ block: Int, _ multiplier: Double) -> Int {
        max(1, Int((Double(vggBlocks[block - 1].channels) * multiplier).rounded()))
    }

    public func convCount(_ block: Int) -> Int { GeneratorConfig.vggBlocks[block - 1].convs }

    /// Inputs are padded to a multiple of this (one factor of 2 per pooling).
    public var sizeMultiple: Int { 1 << (levels - 1) }

    public var summary: String {
        let widths = decoderWidth == width ? "width \(width)" : "encoder width \(width) decoder width \(decoderWidth)"
        return "U-Net/VGG-16 \(widths) levels \(levels) upsample \(upsample.rawValue) "
            + "activation \(activation.rawValue) formulation \(formulation.rawValue)"
    }

    // MARK: Layers

    /// One parameterised layer of the network, in evaluation order.
    /// The raw values of `Kind` and `Input` are the names `f2a info --layers` prints,
    /// which the ONNX exporter (tools/onnx/f2a_to_onnx.py) reads.
    public struct Layer: Equatable, Sendable {
        public enum Kind: String, Equatable, Sendable {
            /// 3x3 convolution, padding 1, ReLU.
            case conv3x3
            /// 2x2 stride-2 transposed convolution (weight [in, out, 2, 2]) or, for
            /// `.unpool`, a 1x1 convolution evaluated before max-unpooling; ReLU.
            case upsample
            /// 1x1 convolution to the 3 output channels, then the output activation.
            case output
        }
        /// What the layer reads: the U-Net's wiring.
        public enum Input: String, Equatable, Sendable {
            /// The previous layer's output (the network's input for the first layer).
            case previous
            /// The previous layer's output max-pooled 2x2: the first conv of encoder block
            /// `level` > 1. The output before pooling is the skip of level `level` − 1.
            case pooled
            /// The previous layer's output (the upsampling's) followed by the channels of
            /// the skip of level `level`: the first conv of a decoder level.
            case withSkip
        }
        /// Parameter prefix: the weights are "\(name).weight" and "\(name).bias".
        public let name: String
        public let kind: Kind
        public let input: Input
        public let inChannels: Int
        public let outChannels: Int
        /// Resolution level of the layer's output: 1 is full size, b is 1/2^(b−1).
        public let level: Int
        /// Part of the encoder (block `level`).
        public var isEncoder: Bool { name.hasPrefix("enc") }
    }

    /// Every layer in evaluation order. The single description of the network that
    /// the parameter list, the FLOP count, the memory estimate, the inference engine
    /// (Generator) and the trainer walk.
    public var layers: [Layer] {
        var out: [Layer] = []
        var cin = 3
        for b in 1...levels {
            for j in 1...convCount(b) {
                out.append(Layer(name: "enc\(b).conv\(j)", kind: .conv3x3, input: b > 1 && j == 1 ? .pooled : .previous,
                                 inChannels: cin, outChannels: encoderChannels(b), level: b))
                cin = encoderChannels(b)
            }
        }
        for b in stride(from: levels - 1, through: 1, by: -1) {
            out.append(Layer(name: "dec\(b).up", kind: .upsample, input: .previous,
                             inChannels: cin, outChannels: decoderChannels(b), level: b))
            cin = decoderChannels(b) + encoderChannels(b)
            for j in 1...convCount(b) {
                out.append(Layer(name: "dec\(b).conv\(j)", kind: .conv3x3, input: j == 1 ? .withSkip : .previous,
                                 inChannels: cin, outChannels: decoderChannels(b), level: b))
                cin = decoderChannels(b)
            }
        }
        out.append(Layer(name: "final", kind: .output, input: .previous, inChannels: cin, outChannels: 3, level: 1))
        return out
    }

    /// Zero padding of a layer's convolution: "same" for the 3x3 convs, none for the 1x1.
    public func padding(_ layer: Layer) -> Int { layer.kind == .conv3x3 ? 1 : 0 }

    /// Shape of a layer's weight tensor.
    public func weightShape(_ layer: Layer) -> [Int] {
        switch layer.kind {
        case .conv3x3: return [layer.outChannels, layer.inChannels, 3, 3]
        case .upsample:
            return upsample == .transpose ? [layer.inChannels, layer.outChannels, 2, 2] : [layer.outChannels, layer.inChannels, 1, 1]
        case .output: return [layer.outChannels, layer.inChannels, 1, 1]
        }
    }

    /// Shape of a layer's bias tensor.
    public func biasShape(_ layer: Layer) -> [Int] { [layer.outChannels] }

    /// Every parameter tensor of this configuration, in canonical order, with
    /// its shape: the names used by the weights file, the trainer and the ONNX converter.
    public var parameterShapes: [(name: String, shape: [Int])] {
        layers.flatMap { [("\($0.name).weight", weightShape($0)), ("\($0.name).bias", biasShape($0))] }
    }

    public var parameterCount: Int {
        parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    /// Multiply-adds ×2 of one forward pass at the given padded size.
    public func flops(height: Int, width w: Int) -> Double {
        layers.reduce(0.0) { $0 + flops(of: $1, height: height, width: w) }
    }

    /// Multiply-adds ×2 of `layer` in one forward pass of one image at the given padded size.
    public func flops(of layer: Layer, height: Int, width w: Int) -> Double {
        let pixels = Double(height) * Double(w) / Double(1 << (2 * (layer.level - 1)))
        let taps: Double
        switch layer.kind {
        case .conv3x3: taps = 9
        // A 2x2 transposed conv gives each output pixel one tap; the 1x1 conv runs at the pooled size.
        case .upsample: taps = upsample == .transpose ? 1 : 0.25
        case .output: taps = 1
        }
        return 2 * taps * Double(layer.inChannels) * Double(layer.outChannels) * pixels
    }

    // MARK: Stored form

    /// Configuration entries as written to a weights file.
    public var fileEntries: [(key: String, value: ConfigValue)] {
        [("architecture", .string("unet-vgg16")),
         ("width", .float(width)),
         ("decoder_width", .float(decoderWidth)),
         ("levels", .int(Int64(levels))),
         ("upsample", .string(upsample.rawValue)),
         ("activation", .string(activation.rawValue)),
         ("formulation", .string(formulation.rawValue)),
         ("description", .string(description))]
    }

    /// The tensors of `file` by name, held strictly to this configuration: every
    /// parameter of `parameterShapes` present once with its exact shape, and nothing
    /// else. The one check of a file's tensors, for the library and the trainer alike;
    /// the error names the tensor and the shapes expected and found.
    public func parameters(of file: WeightsFile) throws(WeightsError) -> [String: Tensor] {
        var byName: [String: Tensor] = [:]
        for (name, tensor) in file.tensors {
            guard byName.updateValue(tensor, forKey: name) == nil else { throw .duplicateTensor(name: name) }
        }
        let expected = parameterShapes
        for (name, shape) in expected {
            guard let t = byName[name] else { throw .missingTensor(name: name, expected: shape) }
            guard t.shape == shape else { throw .shapeMismatch(name: name, expected: shape, found: t.shape) }
        }
        let known = Set(expected.map(\.name))
        if let extra = file.tensors.first(where: { !known.contains($0.name) }) {
            throw .unexpectedTensor(name: extra.name, shape: extra.tensor.shape)
        }
        return byName
    }

    /// Reads and validates the configuration entries of a weights file.
    public init(file: WeightsFile) throws(WeightsError) {
        func string(_ key: String) throws(WeightsError) -> String {
            guard let v = file[config: key] else { throw .badConfig(key: key, reason: "missing") }
            guard case .string(let s) = v else { throw .badConfig(key: key, reason: "expected a string") }
            return s
        }
        func choice<T: RawRepresentable & CaseIterable>(_ key: String, _: T.Type) throws(WeightsError) -> T where T.RawValue == String {
            let s = try string(key)
            guard let v = T(rawValue: s) else {
                throw .badConfig(key: key, reason: "'\(s)' is not one of " + T.allCases.map { $0.rawValue }.joined(separator: ", "))
            }
            return v
        }
        let arch = try string("architecture")
        guard arch == "unet-vgg16" else { throw .badConfig(key: "architecture", reason: "'\(arch)' is not unet-vgg16") }
        guard case .float(let width) = file[config: "width"] ?? .string("") else {
            throw .badConfig(key: "width", reason: "missing or not a float")
        }
        guard width.isFinite, width > 0, width <= 4 else { throw .badConfig(key: "width", reason: "\(width) is outside (0, 4]") }
        guard case .int(let levels) = file[config: "levels"] ?? .string("") else {
            throw .badConfig(key: "levels", reason: "missing or not an integer")
        }
        guard (1...5).contains(levels) else { throw .badConfig(key: "levels", reason: "\(levels) is outside 1 to 5") }
        // Files written before the decoder had its own width are symmetric.
        var decoderWidth = width
        if let entry = file[config: "decoder_width"] {
            guard case .float(let d) = entry else { throw .badConfig(key: "decoder_width", reason: "not a float") }
            guard d.isFinite, d > 0, d <= 4 else { throw .badConfig(key: "decoder_width", reason: "\(d) is outside (0, 4]") }
            decoderWidth = d
        }
        self.init(width: width, decoderWidth: decoderWidth, levels: Int(levels),
                  upsample: try choice("upsample", Upsample.self),
                  activation: try choice("activation", OutputActivation.self),
                  formulation: try choice("formulation", Formulation.self),
                  description: (try? string("description")) ?? "")
        if let (key, reason) = inconsistency { throw .badConfig(key: key, reason: reason) }
    }
}
