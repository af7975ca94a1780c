/// Architecture of the generator: a U-Net whose encoder is VGG-16's
/// convolutional part (Chávez et al., VISAPP 2020; Isola et al. pix2pix).
///
/// Encoder block b (1-based, b ≤ levels) has `vggBlocks[b-1].convs` 3x3 convs
/// with `channels(b)` outputs each, ReLU, and a 2x2 max-pool before the next
/// block. The decoder walks back up: at level b < levels it upsamples (2x2
/// transposed conv, or 1x1 conv then max-unpool with block b's pooling
/// indices) to `channels(b)`, concatenates block b's output (the skip) and
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

    /// Channel multiplier: 1.0 is VGG-16; 0.25 divides every layer's width by 4.
    public var width: Double
    /// Encoder blocks used, 1...5. The input is padded to a multiple of 2^(levels−1).
    public var levels: Int
    public var upsample: Upsample
    public var activation: OutputActivation
    public var formulation: Formulation
    /// Free text stored in the file (e.g. "random initialisation, untrained").
    public var description: String

    public init(width: Double = 0.25, levels: Int = 5, upsample: Upsample = .transpose,
                activation: OutputActivation = .sigmoid, formulation: Formulation = .rgb,
                description: String = "") {
        self.width = width
        self.levels = levels
        self.upsample = upsample
        self.activation = activation
        self.formulation = formulation
        self.description = description
    }

    /// Output channels of encoder block `block` (1-based) at this width, at least 1.
    public func channels(_ block: Int) -> Int {
        max(1, Int((Double(GeneratorConfig.vggBlocks[block - 1].channels) * width).rounded()))
    }

    public func convCount(_ block: Int) -> Int { GeneratorConfig.vggBlocks[block - 1].convs }

    /// Inputs are padded to a multiple of this (one factor of 2 per pooling).
    public var sizeMultiple: Int { 1 << (levels - 1) }

    public var summary: String {
        "U-Net/VGG-16 width \(width) levels \(levels) upsample \(upsample.rawValue) "
            + "activation \(activation.rawValue) formulation \(formulation.rawValue)"
    }

    /// Every parameter tensor of this configuration, in canonical order, with
    /// its shape. The single source of truth for names used by the weights
    /// file, the trainer and the ONNX converter.
    public var parameterShapes: [(name: String, shape: [Int])] {
        var out: [(String, [Int])] = []
        func conv(_ name: String, _ cin: Int, _ cout: Int, _ k: Int) {
            out.append(("\(name).weight", [cout, cin, k, k]))
            out.append(("\(name).bias", [cout]))
        }
        var cin = 3
        for b in 1...levels {
            for j in 1...convCount(b) {
                conv("enc\(b).conv\(j)", cin, channels(b), 3)
                cin = channels(b)
            }
        }
        for b in stride(from: levels - 1, through: 1, by: -1) {
            switch upsample {
            case .transpose:
                out.append(("dec\(b).up.weight", [cin, channels(b), 2, 2]))
                out.append(("dec\(b).up.bias", [channels(b)]))
            case .unpool:
                conv("dec\(b).up", cin, channels(b), 1)
            }
            cin = 2 * channels(b)
            for j in 1...convCount(b) {
                conv("dec\(b).conv\(j)", cin, channels(b), 3)
                cin = channels(b)
            }
        }
        conv("final", cin, 3, 1)
        return out
    }

    public var parameterCount: Int {
        parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
    }

    /// Multiply-adds ×2 of one forward pass at the given padded size.
    public func flops(height: Int, width w: Int) -> Double {
        var total = 0.0
        var h = Double(height), ww = Double(w)
        var cin = 3.0
        var sizes: [(Double, Double)] = []
        for b in 1...levels {
            if b > 1 { h /= 2; ww /= 2 }
            sizes.append((h, ww))
            for _ in 1...convCount(b) { total += 2 * 9 * cin * Double(channels(b)) * h * ww; cin = Double(channels(b)) }
        }
        for b in stride(from: levels - 1, through: 1, by: -1) {
            let (bh, bw) = sizes[b - 1]
            let c = Double(channels(b))
            total += upsample == .transpose ? 2 * cin * c * bh * bw : 2 * cin * c * bh * bw / 4
            cin = 2 * c
            for _ in 1...convCount(b) { total += 2 * 9 * cin * c * bh * bw; cin = c }
        }
        total += 2 * cin * 3 * Double(height) * Double(w)
        return total
    }

    // MARK: Stored form

    /// Configuration entries as written to a weights file.
    public var fileEntries: [(key: String, value: ConfigValue)] {
        [("architecture", .string("unet-vgg16")),
         ("width", .float(width)),
         ("levels", .int(Int64(levels))),
         ("upsample", .string(upsample.rawValue)),
         ("activation", .string(activation.rawValue)),
         ("formulation", .string(formulation.rawValue)),
         ("description", .string(description))]
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
        guard (1...5).contains(levels) else { throw .badConfig(key: "levels", reason: "\(levels) is outside 1...5") }
        self.init(width: width, levels: Int(levels),
                  upsample: try choice("upsample", Upsample.self),
                  activation: try choice("activation", OutputActivation.self),
                  formulation: try choice("formulation", Formulation.self),
                  description: (try? string("description")) ?? "")
    }
}
