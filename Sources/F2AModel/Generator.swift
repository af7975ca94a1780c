import F2ACore

/// Raised when a progress callback asks to stop (and by callers that stop a streamed apply
/// between its passes).
public struct Cancelled: Error, Sendable {
    public init() {}
}

/// The flash-to-ambient generator with loaded parameters. Immutable after
/// construction and therefore safe to share between threads.
public struct Generator: Sendable {
    public let config: GeneratorConfig
    /// `config.layers` with their loaded operators, in evaluation order: what
    /// `forward` walks.
    let layers: [(layer: GeneratorConfig.Layer, op: Operator)]

    /// How a layer of `GeneratorConfig.Layer.Kind` runs on the engine.
    enum Operator: Sendable {
        case conv3x3(Conv2d)
        /// `.upsample` with `GeneratorConfig.Upsample.transpose`.
        case transpose(ConvTranspose2d)
        /// `.upsample` with `.unpool`: the 1x1 conv, then max-unpooling.
        case unpool(Conv2d)
        case output(Conv2d)
    }

    /// Builds the generator from a weights file, strictly: every tensor the
    /// configuration needs must be present with its exact shape, and no other.
    public init(file: WeightsFile) throws(WeightsError) {
        let config = try GeneratorConfig(file: file)
        let byName = try config.parameters(of: file)
        // The kernels' packed weights (Winograd: up to 4x a 3x3 weight) are Swift arrays,
        // whose failed allocation would abort the host: their total is first taken from
        // malloc, which can fail, and given back.
        let layers = config.layers
        var floats = 0
        for layer in layers {
            let shape = config.weightShape(layer)
            floats += layer.kind == .upsample && config.upsample == .transpose
                ? ConvTranspose2d.packedCount(weightShape: shape)
                : Conv2d.packedCount(outChannels: shape[0], inChannels: shape[1], kernelSize: shape[2],
                                     padding: config.padding(layer))
        }
        let bytes = floats * MemoryLayout<Float>.size + WeightsFile.loadSlack
        guard FallibleBuffer(count: bytes) != nil else {
            throw .outOfMemory(what: "the packed weights of the \(layers.count) layers", bytes: bytes)
        }
        self.init(config: config) { name in byName[name]! }
    }

    /// Builds the generator from a parameter source keyed by the canonical
    /// names of `config.parameterShapes` (shapes must already match).
    public init(config: GeneratorConfig, parameter: (String) -> Tensor) {
        self.config = config
        layers = config.layers.map { layer in
            let weight = parameter("\(layer.name).weight"), bias = parameter("\(layer.name).bias")
            let padding = config.padding(layer)
            switch layer.kind {
            case .conv3x3:
                return (layer, .conv3x3(Conv2d(weight: weight, bias: bias, padding: padding)))
            case .upsample:
                switch config.upsample {
                case .transpose: return (layer, .transpose(ConvTranspose2d(weight: weight, bias: bias)))
                case .unpool: return (layer, .unpool(Conv2d(weight: weight, bias: bias, padding: padding)))
                }
            case .output:
                return (layer, .output(Conv2d(weight: weight, bias: bias, padding: padding)))
            }
        }
    }

    /// Number of layer evaluations of one forward pass (for progress reporting).
    var layerCount: Int { layers.count }

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
        // The pool's workers stay awake between the layers (see f2a_pool_hold).
        try withThreadPoolHeld { () throws(Cancelled) -> Tensor in try forwardLayers(flash, progress: progress) }
    }

    private func forwardLayers(_ flash: Tensor, progress: ((Double) -> Bool)?) throws(Cancelled) -> Tensor {
        precondition(flash.rank == 4 && flash.c == 3, "forward expects [N, 3, H, W], got \(flash.shape.shapeDescription)")
        precondition(flash.h % config.sizeMultiple == 0 && flash.w % config.sizeMultiple == 0,
                     "forward expects H and W multiples of \(config.sizeMultiple), got \(flash.h)x\(flash.w)")
        Tensor.beginPass(signature: flash.shape + config.layers.map(\.outChannels))
        let total = Double(layerCount)
        var done = 0.0
        func step() throws(Cancelled) {
            done += 1
            if let progress, !progress(done / total) { throw Cancelled() }
        }

        // The network sees inputs centred on zero, in [-1, 1].
        var x = affine(flash, scale: 2, shift: -1)
        // Encoder outputs kept for the decoder (skips) and, for unpooling, where each
        // pooling window's maximum was; both are consumed deepest first.
        var skips: [Tensor] = []
        var poolIndices: [[Int32]] = []
        var skip: Tensor? = nil
        for (layer, op) in layers {
            if layer.input == .pooled {
                skips.append(x)
                if config.upsample == .unpool {
                    let (pooled, indices) = maxPool2d(x)
                    poolIndices.append(indices)
                    x = pooled
                } else {
                    x = maxPool2dValues(x)
                }
            }
            switch op {
            case .conv3x3(let conv):
                if layer.input == .withSkip, var s = skip {
                    skip = nil
                    // [upsampled, skip] without a concatenated copy.
                    x = replacing(&x, with: conv(concatenating: [x, s], activation: .relu))
                    Tensor.recycle(&s)
                } else {
                    x = replacing(&x, with: conv(x, activation: .relu))
                }
            case .transpose(let t):
                skip = skips.removeLast()
                x = replacing(&x, with: t(x, activation: .relu))
            case .unpool(let c):
                let s = skips.removeLast()
                x = maxUnpool2d(c(x, activation: .relu), indices: poolIndices.removeLast(), height: s.h, width: s.w)
                skip = s
            case .output(let final):
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
            }
            try step()
        }
        return x
    }
}
