import F2ACore
import F2AModel

/// pix2pix's PatchGAN ("basic", n_layers = 3, 70×70 receptive field):
/// C64 − C128 − C256 − C512(stride 1) − 1-channel logits, 4×4 kernels,
/// padding 1, LeakyReLU 0.2, normalisation on all but the first and last
/// layer. Channel counts scale with `width` (1 = 64 base filters).
public final class PatchDiscriminator: @unchecked Sendable {
    public struct Layer: Sendable {
        public var geometry: ConvGeometry
        public var norm: Bool
        public var activation: Bool
    }

    public let inputChannels: Int
    public let norm: NormKind
    public let layers: [Layer]
    public let params: ParameterSet
    public static let slope: Float = 0.2
    let ws = Workspace()

    public init(inputChannels: Int, width: Double, norm: NormKind, layerCount: Int = 3) {
        self.inputChannels = inputChannels
        self.norm = norm
        let base = max(1, Int((64 * width).rounded()))
        var layers: [Layer] = [Layer(geometry: ConvGeometry(inputChannels, base, kernel: 4, stride: 2, padding: 1), norm: false, activation: true)]
        var mult = 1
        for n in 1...layerCount {
            let prev = mult
            mult = min(1 << n, 8)
            let stride = n == layerCount ? 1 : 2
            layers.append(Layer(geometry: ConvGeometry(base * prev, base * mult, kernel: 4, stride: stride, padding: 1),
                                norm: norm != .none, activation: true))
        }
        layers.append(Layer(geometry: ConvGeometry(base * mult, 1, kernel: 4, stride: 1, padding: 1), norm: false, activation: false))
        self.layers = layers
        var shapes: [(name: String, shape: [Int])] = []
        for (i, l) in layers.enumerated() {
            shapes.append(("D.conv\(i).weight", l.geometry.weightShape))
            shapes.append(("D.conv\(i).bias", [l.geometry.outChannels]))
            if l.norm {
                shapes.append(("D.norm\(i).gamma", [l.geometry.outChannels]))
                shapes.append(("D.norm\(i).beta", [l.geometry.outChannels]))
            }
        }
        params = ParameterSet(shapes: shapes)
    }

    /// Whether layer `l`'s convolution applies its LeakyReLU itself, forward and backward:
    /// a stride-2 layer without normalisation (the first; all of them with `norm` .none),
    /// where `PhaseConvolution` does so in passes it makes anyway. Normalised layers leave
    /// theirs to `normForward` and `normBackward`.
    func fusesActivation(_ l: Layer) -> Bool { l.activation && !l.norm && PhaseConvolution.applies(l.geometry) }

    public func initialise(_ scheme: InitScheme, seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        params.initialise(scheme, rng: &rng)
    }

    public struct Cache {
        var inputs: [Tensor] = []        // conv inputs
        var norms: [NormCache?] = []
        var outputs: [Tensor] = []       // post-activation outputs
        /// The stride-2 layers' input phases (`PhaseConvolution`), where the forward pass kept them.
        var phases: [[Float]?] = []
        /// The 4x4 stride-1 layers' Winograd-domain weights (`Winograd4x4`), for the backward pass.
        var transformed: [[Float]?] = []
        public var logits: Tensor
    }

    /// Layer i's entry in `LayerTimes`, for a pass over `images` images.
    private static func timesKey(_ i: Int, _ images: Int) -> LayerTimes.Key {
        LayerTimes.Key(network: "D", images: images, index: i)
    }

    /// x: [N, inputChannels, H, W] (already scaled to [−1, 1]) → patch logits [N, 1, h, w].
    /// `keepPhases`: for a backward pass with parameter gradients, keep the stride-2 layers'
    /// input phases (about their inputs' size) so that it need not split the inputs again.
    public func forward(_ input: Tensor, keepPhases: Bool = false) -> Cache {
        precondition(input.c == inputChannels, "discriminator expects \(inputChannels) channels, got \(input.c)")
        var x = input
        var cache = Cache(logits: Tensor(zeros: [0]))
        for (i, l) in layers.enumerated() {
            let t0 = LayerTimes.start(), (inH, inW) = (x.h, x.w)
            defer {
                let g = l.geometry
                LayerTimes.record(Self.timesKey(i, input.n), .forward, since: t0,
                                  "D.conv\(i) \(g.inChannels) → \(g.outChannels), \(g.kernel)×\(g.kernel) stride \(g.stride) at \(x.h)×\(x.w)",
                                  flops: g.flops(images: input.n, height: inH, width: inW))
            }
            cache.inputs.append(x)
            var y: Tensor
            var transformed: [Float]? = nil
            let fused = fusesActivation(l)
            if PhaseConvolution.applies(l.geometry) && (keepPhases || fused) {
                let (out, phases) = PhaseConvolution.forward(x, weight: params["D.conv\(i).weight"], bias: params["D.conv\(i).bias"],
                                                             l.geometry, leakySlope: fused ? Self.slope : nil)
                y = out
                cache.phases.append(keepPhases ? phases : nil)
            } else if Winograd4x4.applies(l.geometry) {
                let weight = params["D.conv\(i).weight"]
                transformed = Winograd4x4.transformedWeights(weight, l.geometry)
                y = Winograd4x4.forward(x, weight: weight, bias: params["D.conv\(i).bias"], l.geometry, workspace: ws,
                                        transformed: transformed)
                cache.phases.append(nil)
            } else if SingleChannelConvolution.applies(l.geometry) {
                y = SingleChannelConvolution.forward(x, weight: params["D.conv\(i).weight"], bias: params["D.conv\(i).bias"],
                                                     l.geometry)
                cache.phases.append(nil)
            } else {
                y = conv2dForward(x, weight: params["D.conv\(i).weight"], bias: params["D.conv\(i).bias"], l.geometry, workspace: ws)
                cache.phases.append(nil)
            }
            cache.transformed.append(transformed)
            if l.norm {
                let (n, nc) = normForward(y, kind: norm, gamma: params["D.norm\(i).gamma"], beta: params["D.norm\(i).beta"],
                                          leakySlope: l.activation ? Self.slope : nil)
                cache.norms.append(nc)
                y = n
            } else {
                cache.norms.append(nil)
                if l.activation && !fused { Pointwise.leakyRelu(&y, slope: Self.slope) }
            }
            cache.outputs.append(y)
            x = y
        }
        cache.logits = x
        return cache
    }

    /// Backward from d logits; accumulates parameter gradients when
    /// `parameterGradients`, returns d input.
    public func backward(_ cache: Cache, dLogits: Tensor, parameterGradients: Bool = true) -> Tensor {
        backward(cache, dLogits: dLogits, parameterGradients: parameterGradients, inputGradient: 0..<inputChannels)!
    }

    /// Backward from d logits; accumulates parameter gradients when `parameterGradients`
    /// and returns the gradient with respect to the input channels `inputGradient`
    /// ([N, inputGradient.count, H, W]), or nil (and skips the first layer's input
    /// gradient) when that is nil: training the discriminator needs no input gradient,
    /// the generator's adversarial term only that of the image channels.
    public func backward(_ cache: Cache, dLogits: Tensor, parameterGradients: Bool, inputGradient: Range<Int>?) -> Tensor? {
        precondition(inputGradient.map { !$0.isEmpty && $0.lowerBound >= 0 && $0.upperBound <= inputChannels } ?? true,
                     "discriminator input gradient of channels \(inputGradient!) of \(inputChannels)")
        var d = dLogits
        for i in stride(from: layers.count - 1, through: 0, by: -1) {
            let l = layers[i]
            // Below the first layer every input gradient is needed; of the first, `inputGradient`'s.
            let range = i == 0 ? inputGradient : 0..<l.geometry.inChannels
            let t0 = LayerTimes.start()
            defer {
                // The weight gradient if asked for, the input gradient of the channels asked for.
                let g = l.geometry, x = cache.inputs[i]
                let parts = (parameterGradients ? 1 : 0) + Double(range?.count ?? 0) / Double(g.inChannels)
                LayerTimes.record(Self.timesKey(i, dLogits.n), .backward, since: t0, "D.conv\(i)",
                                  flops: parts * g.flops(images: x.n, height: x.h, width: x.w))
            }
            // The LeakyReLU's gradient goes with the normalisation's, or the first layer's convolution's.
            let fused = fusesActivation(l)
            let leaky = l.activation ? (output: cache.outputs[i], slope: Self.slope) : nil
            if l.activation && !fused && !l.norm { Pointwise.leakyReluBackward(&d, output: cache.outputs[i], slope: Self.slope) }
            if l.norm {
                let gi = params.id("D.norm\(i).gamma"), bi = params.id("D.norm\(i).beta")
                let gamma = params.values[gi]
                if parameterGradients {
                    d = params.withGrad(gi) { dg in params.withGrad(bi) { db in
                        normBackward(d, cache: cache.norms[i]!, kind: norm, gamma: gamma, dGamma: dg, dBeta: db, leaky: leaky)
                    } }
                } else {
                    var sg = [Float](repeating: 0, count: gamma.count), sb = sg
                    d = normBackward(d, cache: cache.norms[i]!, kind: norm, gamma: gamma, dGamma: &sg, dBeta: &sb, leaky: leaky)
                }
            }
            let wi = params.id("D.conv\(i).weight"), bi = params.id("D.conv\(i).bias")
            let weight = params.values[wi]
            // The first layer of a discriminator update needs neither.
            guard parameterGradients || range != nil else { return nil }
            // body with this layer's dW and dB where parameter gradients are wanted, else with nil.
            func gradients(_ body: (UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?) -> Tensor?) -> Tensor? {
                parameterGradients ? params.withGrad(wi) { dW in params.withGrad(bi) { dB in body(dW, dB) } } : body(nil, nil)
            }
            let dx: Tensor?
            if fused {
                // d is the gradient of the LeakyReLU's output, which the convolution takes through it.
                dx = gradients {
                    PhaseConvolution.backward(cache.inputs[i], dy: d, weight: weight, l.geometry, dW: $0, dB: $1, inputGradient: range,
                                              phases: cache.phases[i], leaky: leaky)
                }
            } else if let u = cache.transformed[i] {
                // The forward pass's Winograd-domain weights: the weights have not changed since.
                dx = gradients {
                    Winograd4x4.backward(cache.inputs[i], dy: d, weight: weight, l.geometry, dW: $0, dB: $1, inputGradient: range,
                                         workspace: ws, transformed: u)
                }
            } else if SingleChannelConvolution.applies(l.geometry) && (range == nil || range == 0..<l.geometry.inChannels) {
                dx = gradients {
                    SingleChannelConvolution.backward(cache.inputs[i], dy: d, weight: weight, l.geometry, dW: $0, dB: $1,
                                                      inputGradient: range != nil)
                }
            } else {
                dx = gradients {
                    conv2dBackward(cache.inputs[i], dy: d, weight: weight, l.geometry, dW: $0, dB: $1, inputGradient: range != nil,
                                   inputGradientChannels: range?.count, inputGradientFrom: range?.lowerBound ?? 0, workspace: ws,
                                   phases: cache.phases[i])
                }
            }
            guard let dx else { return nil }
            d = dx
        }
        return d
    }
}
