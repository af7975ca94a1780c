#if canImport(Glibc)
import Glibc
#endif
import CKernels
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
    /// `config.layers`, what the forward and backward passes walk, and the indices in
    /// `params` of each layer's weight and bias.
    let layers: [GeneratorConfig.Layer]
    let layerParameters: [(weight: Int, bias: Int)]
    let ws = Workspace()
    /// The frozen layers packed for the inference kernels, by layer index (nil: not
    /// frozen); nil until the next forward pass after the parameters were set
    /// (`parametersChanged()`).
    private var frozenConvs: [Conv2d?]?

    public init(config: GeneratorConfig, frozenEncoderBlocks: Int = 0) {
        precondition((0...config.levels).contains(frozenEncoderBlocks), "frozen blocks \(frozenEncoderBlocks) of \(config.levels)")
        self.config = config
        self.frozenEncoderBlocks = frozenEncoderBlocks
        let params = ParameterSet(shapes: config.parameterShapes), layers = config.layers
        self.params = params
        self.layers = layers
        layerParameters = layers.map { (params.id($0.name + ".weight"), params.id($0.name + ".bias")) }
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

    /// A layer whose parameters never change: part of a frozen encoder block.
    private func isFrozen(_ layer: GeneratorConfig.Layer) -> Bool {
        layer.isEncoder && layer.level <= frozenEncoderBlocks
    }

    private func packedFrozenLayers() -> [Conv2d?] {
        if let frozenConvs { return frozenConvs }
        let packed = layers.indices.map { i -> Conv2d? in
            guard isFrozen(layers[i]) else { return nil }
            let (w, b) = layerParameters[i]
            return Conv2d(weight: params.tensor(params.names[w]), bias: params.tensor(params.names[b]),
                          padding: config.padding(layers[i]))
        }
        frozenConvs = packed
        return packed
    }

    /// Loads parameters from a weights file of the same architecture, as strictly as
    /// the library loads one (`GeneratorConfig.parameters(of:)`): a missing, extra or
    /// misshapen tensor is an error naming it and the shapes expected and found.
    public func load(_ file: WeightsFile) throws(TrainError) {
        let fileConfig: GeneratorConfig
        do { fileConfig = try GeneratorConfig(file: file) } catch { throw .weights("\(error)") }
        guard fileConfig.parameterShapes.map(\.shape) == config.parameterShapes.map(\.shape),
              fileConfig.upsample == config.upsample else {
            throw .weights("weights are \(fileConfig.summary), the trainer is set up for \(config.summary)")
        }
        let tensors: [String: Tensor]
        do { tensors = try config.parameters(of: file) } catch { throw .weights("\(error)") }
        for (i, name) in params.names.enumerated() { params.values[i] = tensors[name]!.data }
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

    /// A layer's input and output as the backward pass needs them: for a conv the
    /// input it read and its activation's output; for an upsampling the ReLU output before
    /// any unpooling; for the output layer the raw output. A decoder conv reads
    /// [input, skip] without their concatenation being made (the 3x3 kernels read both
    /// where they lie; 30 MB of copies per step of the width-0.25 generator, batch 8).
    struct LayerRecord {
        var input: Tensor
        var skip: Tensor? = nil
        var output: Tensor

        /// [input, skip] as one tensor, for the paths that read it so.
        var concatenatedInput: Tensor { skip.map { concatChannels(input, $0) } ?? input }
    }

    public struct Cache {
        var flash: Tensor
        /// By index into `config.layers`; nil for frozen layers.
        var records: [LayerRecord?]
        /// Indices of the pooling into level b at b − 2 (empty where nothing needs them).
        var poolIndices: [[Int32]] = []
        /// The skip of level b (the encoder's output there, before pooling) at b − 1.
        var skips: [Tensor] = []
        /// Output of the final activation mapped to [0, 1] (sigmoid, or (tanh+1)/2).
        public var raw: Tensor
        /// tanh output (tanh activation only).
        var tanhOut: Tensor?
        /// The ambient estimate (raw, or its ratio-log decoding).
        public var output: Tensor
    }

    /// conv(x) + bias on im2col + sgemm (the 1x1 convolutions).
    private func conv(_ x: Tensor, layer i: Int) -> Tensor {
        let (w, b) = layerParameters[i]
        let s = params.shapes[w]
        let g = ConvGeometry(s[1], s[0], kernel: s[2], stride: 1, padding: config.padding(layers[i]))
        return conv2dForward(x, weight: params.values[w], bias: params.values[b], g, workspace: ws)
    }

    /// activation(conv(x) + bias) of the output layer: on the engine's head kernel (one pass
    /// on the thread pool, as the exported model's forward pass computes it) where that
    /// runs, else `conv` and then the activation. That way (sgemm, then one libm call per
    /// element on one thread) the layer took 2.4 ms of a 75 ms width-0.125 step (crop 128,
    /// batch 8: 393 K outputs).
    private func outputConv(_ x: Tensor, layer i: Int, activation: Activation) -> Tensor {
        let (w, b) = layerParameters[i]
        let s = params.shapes[w]
        if s[2] == 1 && config.padding(layers[i]) == 0 {
            let head = Conv2d(weight: Tensor(shape: s, data: params.values[w]), bias: Tensor(shape: [s[0]], data: params.values[b]),
                              padding: 0)
            if let y = head.head(x, activation: activation, ratioLogFlash: nil) { return y }
        }
        var z = conv(x, layer: i)
        activation.apply(&z)
        return z
    }

    /// flash: [N, 3, H, W] in [0, 1], H and W multiples of `config.sizeMultiple`.
    public func forward(_ flash: Tensor) -> Cache {
        precondition(flash.rank == 4 && flash.c == 3 && flash.h % config.sizeMultiple == 0 && flash.w % config.sizeMultiple == 0,
                     "generator input \(flash.shape.shapeDescription) (needs multiples of \(config.sizeMultiple))")
        let frozen = frozenEncoderBlocks
        var x = flash
        Pointwise.affine(&x, 2, -1)
        var records = [LayerRecord?](repeating: nil, count: layers.count)
        var skips: [Tensor] = [], pools: [[Int32]] = []
        var raw = Tensor(zeros: [0]), tanhOut: Tensor? = nil
        let frozenConvs = packedFrozenLayers()
        for (i, layer) in layers.enumerated() {
            let (w, b) = layerParameters[i]
            let t0 = LayerTimes.start()
            defer {
                LayerTimes.record(Self.timesKey(i, flash.n), .forward, since: t0,
                                  "\(layer.name) \(layer.inChannels) → \(layer.outChannels) at \(x.h)×\(x.w)",
                                  flops: layerFlops(i, flash))
            }
            if layer.input == .pooled {
                skips.append(x)
                // Pooling indices serve the gradient into block level − 1 and unpooling.
                if layer.level - 1 > frozen || config.upsample == .unpool {
                    let (p, idx) = maxPool2d(x)
                    pools.append(idx)
                    x = p
                } else {
                    pools.append([])
                    x = maxPool2dValues(x)
                }
            }
            // A decoder conv's input is [x, skip] (GeneratorConfig gives skips to 3x3 convs only).
            let skip = layer.input == .withSkip ? skips[layer.level - 1] : nil
            precondition(skip == nil || layer.kind == .conv3x3, "\(layer.name): a skip input on a \(layer.kind) layer")
            switch layer.kind {
            case .conv3x3:
                if let frozenConv = frozenConvs[i] {
                    x = frozenConv(concatenating: skip.map { [x, $0] } ?? [x], activation: .relu)
                    continue
                }
                // relu(conv3x3(x) + bias) on the inference engine's kernels.
                let y = EngineConvolution.forward(x, skip: skip, weight: params.values[w], bias: params.values[b],
                                                  shape: params.shapes[w], relu: true)
                records[i] = LayerRecord(input: x, skip: skip, output: y)
                x = y
            case .upsample:
                var y: Tensor
                switch config.upsample {
                case .transpose:
                    y = convTranspose2x2Forward(x, weight: params.values[w], bias: params.values[b], outChannels: layer.outChannels,
                                                relu: true)
                case .unpool:
                    y = conv(x, layer: i)
                    Pointwise.relu(&y)
                }
                records[i] = LayerRecord(input: x, output: y)
                if config.upsample == .unpool {
                    let skip = skips[layer.level - 1]
                    x = maxUnpool2d(y, indices: pools[layer.level - 1], height: skip.h, width: skip.w)
                } else {
                    x = y
                }
            case .output:
                var z = outputConv(x, layer: i, activation: config.activation == .sigmoid ? .sigmoid : .tanh)
                if config.activation == .tanh {
                    tanhOut = z
                    Pointwise.affine(&z, 0.5, 0.5)
                }
                records[i] = LayerRecord(input: x, output: z)
                raw = z
                x = z
            }
        }
        var output = x
        if config.formulation == .ratioLog { RatioLog.decode(ratio: &output, flash: flash) }
        return Cache(flash: flash, records: records, poolIndices: pools, skips: skips, raw: raw, tanhOut: tanhOut, output: output)
    }

    // MARK: Backward

    /// Accumulates layer i's parameter gradients for output gradient dy and returns its
    /// input gradient (of the first `inputGradientChannels` channels only, if given),
    /// or nil without `inputGradient`. With `gate` (`reluBelow`) the input gradient has been
    /// through that ReLU too.
    private func convBackward(layer i: Int, _ rec: LayerRecord, _ dy: Tensor, inputGradient: Bool = true,
                              inputGradientChannels: Int? = nil, gate: Tensor? = nil) -> Tensor? {
        let (w, b) = layerParameters[i]
        let s = params.shapes[w]
        let padding = config.padding(layers[i])
        let g = ConvGeometry(s[1], s[0], kernel: s[2], stride: 1, padding: padding)
        let weight = params.values[w]
        // 3x3 convs take their input gradient from the engine (EngineConvolution).
        let engine = s[2] == 3 && padding == 1
        // The parts of a 3x3 convolution's backward pass (the other layers that come here are
        // timed as a whole, `backward`).
        let timed = layers[i].kind == .conv3x3 && LayerTimes.enabled
        let tW = LayerTimes.start(), t = timed ? g.flops(images: dy.n, height: dy.h, width: dy.w) : 0
        let dx: Tensor? = params.withGrad(w) { dW in
            params.withGrad(b) { dB -> Tensor? in
                if engine, EngineConvolution.weightGradient(rec.input, skip: rec.skip, dy: dy, into: dW, bias: dB) { return nil }
                return conv2dBackward(rec.concatenatedInput, dy: dy, weight: weight, g, dW: dW, dB: dB,
                                      inputGradient: inputGradient && !engine, inputGradientChannels: inputGradientChannels,
                                      workspace: ws)
            }
        }
        if timed { LayerTimes.record(Self.timesKey(i, dy.n), .weightGradient, since: tW, layers[i].name, flops: t) }
        guard engine, inputGradient else {
            guard var dx, let gate else { return dx }
            Pointwise.reluBackward(&dx, output: gate)
            return dx
        }
        let tX = LayerTimes.start()
        defer {
            if timed {
                LayerTimes.record(Self.timesKey(i, dy.n), .inputGradient, since: tX, layers[i].name,
                                  flops: t * Double(inputGradientChannels ?? s[1]) / Double(s[1]))
            }
        }
        return EngineConvolution.inputGradient(dy, weight: weight, shape: s, channels: inputGradientChannels ?? s[1],
                                               gate: gate)
    }

    /// Layer i's entry in `LayerTimes`.
    private static func timesKey(_ i: Int, _ images: Int) -> LayerTimes.Key {
        LayerTimes.Key(network: "G", images: images, index: i)
    }

    /// Multiply-adds ×2 of layer i's forward pass over the images of `input` (the network's
    /// input), for `LayerTimes`.
    private func layerFlops(_ i: Int, _ input: Tensor) -> Double {
        Double(input.n) * config.flops(of: layers[i], height: input.h, width: input.w)
    }

    /// Backward of `outputConv`'s convolution from dz, the gradient at its output:
    /// accumulates its parameter gradients and returns its input gradient, in one pass of
    /// the head's backward kernel (CKernels/pointwise.c) per image where that runs, else
    /// through `convBackward`'s GEMMs (1.7–2.8 ms of a step at crop 128, batch 8).
    private func outputConvBackward(layer i: Int, _ rec: LayerRecord, _ dz: Tensor) -> Tensor {
        let (w, b) = layerParameters[i]
        let s = params.shapes[w], x = rec.input, hw = x.h * x.w
        let cout = s[0], cin = s[1]
        guard s[2] == 1, config.padding(layers[i]) == 0, dz.shape == [x.n, cout, x.h, x.w] else {
            return convBackward(layer: i, rec, dz)!
        }
        var scratch = uninitializedFloats(f2a_conv1x1_backward_scratch(hw, Int32(cin), Int32(cout)))
        var status: Int32 = 0
        let dx = Tensor(shape: x.shape) { dxp in
            x.data.withUnsafeBufferPointer { xp in
                dz.data.withUnsafeBufferPointer { zp in
                    params.values[w].withUnsafeBufferPointer { wp in
                        scratch.withUnsafeMutableBufferPointer { sp in
                            params.withGrad(w) { dW in
                                params.withGrad(b) { dB in
                                    // -1 (the only failure) comes before anything is touched, so at image 0.
                                    let (x0, z0, dx0) = (xp.baseAddress!, zp.baseAddress!, dxp.baseAddress!)
                                    let threads = Int32(Conv2d.threadCount)
                                    for image in 0..<x.n where status == 0 {
                                        let input = x0 + image * cin * hw, gradient = z0 + image * cout * hw
                                        status = f2a_conv1x1_backward(input, Int32(cin), hw, gradient, Int32(cout), wp.baseAddress!,
                                                                      dx0 + image * cin * hw, dW, dB, sp.baseAddress!, threads)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return status == 0 ? dx : convBackward(layer: i, rec, dz)!
    }

    /// The ReLU output 3x3 conv i reads as its input, where its input gradient can go
    /// through that ReLU in the 3x3 kernel's store (`Conv2d`'s `gate:`) rather than in a
    /// pass of its own: i reads the layer below as it is (not pooled, not beside a skip) and
    /// that layer is a trainable 3x3 conv: 14 of the 27 ReLUs (of the convs and the
    /// upsamplings) of the 5-level generator.
    private func reluBelow(_ i: Int, _ cache: Cache) -> Tensor? {
        guard i > 0, layers[i].kind == .conv3x3, layers[i].input == .previous, layers[i - 1].kind == .conv3x3,
              let below = cache.records[i - 1] else { return nil }
        return below.output
    }

    /// Accumulates parameter gradients for a loss whose gradient with respect
    /// to the output image is `dOutput` and with respect to `raw` is `dRaw`
    /// (either may be nil).
    public func backward(_ cache: Cache, dOutput: Tensor?, dRaw: Tensor?) {
        let frozen = frozenEncoderBlocks
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
        // The gradients of the skips, by level: the input gradients of the decoder convs that
        // read [upsampled, skip], and the channel where the skip's begin.
        var dSkips = [(gradient: Tensor, from: Int)?](repeating: nil, count: config.levels)
        // Whether d has already been through the ReLU of the layer it is the output gradient
        // of (`reluBelow`: gated as the layer above computed it).
        var gated = false
        for i in layers.indices.reversed() {
            let layer = layers[i]
            // Nothing flows into the frozen blocks, and no layer needs the gradient of their output.
            if isFrozen(layer) { break }
            let t0 = LayerTimes.start()
            defer {
                // A 3x3 convolution's FLOPs go with its parts (convBackward); the others compute
                // both gradients.
                LayerTimes.record(Self.timesKey(i, cache.flash.n), .backward, since: t0, layer.name,
                                  flops: layer.kind == .conv3x3 ? 0 : 2 * layerFlops(i, cache.flash))
            }
            let rec = cache.records[i]!
            let below = reluBelow(i, cache)
            // Whether this layer's input gradient goes out through the ReLU below it.
            var gatesBelow = below != nil
            defer { gated = gatesBelow }
            switch layer.kind {
            case .output:
                // through the output activation to the pre-activation z
                switch config.activation {
                case .sigmoid:
                    Pointwise.sigmoidBackward(&d, output: cache.raw)
                case .tanh:
                    Pointwise.affine(&d, 0.5, 0)
                    Pointwise.tanhBackward(&d, output: cache.tanhOut!)
                }
                d = outputConvBackward(layer: i, rec, d)
            case .conv3x3 where !layer.isEncoder:
                if !gated { Pointwise.reluBackward(&d, output: rec.output) }
                // The first conv of a level reads [upsampled, skip]; a frozen block's skip needs no gradient.
                let skipFrozen = layer.level <= frozen
                let upChannels = config.decoderChannels(layer.level)
                d = convBackward(layer: i, rec, d, inputGradientChannels: layer.input == .withSkip && skipFrozen ? upChannels : nil,
                                 gate: below)!
                // d is [upsampled, skip]: the upsampling reads the first channels in place, the
                // pooling's backward the skip's.
                if layer.input == .withSkip && !skipFrozen { dSkips[layer.level] = (d, upChannels) }
            case .conv3x3:
                if !gated { Pointwise.reluBackward(&d, output: rec.output) }
                // The network's input and a frozen block's output need no gradient.
                let readsFixed = layer.level == frozen + 1 && (i == 0 || layer.input == .pooled)
                if let dx = convBackward(layer: i, rec, d, inputGradient: !readsFixed, gate: below) { d = dx }
                if layer.input == .pooled && !readsFixed {
                    let b = layer.level
                    let skip = cache.skips[b - 2]
                    let extra = dSkips[b - 1]
                    // The pooled skip is the ReLU output of the conv below (an encoder block's last).
                    d = maxPoolBackward(d, indices: cache.poolIndices[b - 2], inputHeight: skip.h, inputWidth: skip.w,
                                        adding: extra?.gradient, from: extra?.from ?? 0, gate: skip)
                    gatesBelow = true
                }
            case .upsample:
                let (w, b) = layerParameters[i]
                switch config.upsample {
                case .transpose:
                    // Through the ReLU in the gather of dy's phases (gate).
                    let du = d, weight = params.values[w], gate = gated ? nil : rec.output
                    d = params.withGrad(w) { dW in
                        params.withGrad(b) { dB in
                            convTranspose2x2Backward(rec.input, dy: du, weight: weight, outChannels: layer.outChannels, gate: gate,
                                                     dW: dW, dB: dB)
                        }
                    }
                case .unpool:
                    let u = rec.output
                    var du = maxUnpoolBackward(d, indices: cache.poolIndices[layer.level - 1], pooledHeight: u.h, pooledWidth: u.w)
                    Pointwise.reluBackward(&du, output: u)
                    d = convBackward(layer: i, rec, du)!
                }
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
                    // On the thread pool: an exp2f call per element.
                    elementChunks(o.count) { range in
                        for i in range {
                            let e = (fp[i] + 1) * exp2f(2 * rp[i] - 1), v = o[i]
                            let pre = e - 1
                            o[i] = (pre > 0 && pre < 1) ? v * e * k : 0
                        }
                    }
                }
            }
        }
        return out
    }
}
