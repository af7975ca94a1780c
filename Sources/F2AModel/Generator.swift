import F2ACore

/// Raised when a progress callback asks to stop.
public struct Cancelled: Error, Sendable {}

/// The flash-to-ambient generator with loaded parameters. Immutable after
/// construction and therefore safe to share between threads.
public struct Generator: Sendable {
    public let config: GeneratorConfig
    /// encoder[b-1][j-1] is `enc{b}.conv{j}`.
    let encoder: [[Conv2d]]
    /// Indexed by level b (1 ..< levels); index 0 unused (nil).
    let up: [Upsampler?]
    let decoder: [[Conv2d]]
    let final: Conv2d

    enum Upsampler: Sendable {
        case transpose(ConvTranspose2d)
        case unpool(Conv2d)
    }

    /// Builds the generator from a weights file, strictly: every tensor the
    /// configuration needs must be present with its exact shape, and no other.
    public init(file: WeightsFile) throws(WeightsError) {
        let config = try GeneratorConfig(file: file)
        var byName: [String: Tensor] = [:]
        for (name, tensor) in file.tensors {
            guard byName.updateValue(tensor, forKey: name) == nil else { throw .duplicateTensor(name: name) }
        }
        for (name, shape) in config.parameterShapes {
            guard let t = byName[name] else { throw .missingTensor(name: name, expected: shape) }
            guard t.shape == shape else { throw .shapeMismatch(name: name, expected: shape, found: t.shape) }
        }
        let known = Set(config.parameterShapes.map(\.name))
        if let extra = file.tensors.first(where: { !known.contains($0.name) }) {
            throw .unexpectedTensor(name: extra.name, shape: extra.tensor.shape)
        }
        // The kernels' packed weights (Winograd: up to 4x a 3x3 weight) are Swift arrays,
        // whose failed allocation would abort the host: their total is first taken from
        // malloc, which can fail, and given back.
        var floats = 0
        for (name, shape) in config.parameterShapes where name.hasSuffix(".weight") {
            let transpose = config.upsample == .transpose && name.hasSuffix(".up.weight")
            floats += transpose ? ConvTranspose2d.packedCount(weightShape: shape)
                : Conv2d.packedCount(outChannels: shape[0], inChannels: shape[1], kernelSize: shape[2],
                                     padding: shape[2] == 3 ? 1 : 0)
        }
        let bytes = floats * MemoryLayout<Float>.size + WeightsFile.loadSlack
        guard FallibleBuffer(count: bytes) != nil else {
            throw .outOfMemory(what: "the packed weights of the \(config.parameterShapes.count / 2) layers", bytes: bytes)
        }
        self.init(config: config) { name in byName[name]! }
    }

    /// Builds the generator from a parameter source keyed by the canonical
    /// names of `config.parameterShapes` (shapes must already match).
    public init(config: GeneratorConfig, parameter: (String) -> Tensor) {
        func conv(_ name: String, padding: Int) -> Conv2d {
            Conv2d(weight: parameter("\(name).weight"), bias: parameter("\(name).bias"), padding: padding)
        }
        self.config = config
        encoder = (1...config.levels).map { b in (1...config.convCount(b)).map { conv("enc\(b).conv\($0)", padding: 1) } }
        var up: [Upsampler?] = [nil]
        var decoder: [[Conv2d]] = [[]]
        for b in 1..<config.levels {
            switch config.upsample {
            case .transpose:
                up.append(.transpose(ConvTranspose2d(weight: parameter("dec\(b).up.weight"), bias: parameter("dec\(b).up.bias"))))
            case .unpool:
                up.append(.unpool(conv("dec\(b).up", padding: 0)))
            }
            decoder.append((1...config.convCount(b)).map { conv("dec\(b).conv\($0)", padding: 1) })
        }
        self.up = up
        self.decoder = decoder
        final = conv("final", padding: 0)
    }

    /// Number of layer evaluations of one forward pass (for progress reporting).
    var layerCount: Int {
        encoder.joined().count + (config.levels - 1) + decoder.joined().count + 1
    }

    /// `new`, after handing the storage of `old` (no longer needed) to the
    /// next layer's output.
    private func replacing(_ old: inout Tensor, with new: Tensor) -> Tensor {
        Tensor.recycle(&old)
        return new
    }

    /// Runs the network on flash images already padded to `config.sizeMultiple`.
    ///
    /// - Parameter flash: [N, 3, H, W], sRGB values in [0, 1].
    /// - Parameter progress: called after each layer with the fraction done;
    ///   return false to cancel (throws `Cancelled`).
    /// - Returns: the ambient estimate, [N, 3, H, W] in [0, 1].
    public func forward(_ flash: Tensor, progress: ((Double) -> Bool)? = nil) throws(Cancelled) -> Tensor {
        precondition(flash.rank == 4 && flash.c == 3, "forward expects [N, 3, H, W], got \(flash.shape.shapeDescription)")
        precondition(flash.h % config.sizeMultiple == 0 && flash.w % config.sizeMultiple == 0,
                     "forward expects H and W multiples of \(config.sizeMultiple), got \(flash.h)x\(flash.w)")
        let total = Double(layerCount)
        var done = 0.0
        func step() throws(Cancelled) {
            done += 1
            if let progress, !progress(done / total) { throw Cancelled() }
        }

        // The network sees inputs centred on zero, in [-1, 1].
        var x = affine(flash, scale: 2, shift: -1)
        var skips: [Tensor] = []
        var poolIndices: [[Int32]] = []
        for b in 1...config.levels {
            if b > 1 {
                skips.append(x)
                if config.upsample == .unpool {
                    let (pooled, indices) = maxPool2d(x)
                    poolIndices.append(indices)
                    x = pooled
                } else {
                    x = maxPool2dValues(x)
                }
            }
            for conv in encoder[b - 1] { x = replacing(&x, with: conv(x, activation: .relu)); try step() }
        }
        for b in stride(from: config.levels - 1, through: 1, by: -1) {
            var skip = skips.removeLast()
            switch up[b]! {
            case .transpose(let t):
                x = replacing(&x, with: t(x, activation: .relu))
            case .unpool(let c):
                x = maxUnpool2d(c(x, activation: .relu), indices: poolIndices[b - 1], height: skip.h, width: skip.w)
            }
            try step()
            // The first decoder conv reads [upsampled, skip] without a concatenated copy.
            x = replacing(&x, with: decoder[b][0](concatenating: [x, skip], activation: .relu))
            Tensor.recycle(&skip)
            try step()
            for conv in decoder[b].dropFirst() { x = replacing(&x, with: conv(x, activation: .relu)); try step() }
        }
        let outputActivation: Activation = config.activation == .sigmoid ? .sigmoid : .tanh
        if config.activation == .sigmoid,
           let y = final.head(x, activation: .sigmoid, ratioLogFlash: config.formulation == .ratioLog ? flash : nil) {
            x = replacing(&x, with: y)
        } else {
            x = final(x, activation: outputActivation)
            if config.activation == .tanh {
                x.data.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = (p[i] + 1) / 2 } }
            }
            if config.formulation == .ratioLog {
                RatioLog.decode(ratio: &x, flash: flash)
            }
        }
        try step()
        return x
    }
}
