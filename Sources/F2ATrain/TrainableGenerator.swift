#if canImport(Glibc)
import Glibc
#endif
import F2ACore
import F2AModel

/// The generator of `F2AModel.Generator` with a training forward pass that
/// records what the backward pass needs. Parameter names and shapes are
/// `GeneratorConfig.parameterShapes`, so an export is the weights file the
/// library loads.
public final class TrainableGenerator: @unchecked Sendable {
    public let config: GeneratorConfig
    public let params: ParameterSet
    /// Encoder blocks 1...N whose parameters training never changes. Their forward
    /// pass runs on the inference engine's kernels and keeps nothing for the backward
    /// pass, which stops above them: a frozen pretrained encoder costs one inference.
    public let frozenEncoderBlocks: Int
    let ws = Workspace()
    /// The frozen blocks packed for the inference kernels; nil until the next forward
    /// pass after the parameters were set (`parametersChanged()`).
    private var frozenConvs: [[Conv2d]]?

    public init(config: GeneratorConfig, frozenEncoderBlocks: Int = 0) {
        precondition((0...config.levels).contains(frozenEncoderBlocks), "frozen blocks \(frozenEncoderBlocks) of \(config.levels)")
        self.config = config
        self.frozenEncoderBlocks = frozenEncoderBlocks
        params = ParameterSet(shapes: config.parameterShapes)
    }

    public func initialise(_ scheme: InitScheme, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let transposedUp = config.upsample == .transpose
        params.initialise(scheme, rng: &rng) { transposedUp && $0.hasSuffix(".up.weight") }
        parametersChanged()
    }

    /// To be called after writing `params.values` other than through training steps
    /// (loading, restoring a checkpoint): the frozen blocks are packed again.
    public func parametersChanged() { frozenConvs = nil }

    private func packedFrozenBlocks() -> [[Conv2d]] {
        if let frozenConvs { return frozenConvs }
        let packed = (0..<frozenEncoderBlocks).map { i in
            (1...config.convCount(i + 1)).map { j -> Conv2d in
                Conv2d(weight: params.tensor("enc\(i + 1).conv\(j).weight"), bias: params.tensor("enc\(i + 1).conv\(j).bias"),
                       padding: 1)
            }
        }
        frozenConvs = packed
        return packed
    }

    /// Loads parameters from a weights file of the same architecture.
    public func load(_ file: WeightsFile) throws(TrainError) {
        let fileConfig: GeneratorConfig
        do { fileConfig = try GeneratorConfig(file: file) } catch { throw .weights("\(error)") }
        guard fileConfig.parameterShapes.map(\.shape) == config.parameterShapes.map(\.shape),
              fileConfig.upsample == config.upsample else {
            throw .weights("weights are \(fileConfig.summary), the trainer is set up for \(config.summary)")
        }
        var byName: [String: Tensor] = [:]
        for (n, t) in file.tensors { byName[n] = t }
        for (i, name) in params.names.enumerated() {
            guard let t = byName[name], t.shape == params.shapes[i] else { throw .weights("tensor \(name) missing or misshapen") }
            params.values[i] = t.data
        }
        parametersChanged()
    }

    /// The inference generator with the current parameters.
    public func inferenceModel() -> Generator {
        Generator(config: config) { self.params.tensor($0) }
    }

    /// The exportable weights file with the current parameters.
    public func weightsFile(description: String? = nil) -> WeightsFile {
        var c = config
        if let description { c.description = description }
        var dict: [String: Tensor] = [:]
        for n in params.names { dict[n] = params.tensor(n) }
        return c.weightsFile(parameters: dict)
    }

    // MARK: Forward

    struct ConvRecord { var input: Tensor; var output: Tensor }

    public struct Cache {
        var flash: Tensor
        var enc: [[ConvRecord]] = []
        var poolIndices: [[Int32]] = []
        var skips: [Tensor] = []
        var upInput: [Tensor] = []          // indexed by level b
        var upOutput: [Tensor] = []         // ReLU output of convT / 1x1 conv
        var dec: [[ConvRecord]] = []
        var finalInput: Tensor
        /// Output of the final activation mapped to [0, 1] (sigmoid, or (tanh+1)/2).
        public var raw: Tensor
        /// tanh output (tanh activation only).
        var tanhOut: Tensor?
        /// The ambient estimate (raw, or its ratio-log decoding).
        public var output: Tensor
    }

    /// relu(conv3x3(x) + bias) on the inference engine's kernels.
    private func conv3x3ReLU(_ x: Tensor, _ name: String) -> Tensor {
        let w = params.id(name + ".weight"), b = params.id(name + ".bias")
        return EngineConvolution.forward(x, weight: params.values[w], bias: params.values[b], shape: params.shapes[w], relu: true)
    }

    private func conv(_ x: Tensor, _ name: String, padding: Int) -> Tensor {
        let w = params.id(name + ".weight"), b = params.id(name + ".bias")
        let s = params.shapes[w]
        let g = ConvGeometry(s[1], s[0], kernel: s[2], stride: 1, padding: padding)
        return conv2dForward(x, weight: params.values[w], bias: params.values[b], g, workspace: ws)
    }

    /// flash: [N, 3, H, W] in [0, 1], H and W multiples of `config.sizeMultiple`.
    public func forward(_ flash: Tensor) -> Cache {
        precondition(flash.rank == 4 && flash.c == 3 && flash.h % config.sizeMultiple == 0 && flash.w % config.sizeMultiple == 0,
                     "generator input \(flash.shape.shapeDescription) (needs multiples of \(config.sizeMultiple))")
        let L = config.levels, frozen = frozenEncoderBlocks
        var x = flash
        Pointwise.affine(&x, 2, -1)
        var enc: [[ConvRecord]] = [], skips: [Tensor] = [], pools: [[Int32]] = []
        let frozenConvs = packedFrozenBlocks()
        for b in 1...L {
            if b > 1 {
                skips.append(x)
                // Pooling indices serve the gradient into block b−1 and unpooling.
                if b - 1 > frozen || config.upsample == .unpool {
                    let (p, idx) = maxPool2d(x)
                    pools.append(idx)
                    x = p
                } else {
                    pools.append([])
                    x = maxPool2dValues(x)
                }
            }
            if b <= frozen {
                for conv in frozenConvs[b - 1] { x = conv(x, activation: .relu) }
                enc.append([])
                continue
            }
            var recs: [ConvRecord] = []
            for j in 1...config.convCount(b) {
                let y = conv3x3ReLU(x, "enc\(b).conv\(j)")
                recs.append(ConvRecord(input: x, output: y))
                x = y
            }
            enc.append(recs)
        }
        var upIn = [Tensor](repeating: Tensor(zeros: [0]), count: L)
        var upOut = upIn
        var dec = [[ConvRecord]](repeating: [], count: L)
        for b in stride(from: L - 1, through: 1, by: -1) {
            let skip = skips[b - 1]
            upIn[b] = x
            switch config.upsample {
            case .transpose:
                let w = params.id("dec\(b).up.weight"), bi = params.id("dec\(b).up.bias")
                var y = convTranspose2x2Forward(x, weight: params.values[w], bias: params.values[bi], outChannels: config.decoderChannels(b))
                Pointwise.relu(&y)
                upOut[b] = y
                x = y
            case .unpool:
                var y = conv(x, "dec\(b).up", padding: 0)
                Pointwise.relu(&y)
                upOut[b] = y
                x = maxUnpool2d(y, indices: pools[b - 1], height: skip.h, width: skip.w)
            }
            x = concatChannels(x, skip)
            var recs: [ConvRecord] = []
            for j in 1...config.convCount(b) {
                let y = conv3x3ReLU(x, "dec\(b).conv\(j)")
                recs.append(ConvRecord(input: x, output: y))
                x = y
            }
            dec[b] = recs
        }
        let finalInput = x
        var z = conv(x, "final", padding: 0)
        var tanhOut: Tensor? = nil
        switch config.activation {
        case .sigmoid:
            Activation.sigmoid.apply(&z)
        case .tanh:
            Activation.tanh.apply(&z)
            tanhOut = z
            Pointwise.affine(&z, 0.5, 0.5)
        }
        var output = z
        if config.formulation == .ratioLog { RatioLog.decode(ratio: &output, flash: flash) }
        return Cache(flash: flash, enc: enc, poolIndices: pools, skips: skips, upInput: upIn, upOutput: upOut,
                     dec: dec, finalInput: finalInput, raw: z, tanhOut: tanhOut, output: output)
    }

    // MARK: Backward

    private func convBackward(_ rec: ConvRecord, _ dy: Tensor, _ name: String, padding: Int, inputGradient: Bool = true,
                              inputGradientChannels: Int? = nil) -> Tensor? {
        let w = params.id(name + ".weight"), b = params.id(name + ".bias")
        let s = params.shapes[w]
        let g = ConvGeometry(s[1], s[0], kernel: s[2], stride: 1, padding: padding)
        let weight = params.values[w]
        // 3x3 convs take their input gradient from the engine (EngineConvolution).
        let engine = s[2] == 3 && padding == 1
        let dx = params.withGrad(w) { dW in
            params.withGrad(b) { dB in
                conv2dBackward(rec.input, dy: dy, weight: weight, g, dW: dW, dB: dB, inputGradient: inputGradient && !engine,
                               inputGradientChannels: inputGradientChannels, workspace: ws)
            }
        }
        guard engine, inputGradient else { return dx }
        return EngineConvolution.inputGradient(dy, weight: weight, shape: s, channels: inputGradientChannels ?? s[1])
    }

    /// Accumulates parameter gradients for a loss whose gradient with respect
    /// to the output image is `dOutput` and with respect to `raw` is `dRaw`
    /// (either may be nil).
    public func backward(_ cache: Cache, dOutput: Tensor?, dRaw: Tensor?) {
        let L = config.levels
        // d raw
        var d: Tensor
        if let dOutput {
            if config.formulation == .ratioLog {
                d = RatioLogGrad.decodeBackward(dOutput, ratio: cache.raw, flash: cache.flash)
            } else {
                d = dOutput
            }
            if let dRaw { Pointwise.add(&d, dRaw) }
        } else {
            d = dRaw!
        }
        // through the output activation to the pre-activation z
        switch config.activation {
        case .sigmoid:
            Pointwise.sigmoidBackward(&d, output: cache.raw)
        case .tanh:
            Pointwise.affine(&d, 0.5, 0)
            Pointwise.tanhBackward(&d, output: cache.tanhOut!)
        }
        d = convBackward(ConvRecord(input: cache.finalInput, output: cache.raw), d, "final", padding: 0)!
        var dSkips = [Tensor?](repeating: nil, count: L)
        for b in 1..<L {
            // The first conv reads [upsampled, skip]; a frozen block's skip needs no gradient.
            let skipFrozen = b <= frozenEncoderBlocks
            for j in stride(from: config.convCount(b), through: 1, by: -1) {
                let rec = cache.dec[b][j - 1]
                Pointwise.reluBackward(&d, output: rec.output)
                d = convBackward(rec, d, "dec\(b).conv\(j)", padding: 1,
                                 inputGradientChannels: j == 1 && skipFrozen ? config.decoderChannels(b) : nil)!
            }
            let dUp: Tensor
            if skipFrozen {
                dUp = d
            } else {
                let (up, dSkip) = splitChannels(d, first: config.decoderChannels(b))
                dUp = up
                dSkips[b] = dSkip
            }
            switch config.upsample {
            case .transpose:
                var du = dUp
                Pointwise.reluBackward(&du, output: cache.upOutput[b])
                let w = params.id("dec\(b).up.weight"), bi = params.id("dec\(b).up.bias")
                let weight = params.values[w]
                d = params.withGrad(w) { dW in
                    params.withGrad(bi) { dB in
                        convTranspose2x2Backward(cache.upInput[b], dy: du, weight: weight, outChannels: config.decoderChannels(b), dW: dW, dB: dB)
                    }
                }
            case .unpool:
                let u = cache.upOutput[b]
                var du = maxUnpoolBackward(dUp, indices: cache.poolIndices[b - 1], pooledHeight: u.h, pooledWidth: u.w)
                Pointwise.reluBackward(&du, output: u)
                d = convBackward(ConvRecord(input: cache.upInput[b], output: u), du, "dec\(b).up", padding: 0)!
            }
        }
        // d is now the gradient of the encoder's bottom output. Nothing flows into
        // the frozen blocks, and no layer needs the gradient of their output.
        let frozen = frozenEncoderBlocks
        for b in stride(from: L, through: frozen + 1, by: -1) {
            for j in stride(from: config.convCount(b), through: 1, by: -1) {
                let rec = cache.enc[b - 1][j - 1]
                Pointwise.reluBackward(&d, output: rec.output)
                let first = b == frozen + 1 && j == 1
                if let dx = convBackward(rec, d, "enc\(b).conv\(j)", padding: 1, inputGradient: !first) { d = dx }
            }
            if b > frozen + 1 {
                let skip = cache.skips[b - 2]
                var ds = maxPoolBackward(d, indices: cache.poolIndices[b - 2], inputHeight: skip.h, inputWidth: skip.w)
                if let extra = dSkips[b - 1] { Pointwise.add(&ds, extra) }
                d = ds
            }
        }
    }
}

enum RatioLogGrad {
    /// Gradient through A = clamp((F+1)·2^(2r−1) − 1, 0, 1) with respect to r.
    static func decodeBackward(_ dA: Tensor, ratio r: Tensor, flash f: Tensor) -> Tensor {
        var out = dA
        let k = 2 * Float(M_LN2)
        r.data.withUnsafeBufferPointer { rp in
            f.data.withUnsafeBufferPointer { fp in
                out.data.withUnsafeMutableBufferPointer { o in
                    for i in o.indices {
                        let e = (fp[i] + 1) * exp2f(2 * rp[i] - 1)
                        let pre = e - 1
                        o[i] = (pre > 0 && pre < 1) ? o[i] * e * k : 0
                    }
                }
            }
        }
        return out
    }
}
