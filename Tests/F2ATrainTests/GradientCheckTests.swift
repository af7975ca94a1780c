import CKernels
import F2ACore
import F2AModel
import Testing
@testable import F2ATrain

// Finite-difference checks of every backward pass, in the manner of ggml's
// test-backend-ops: the scalar loss is L = Σ r ⊙ f(x) for a fixed random r
// (accumulated in Double), the analytic gradient is the backward pass fed
// with dy = r, the numeric one is (L(x+ε) − L(x−ε)) / 2ε, and the two are
// compared by their normalised squared error
//     NMSE = Σ (analytic − numeric)² / Σ numeric².
// Forward passes are float32, so L carries a rounding error of about
// 1e-7·√(#outputs)·|r·y| ≈ 1e-6 here; with ε = 1e-2 for smooth layers the
// numeric gradient's error is ~1e-4 against gradients of order 0.1–1, i.e.
// an NMSE of ~1e-7. The thresholds (1e-4 for single layers, 1e-3 for whole
// networks, where a ReLU can change side inside ±ε) leave a wide margin
// over that noise while any real error — a wrong index, a missing term, a
// transposed GEMM — gives an NMSE of order 1.

struct Rand {
    var rng: SplitMix64
    init(_ seed: UInt64) { rng = SplitMix64(seed: seed) }
    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        Tensor(shape: shape, data: (0..<shape.reduce(1, *)).map { _ in scale * Float.random(in: -1...1, using: &rng) })
    }
    mutating func array(_ n: Int, scale: Float = 1) -> [Float] { (0..<n).map { _ in scale * Float.random(in: -1...1, using: &rng) } }
    /// Values with pairwise gaps ≥ 2ε·4 so that max-pooling's argmax and
    /// ReLU's sign are stable under ±ε perturbations.
    mutating func spaced(_ shape: [Int], gap: Float = 0.08) -> Tensor {
        let n = shape.reduce(1, *)
        var values = (0..<n).map { Float($0) * gap - Float(n) * gap / 2 + gap / 2 }
        values.shuffle(using: &rng)
        return Tensor(shape: shape, data: values)
    }
}

func dot(_ r: Tensor, _ y: Tensor) -> Double {
    precondition(r.shape == y.shape, "\(r.shape) vs \(y.shape)")
    var s = 0.0
    for i in r.data.indices { s += Double(r.data[i]) * Double(y.data[i]) }
    return s
}

func nmse(_ analytic: [Float], _ numeric: [Double]) -> Double {
    var num = 0.0, den = 0.0
    for i in analytic.indices {
        let d = Double(analytic[i]) - numeric[i]
        num += d * d; den += numeric[i] * numeric[i]
    }
    return den == 0 ? num : num / den
}

/// Numeric gradient of `loss` with respect to `values` (all entries, or the given indices).
func numericGradient(_ values: inout [Float], eps: Float, indices: [Int]? = nil, _ loss: ([Float]) -> Double) -> [Double] {
    (indices ?? Array(values.indices)).map { i in
        let old = values[i]
        values[i] = old + eps
        let lp = loss(values)
        values[i] = old - eps
        let lm = loss(values)
        values[i] = old
        return (lp - lm) / (2 * Double(eps))
    }
}

/// Compares analytic and numeric gradients of a whole network. A network has
/// ReLU/LeakyReLU kinks; where one lies within ±ε of a probed value the central
/// difference mixes both sides and cannot match any (sub)gradient. So a probe
/// is counted as agreeing when its error is below 10 % of the gradients' RMS;
/// at least 90 % of the probes must agree (a wrong index, a missing term or a
/// transposed GEMM makes most probes disagree), and the NMSE over the agreeing
/// probes must be below 1e-3.
func networkCheck(_ analytic: [Float], _ numeric: [Double]) -> (nmse: Double, agreeing: Int) {
    let rms = (numeric.map { $0 * $0 }.reduce(0, +) / Double(max(numeric.count, 1))).squareRoot()
    var a: [Float] = [], n: [Double] = []
    for i in analytic.indices where abs(Double(analytic[i]) - numeric[i]) <= 0.1 * rms {
        a.append(analytic[i]); n.append(numeric[i])
    }
    return (nmse(a, n), a.count)
}

@Suite("Backward passes against finite differences")
struct GradientCheckTests {
    static let convCases: [(n: Int, cin: Int, cout: Int, h: Int, w: Int, k: Int, s: Int, p: Int, target: Int)] = [
        (2, 3, 4, 7, 6, 3, 1, 1, 4096),   // 3x3 same, two images in one GEMM
        (2, 3, 4, 7, 6, 3, 1, 1, 1),      // one image per GEMM
        (1, 2, 3, 9, 8, 4, 2, 1, 4096),   // PatchGAN stride 2
        (2, 3, 2, 6, 5, 4, 1, 1, 4096),   // PatchGAN stride 1
        (2, 5, 3, 4, 4, 1, 1, 0, 4096),   // 1x1, batched
        (2, 5, 3, 4, 4, 1, 1, 0, 1),      // 1x1, direct
        (1, 2, 2, 5, 5, 3, 2, 0, 4096),   // no padding, stride 2
        (2, 3, 1, 6, 5, 4, 1, 1, 4096),   // PatchGAN logits: one output channel, direct
        (2, 4, 1, 9, 8, 4, 2, 1, 4096),   // one output channel, stride 2
        (2, 2, 1, 5, 6, 3, 2, 0, 4096),   // one output channel, no padding
        (3, 3, 2, 11, 10, 4, 2, 1, 1),    // 4x4 stride 2: GEMMs over the input's phases, odd sizes
        (2, 5, 3, 8, 6, 4, 2, 1, 4096),   // the same, even sizes
        (2, 3, 11, 5, 37, 3, 1, 1, 4096), // 3x3 same, direct weight gradient: 2 channel blocks, a 5-pixel tail
        (1, 2, 9, 1, 17, 3, 1, 1, 4096),  // one row: only kernel row 1 sees the image
    ]

    @Test("conv2d: input, weight and bias gradients", arguments: 0..<14)
    func conv(_ caseIndex: Int) {
        let c = Self.convCases[caseIndex]
        var R = Rand(UInt64(100 + caseIndex))
        let g = ConvGeometry(c.cin, c.cout, kernel: c.k, stride: c.s, padding: c.p)
        var x = R.tensor([c.n, c.cin, c.h, c.w])
        var w = R.array(c.cout * c.cin * c.k * c.k, scale: 0.5)
        var b = R.array(c.cout, scale: 0.5)
        let ws = Workspace()
        let y = conv2dForward(x, weight: w, bias: b, g, workspace: ws, columnTarget: c.target)
        let r = R.tensor(y.shape)
        var dW = [Float](repeating: 0, count: w.count), dB = [Float](repeating: 0, count: b.count)
        let dx = conv2dBackward(x, dy: r, weight: w, g, dW: &dW, dB: &dB, inputGradient: true, workspace: ws, columnTarget: c.target)!
        let eps: Float = 1e-2
        let nx = numericGradient(&x.data, eps: eps) { xv in dot(r, conv2dForward(Tensor(shape: x.shape, data: xv), weight: w, bias: b, g, workspace: ws, columnTarget: c.target)) }
        let nw = numericGradient(&w, eps: eps) { wv in dot(r, conv2dForward(x, weight: wv, bias: b, g, workspace: ws, columnTarget: c.target)) }
        let nb = numericGradient(&b, eps: eps) { bv in dot(r, conv2dForward(x, weight: w, bias: bv, g, workspace: ws, columnTarget: c.target)) }
        #expect(nmse(dx.data, nx) < 1e-4)
        #expect(nmse(dW, nw) < 1e-4)
        #expect(nmse(dB, nb) < 1e-4)
        // The input gradient of the first channels only (a decoder conv beside a frozen
        // skip) is those channels of the full one; without dW, dB is still exact.
        let first = max(1, c.cin / 2)
        var dB2 = [Float](repeating: 0, count: b.count)
        let part = conv2dBackward(x, dy: r, weight: w, g, dW: nil, dB: &dB2, inputGradient: true, inputGradientChannels: first,
                                  workspace: ws, columnTarget: c.target)!
        #expect(part.shape == [c.n, first, c.h, c.w])
        let plane = c.h * c.w
        var worst: Float = 0
        for i in 0..<c.n { for j in 0..<(first * plane) { worst = max(worst, abs(part.data[i * first * plane + j] - dx.data[i * c.cin * plane + j])) } }
        #expect(worst <= 1e-5 * max(1, dx.data.map(abs).max()!))
        #expect(dB2 == dB)
        // The same for the last channels (the image half of a conditional discriminator's input).
        if c.cin >= 2 {
            let from = c.cin / 2, count = c.cin - from
            let last = conv2dBackward(x, dy: r, weight: w, g, dW: nil, dB: nil, inputGradient: true, inputGradientChannels: count,
                                      inputGradientFrom: from, workspace: ws, columnTarget: c.target)!
            #expect(last.shape == [c.n, count, c.h, c.w])
            var worstLast: Float = 0
            for i in 0..<c.n {
                for j in 0..<(count * plane) {
                    worstLast = max(worstLast, abs(last.data[i * count * plane + j] - dx.data[(i * c.cin + from) * plane + j]))
                }
            }
            #expect(worstLast <= 1e-5 * max(1, dx.data.map(abs).max()!))
        }
    }

    @Test("3x3 forward and input gradient on the engine match im2col + sgemm",
          arguments: [(1, 3, 8, 9, 7), (2, 19, 6, 16, 12), (3, 8, 72, 11, 5)])
    func engineConvolution(_ n: Int, _ cin: Int, _ cout: Int, _ h: Int, _ w: Int) {
        var R = Rand(UInt64(300 + cin))
        let g = ConvGeometry(cin, cout, kernel: 3, stride: 1, padding: 1)
        let x = R.tensor([n, cin, h, w])
        let weight = R.array(cout * cin * 9, scale: 0.5), bias = R.array(cout, scale: 0.5)
        let ws = Workspace()
        var reference = conv2dForward(x, weight: weight, bias: bias, g, workspace: ws)
        Pointwise.relu(&reference)
        let y = EngineConvolution.forward(x, weight: weight, bias: bias, shape: g.weightShape, relu: true)
        #expect(y.shape == reference.shape)
        #expect(zip(y.data, reference.data).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) })
        let dy = R.tensor(reference.shape)
        let dx = conv2dBackward(x, dy: dy, weight: weight, g, dW: nil, dB: nil, inputGradient: true, workspace: ws)!
        let engine = EngineConvolution.inputGradient(dy, weight: weight, shape: g.weightShape, channels: cin)
        #expect(zip(engine.data, dx.data).allSatisfy { abs($0 - $1) <= 1e-4 * max(1, abs($1)) })
        let part = EngineConvolution.inputGradient(dy, weight: weight, shape: g.weightShape, channels: 1)
        #expect(part.shape == [n, 1, h, w])
        let plane = h * w
        for i in 0..<n { for j in 0..<plane { #expect(abs(part.data[i * plane + j] - dx.data[i * cin * plane + j]) <= 1e-4 * max(1, abs(dx.data[i * cin * plane + j]))) } }
    }

    @Test("conv2d forward matches F2ACore.Conv2d")
    func convMatchesCore() {
        var R = Rand(7)
        // The 1-output cases take the direct path (the PatchGAN's logits).
        for (k, s, p, o) in [(3, 1, 1, 5), (4, 2, 1, 5), (1, 1, 0, 5), (4, 1, 1, 1), (4, 2, 1, 1), (3, 2, 0, 1)] {
            let core = Conv2d(weight: R.tensor([o, 3, k, k]), bias: R.tensor([o]), stride: s, padding: p)
            let x = R.tensor([3, 3, 10, 12])
            let ours = conv2dForward(x, weight: core.weight.data, bias: core.bias.data,
                                     ConvGeometry(3, o, kernel: k, stride: s, padding: p), workspace: Workspace())
            let ref = core(x)
            #expect(ours.shape == ref.shape)
            // 3x3 stride-1 convs take the Winograd F(4x4,3x3) path in F2ACore, whose transforms
            // round differently from direct summation: ~1e-5 on outputs of magnitude ~3 here.
            #expect(zip(ours.data, ref.data).map { abs($0 - $1) }.max()! < 1e-4)
        }
    }

    @Test("transposed conv 2x2/2: input, weight and bias gradients")
    func convTranspose() {
        var R = Rand(3)
        var x = R.tensor([2, 3, 3, 4])
        let oc = 2
        var w = R.array(3 * oc * 4), b = R.array(oc)
        let y = convTranspose2x2Forward(x, weight: w, bias: b, outChannels: oc)
        let core = ConvTranspose2d(weight: Tensor(shape: [3, oc, 2, 2], data: w), bias: Tensor(shape: [oc], data: b))
        // sgemm (trainer) and the engine's own 2x2 kernel round alike only when
        // OpenBLAS happens to pick a kernel with the same FMA order: which one it
        // picks depends on the CPU it detects (OPENBLAS_CORETYPE), so ulps differ.
        let ref = core(x)
        #expect(y.shape == ref.shape)
        #expect(zip(y.data, ref.data).map { abs($0 - $1) }.max()! < 1e-5)
        let r = R.tensor(y.shape)
        var dW = [Float](repeating: 0, count: w.count), dB = [Float](repeating: 0, count: oc)
        let dx = convTranspose2x2Backward(x, dy: r, weight: w, outChannels: oc, dW: &dW, dB: &dB)
        let nx = numericGradient(&x.data, eps: 1e-2) { dot(r, convTranspose2x2Forward(Tensor(shape: x.shape, data: $0), weight: w, bias: b, outChannels: oc)) }
        let nw = numericGradient(&w, eps: 1e-2) { dot(r, convTranspose2x2Forward(x, weight: $0, bias: b, outChannels: oc)) }
        let nb = numericGradient(&b, eps: 1e-2) { dot(r, convTranspose2x2Forward(x, weight: w, bias: $0, outChannels: oc)) }
        #expect(nmse(dx.data, nx) < 1e-4)
        #expect(nmse(dW, nw) < 1e-4)
        #expect(nmse(dB, nb) < 1e-4)
    }

    @Test("max-pool and max-unpool")
    func pooling() {
        var R = Rand(4)
        var x = R.spaced([2, 2, 6, 4])
        let (y, idx) = maxPool2d(x)
        let r = R.tensor(y.shape)
        let dx = maxPoolBackward(r, indices: idx, inputHeight: 6, inputWidth: 4)
        let nx = numericGradient(&x.data, eps: 1e-2) { dot(r, maxPool2d(Tensor(shape: x.shape, data: $0)).output) }
        #expect(nmse(dx.data, nx) < 1e-4)
        // Unpool with fixed indices is linear in its input.
        var u = R.tensor(y.shape)
        let r2 = R.tensor(x.shape)
        let du = maxUnpoolBackward(r2, indices: idx, pooledHeight: 3, pooledWidth: 2)
        let nu = numericGradient(&u.data, eps: 1e-2) { dot(r2, maxUnpool2d(Tensor(shape: y.shape, data: $0), indices: idx, height: 6, width: 4)) }
        #expect(nmse(du.data, nu) < 1e-4)
    }

    /// The decoder's in-place reads of its [upsampled, skip] input gradient: the pooling's
    /// backward adding the skip's channels, the unpooling's and the transposed conv's backward
    /// reading the first channels (the latter through its ReLU, gate), against split copies
    /// and separate passes, bit for bit.
    @Test("pooling and transposed-conv backward read a concatenated gradient in place and gate it")
    func inPlaceSkipGradient() {
        var R = Rand(8)
        let x = R.spaced([2, 3, 6, 4])
        let (y, idx) = maxPool2d(x)
        let r = R.tensor(y.shape), concat = R.tensor([2, 5, 6, 4])
        var reference = maxPoolBackward(r, indices: idx, inputHeight: 6, inputWidth: 4)
        Pointwise.add(&reference, splitChannels(concat, first: 2).1)
        let fused = maxPoolBackward(r, indices: idx, inputHeight: 6, inputWidth: 4, adding: concat, from: 2)
        #expect(fused.shape == reference.shape && zip(fused.data, reference.data).allSatisfy { $0.bitPattern == $1.bitPattern })
        // And through the ReLU whose output was pooled (zeros and negatives in x).
        Pointwise.reluBackward(&reference, output: x)
        let gated = maxPoolBackward(r, indices: idx, inputHeight: 6, inputWidth: 4, adding: concat, from: 2, gate: x)
        #expect(x.data.contains { $0 <= 0 } && x.data.contains { $0 > 0 })
        #expect(zip(gated.data, reference.data).allSatisfy { $0.bitPattern == $1.bitPattern })
        // Unpooling's backward reads the first channels of [unpooled, skip] as the unpooled part.
        let unpooled = R.tensor([2, 3 + 2, 6, 4])
        let inPlace = maxUnpoolBackward(unpooled, indices: idx, pooledHeight: 3, pooledWidth: 2)
        let split = maxUnpoolBackward(splitChannels(unpooled, first: 3).0, indices: idx, pooledHeight: 3, pooledWidth: 2)
        #expect(inPlace.shape == split.shape && inPlace.data == split.data)

        let u = R.tensor([2, 3, 3, 5]), oc = 2, w = R.array(3 * oc * 4)
        let dy = R.tensor([2, oc + 3, 6, 10]), gate = R.spaced([2, oc, 6, 10])
        var gatedDy = splitChannels(dy, first: oc).0
        Pointwise.reluBackward(&gatedDy, output: gate)
        var dW1 = [Float](repeating: 0.5, count: w.count), dB1 = [Float](repeating: 0.5, count: oc)
        var dW2 = dW1, dB2 = dB1
        let dx1 = convTranspose2x2Backward(u, dy: gatedDy, weight: w, outChannels: oc, dW: &dW1, dB: &dB1)
        let dx2 = convTranspose2x2Backward(u, dy: dy, weight: w, outChannels: oc, gate: gate, dW: &dW2, dB: &dB2)
        #expect(gate.data.contains { $0 <= 0 } && gate.data.contains { $0 > 0 })
        #expect(zip(dx1.data, dx2.data).allSatisfy { $0.bitPattern == $1.bitPattern })
        #expect(zip(dW1, dW2).allSatisfy { $0.bitPattern == $1.bitPattern } && zip(dB1, dB2).allSatisfy { $0.bitPattern == $1.bitPattern })
    }

    @Test("concat and split")
    func concat() {
        var R = Rand(5)
        var a = R.tensor([2, 3, 4, 5])
        let b = R.tensor([2, 2, 4, 5])
        let r = R.tensor([2, 5, 4, 5])
        let (da, db) = splitChannels(r, first: 3)
        let na = numericGradient(&a.data, eps: 1e-2) { dot(r, concatChannels(Tensor(shape: a.shape, data: $0), b)) }
        #expect(nmse(da.data, na) < 1e-4)
        var bb = b
        let nb = numericGradient(&bb.data, eps: 1e-2) { dot(r, concatChannels(a, Tensor(shape: b.shape, data: $0))) }
        #expect(nmse(db.data, nb) < 1e-4)
    }

    @Test("pointwise activations: ReLU, LeakyReLU, sigmoid, tanh")
    func activations() {
        var R = Rand(6)
        var x = R.spaced([1, 2, 5, 5], gap: 0.1)
        let r = R.tensor(x.shape)
        let cases: [(String, (Tensor) -> Tensor, (inout Tensor, Tensor) -> Void)] = [
            ("relu", { var t = $0; Pointwise.relu(&t); return t }, { Pointwise.reluBackward(&$0, output: $1) }),
            ("leaky", { var t = $0; Pointwise.leakyRelu(&t, slope: 0.2); return t }, { Pointwise.leakyReluBackward(&$0, output: $1, slope: 0.2) }),
            ("sigmoid", { var t = $0; Activation.sigmoid.apply(&t); return t }, { Pointwise.sigmoidBackward(&$0, output: $1) }),
            ("tanh", { var t = $0; Activation.tanh.apply(&t); return t }, { Pointwise.tanhBackward(&$0, output: $1) }),
        ]
        for (name, f, back) in cases {
            var d = r
            back(&d, f(x))
            let n = numericGradient(&x.data, eps: 1e-3) { dot(r, f(Tensor(shape: x.shape, data: $0))) }
            #expect(nmse(d.data, n) < 1e-4, "\(name)")
        }
    }

    @Test("instance and batch normalisation", arguments: [NormKind.instance, .batch])
    func norm(_ kind: NormKind) {
        var R = Rand(8)
        var x = R.tensor([2, 3, 4, 5])
        var gamma = R.array(3).map { 1 + 0.5 * $0 }, beta = R.array(3)
        let (y, cache) = normForward(x, kind: kind, gamma: gamma, beta: beta)
        let r = R.tensor(y.shape)
        var dg = [Float](repeating: 0, count: 3), db = dg
        let dx = normBackward(r, cache: cache, kind: kind, gamma: gamma, dGamma: &dg, dBeta: &db)
        let nx = numericGradient(&x.data, eps: 1e-2) { dot(r, normForward(Tensor(shape: x.shape, data: $0), kind: kind, gamma: gamma, beta: beta).0) }
        let ng = numericGradient(&gamma, eps: 1e-2) { dot(r, normForward(x, kind: kind, gamma: $0, beta: beta).0) }
        let nb = numericGradient(&beta, eps: 1e-2) { dot(r, normForward(x, kind: kind, gamma: gamma, beta: $0).0) }
        #expect(nmse(dx.data, nx) < 1e-4)
        #expect(nmse(dg, ng) < 1e-4)
        #expect(nmse(db, nb) < 1e-4)
    }

    /// The discriminator's norm + LeakyReLU: forward in one pass (`leakySlope:`), backward
    /// through both in one (`leaky:`): against finite differences, and the same bits as the
    /// LeakyReLU's gradient taken first on its own.
    @Test("normalisation with the LeakyReLU fused in", arguments: [NormKind.instance, .batch])
    func normLeaky(_ kind: NormKind) {
        var R = Rand(9)
        var x = R.tensor([2, 3, 4, 5])
        var gamma = R.array(3).map { 1 + 0.5 * $0 }, beta = R.array(3)
        let slope: Float = 0.2
        let (y, cache) = normForward(x, kind: kind, gamma: gamma, beta: beta, leakySlope: slope)
        #expect(y.data.contains { $0 < 0 } && y.data.contains { $0 > 0 })
        let r = R.tensor(y.shape)
        var dg = [Float](repeating: 0, count: 3), db = dg
        let dx = normBackward(r, cache: cache, kind: kind, gamma: gamma, dGamma: &dg, dBeta: &db, leaky: (y, slope))
        func f(_ x: Tensor, _ gamma: [Float], _ beta: [Float]) -> Tensor {
            normForward(x, kind: kind, gamma: gamma, beta: beta, leakySlope: slope).0
        }
        let nx = numericGradient(&x.data, eps: 1e-3) { dot(r, f(Tensor(shape: x.shape, data: $0), gamma, beta)) }
        let ng = numericGradient(&gamma, eps: 1e-3) { dot(r, f(x, $0, beta)) }
        let nb = numericGradient(&beta, eps: 1e-3) { dot(r, f(x, gamma, $0)) }
        #expect(nmse(dx.data, nx) < 1e-4)
        #expect(nmse(dg, ng) < 1e-4)
        #expect(nmse(db, nb) < 1e-4)

        var gated = r
        Pointwise.leakyReluBackward(&gated, output: y, slope: slope)
        var dg2 = [Float](repeating: 0, count: 3), db2 = dg2
        let dx2 = normBackward(gated, cache: cache, kind: kind, gamma: gamma, dGamma: &dg2, dBeta: &db2)
        #expect(zip(dx.data, dx2.data).allSatisfy { $0.bitPattern == $1.bitPattern })
        #expect(dg == dg2 && db == db2)
    }

    /// At a size the thread pool shares out (blocks of 4096 elements): the loss values against
    /// Double sums in plain loops, the gradients element by element.
    @Test("L1 and MSE of a batch-sized tensor match plain loops")
    func lossesLarge() {
        var R = Rand(12)
        let p = R.tensor([8, 3, 64, 65]), t = R.tensor([8, 3, 64, 65])
        let n = Double(p.count)
        let (l1, g1) = Losses.l1(p, t), (l2, g2) = Losses.mse(p, t)
        var s1 = 0.0, s2 = 0.0
        for i in 0..<p.count { let d = Double(p.data[i] - t.data[i]); s1 += abs(d); s2 += d * d }
        #expect(abs(l1 - s1 / n) <= 1e-9 * s1 / n && abs(l2 - s2 / n) <= 1e-9 * s2 / n)
        #expect((0..<p.count).allSatisfy { i in
            let d = p.data[i] - t.data[i]
            return g1.data[i] == (d > 0 ? 1 : d < 0 ? -1 : 0) / Float(p.count) && g2.data[i] == 2 * d / Float(p.count)
        })
    }

    @Test("losses: L1, attention L1, MSE, BCE with logits, ratio-log decode")
    func losses() {
        var R = Rand(9)
        var p = R.tensor([2, 3, 4, 4])
        let t = R.tensor([2, 3, 4, 4])
        // Keep |p − t| away from 0 so that |·| is differentiable within ±ε.
        for i in p.data.indices where abs(p.data[i] - t.data[i]) < 0.05 { p.data[i] = t.data[i] + 0.1 }
        let att = Tensor(shape: [2, 1, 4, 4], data: R.array(32).map { 0.5 + 0.5 * $0 })
        for a in [nil, att] {
            let (_, g) = Losses.l1(p, t, attention: a)
            let n = numericGradient(&p.data, eps: 1e-3) { Losses.l1(Tensor(shape: p.shape, data: $0), t, attention: a).0 }
            #expect(nmse(g.data, n) < 1e-4)
        }
        let (_, gm) = Losses.mse(p, t)
        let nm = numericGradient(&p.data, eps: 1e-3) { Losses.mse(Tensor(shape: p.shape, data: $0), t).0 }
        #expect(nmse(gm.data, nm) < 1e-4)
        // Exposure-free MSE on image-like values (a gain inside the clamp), anchored and not.
        let image = Tensor(shape: p.shape, data: p.data.map { 0.5 + 0.4 * $0 })
        var target = image
        for i in target.data.indices { target.data[i] = 0.8 * image.data[i] + 0.05 * t.data[i] }
        for anchor: Float in [0, 0.1, 1] {
            var q = image
            let (_, ge) = Losses.exposureFreeMSE(q, target, anchor: anchor)
            let ne = numericGradient(&q.data, eps: 1e-3) { Losses.exposureFreeMSE(Tensor(shape: q.shape, data: $0), target, anchor: anchor).0 }
            #expect(nmse(ge.data, ne) < 1e-4, "anchor \(anchor)")
        }
        // Its coarse form on 2x2 block means: finite differences, and the plain loss of the
        // pooled images (computed here by hand) as its value.
        do {
            let big = Tensor(shape: [2, 3, 4, 6], data: R.array(144).map { 0.5 + 0.3 * $0 })
            var bigTarget = big
            for i in bigTarget.data.indices { bigTarget.data[i] = 0.7 * big.data[i] + 0.1 * Float(i % 7) / 7 }
            var q = big
            let (lc, gc) = Losses.coarseExposureFreeMSE(q, bigTarget, factor: 2, anchor: 0.1)
            let nc = numericGradient(&q.data, eps: 1e-3) { Losses.coarseExposureFreeMSE(Tensor(shape: q.shape, data: $0), bigTarget, factor: 2, anchor: 0.1).0 }
            #expect(nmse(gc.data, nc) < 1e-4)
            func pooled(_ x: Tensor) -> Tensor {
                var y = Tensor(zeros: [2, 3, 2, 3])
                for pl in 0..<6 { for yy in 0..<2 { for xx in 0..<3 {
                    var s: Float = 0
                    for dy in 0..<2 { for dx in 0..<2 { s += x.data[(pl * 4 + 2 * yy + dy) * 6 + 2 * xx + dx] } }
                    y.data[(pl * 2 + yy) * 3 + xx] = s / 4
                } } }
                return y
            }
            #expect(abs(lc - Losses.exposureFreeMSE(pooled(big), pooled(bigTarget), anchor: 0.1).0) < 1e-9)
        }
        var logits = R.tensor([2, 1, 3, 3], scale: 30) // includes large |x| (stable form)
        for z: Float in [0, 1] {
            let (l, gb) = Losses.bceWithLogits(logits, target: z)
            #expect(l.isFinite)
            let nb = numericGradient(&logits.data, eps: 1e-2) { Losses.bceWithLogits(Tensor(shape: logits.shape, data: $0), target: z).0 }
            #expect(nmse(gb.data, nb) < 1e-4)
        }
        // ratio-log decode, away from the clamp edges
        var ratio = Tensor(shape: [1, 3, 4, 4], data: R.array(48).map { 0.5 + 0.1 * $0 })
        let flash = Tensor(shape: [1, 3, 4, 4], data: R.array(48).map { 0.4 + 0.2 * $0 })
        let r = R.tensor(ratio.shape)
        let d = RatioLogGrad.decodeBackward(r, ratio: ratio, flash: flash)
        let nd = numericGradient(&ratio.data, eps: 1e-3) { v in
            var a = Tensor(shape: ratio.shape, data: v); RatioLog.decode(ratio: &a, flash: flash); return dot(r, a)
        }
        #expect(nmse(d.data, nd) < 1e-4)
    }

    static let generatorCases: [(config: GeneratorConfig, frozen: Int)] = [
        (GeneratorConfig(width: 0.0625, levels: 3, upsample: .transpose, activation: .sigmoid, formulation: .rgb), 0),
        (GeneratorConfig(width: 0.0625, levels: 3, upsample: .unpool, activation: .tanh, formulation: .rgb), 0),
        (GeneratorConfig(width: 0.0625, levels: 2, upsample: .transpose, activation: .sigmoid, formulation: .ratioLog), 0),
        // A wider encoder than decoder, the first block frozen (its forward on the inference kernels).
        (GeneratorConfig(width: 0.125, decoderWidth: 0.0625, levels: 3, upsample: .transpose, activation: .sigmoid,
                         formulation: .ratioLog), 1),
        // Every encoder block frozen: only the decoder learns.
        (GeneratorConfig(width: 0.125, decoderWidth: 0.03125, levels: 3, upsample: .transpose, activation: .sigmoid,
                         formulation: .rgb), 3),
        // Unpooling (symmetric widths only) beside frozen blocks: their pooling indices are still kept.
        (GeneratorConfig(width: 0.0625, levels: 3, upsample: .unpool, activation: .tanh, formulation: .rgb), 2),
    ]

    @Test("whole generator: parameter gradients", arguments: 0..<6)
    func generator(_ caseIndex: Int) {
        let (config, frozen) = Self.generatorCases[caseIndex]
        let g = TrainableGenerator(config: config, frozenEncoderBlocks: frozen)
        g.initialise(.he, seed: 42)
        // Non-zero biases exercise their gradients.
        var R = Rand(UInt64(50 + caseIndex))
        for i in g.params.names.indices where g.params.names[i].hasSuffix(".bias") { g.params.values[i] = R.array(g.params.values[i].count, scale: 0.05) }
        g.parametersChanged()
        let isFrozen = { (name: String) in (1...max(1, frozen)).contains { frozen > 0 && name.hasPrefix("enc\($0).") } }
        let flash = Tensor(shape: [2, 3, 8, 8], data: R.array(384).map { 0.5 + 0.4 * $0 })
        let cache = g.forward(flash)
        let r = R.tensor(cache.output.shape)
        let rRaw = R.tensor(cache.raw.shape)
        g.params.zeroGrads()
        g.backward(cache, dOutput: r, dRaw: rRaw)
        func loss() -> Double { let c = g.forward(flash); return dot(r, c.output) + dot(rRaw, c.raw) }
        var analytic: [Float] = [], numeric: [Double] = []
        for (i, name) in g.params.names.enumerated() {
            if isFrozen(name) {
                #expect(g.params.grads[i].allSatisfy { $0 == 0 }, "\(name) is frozen but has a gradient")
                continue
            }
            // Up to 6 entries of every parameter tensor.
            let n = g.params.values[i].count
            let picks = (0..<min(6, n)).map { _ in Int.random(in: 0..<n, using: &R.rng) }
            for j in picks {
                let old = g.params.values[i][j]
                g.params.values[i][j] = old + 1e-3; let lp = loss()
                g.params.values[i][j] = old - 1e-3; let lm = loss()
                g.params.values[i][j] = old
                analytic.append(g.params.grads[i][j]); numeric.append((lp - lm) / 2e-3)
                _ = name
            }
        }
        let (e, agree) = networkCheck(analytic, numeric)
        #expect(agree * 10 >= analytic.count * 9, "\(agree) of \(analytic.count) agree")
        #expect(e < 1e-3)
        #expect(nmse(analytic, numeric) < 1e-2) // even with kinks included
    }

    @Test("PatchGAN discriminator: input and parameter gradients", arguments: [NormKind.instance, .batch, .none])
    func discriminator(_ norm: NormKind) {
        let d = PatchDiscriminator(inputChannels: 6, width: 0.0625, norm: norm)
        d.initialise(.he, seed: 3)
        var R = Rand(77)
        var x = R.tensor([2, 6, 32, 32])
        let c = d.forward(x)
        #expect(c.logits.shape == [2, 1, 2, 2])
        let r = R.tensor(c.logits.shape)
        d.params.zeroGrads()
        let dx = d.backward(c, dLogits: r)
        let picks = (0..<60).map { _ in Int.random(in: 0..<x.count, using: &R.rng) }
        let eps: Float = 2e-3
        let nx = numericGradient(&x.data, eps: eps, indices: picks) { dot(r, d.forward(Tensor(shape: x.shape, data: $0)).logits) }
        let (ex, agreeX) = networkCheck(picks.map { dx.data[$0] }, nx)
        #expect(agreeX >= 54, "\(agreeX) of 60 agree")
        #expect(ex < 1e-3)
        var analytic: [Float] = [], numeric: [Double] = []
        for i in d.params.names.indices {
            let n = d.params.values[i].count
            for _ in 0..<min(5, n) {
                let j = Int.random(in: 0..<n, using: &R.rng)
                analytic.append(d.params.grads[i][j])
                let old = d.params.values[i][j]
                d.params.values[i][j] = old + eps; let lp = dot(r, d.forward(x).logits)
                d.params.values[i][j] = old - eps; let lm = dot(r, d.forward(x).logits)
                d.params.values[i][j] = old
                numeric.append((lp - lm) / Double(2 * eps))
            }
        }
        let (ep, agreeP) = networkCheck(analytic, numeric)
        #expect(agreeP * 10 >= analytic.count * 9, "\(agreeP) of \(analytic.count) agree")
        #expect(ep < 1e-3)
        // Input-only backward gives the same input gradient and leaves parameter gradients alone.
        let before = d.params.grads
        let dx2 = d.backward(c, dLogits: r, parameterGradients: false)
        #expect(dx2 == dx)
        #expect(d.params.grads == before)
        // The image channels' gradient only is those channels of the full one; without any
        // input gradient the parameter gradients are those of the full backward pass.
        let image = d.backward(c, dLogits: r, parameterGradients: false, inputGradient: 3..<6)!
        let reference = splitChannels(dx, first: 3).1
        #expect(image.shape == reference.shape)
        #expect(zip(image.data, reference.data).map { abs($0 - $1) }.max()! <= 1e-5 * max(1, dx.data.map(abs).max()!))
        #expect(d.params.grads == before)
        d.params.zeroGrads()
        #expect(d.backward(c, dLogits: r, parameterGradients: true, inputGradient: nil) == nil)
        #expect(d.params.grads == before)
    }
}

@Suite("3x3 weight gradient: direct kernel and Winograd domain")
struct DirectWeightGradientTests {
    /// Against a float64 correlation in plain loops, at sizes the trainer uses (many
    /// 16-pixel vectors per row, 8-channel blocks and a partial one, 16-channel blocks
    /// from 32 input channels on, several images).
    /// Widths of a multiple of 16 take plain loads with the padding shifted in (one, two
    /// and three vectors per row), other widths masked loads. On a CPU without AVX2 the
    /// kernel declines and conv2dBackward's GEMM path is what is checked. The bias gradient
    /// comes with it (the kernel's plane sums, or addBiasGradient). The last case is
    /// wider than the direct kernel takes (`directWeightGradientMaxChannelProduct`): the
    /// Winograd domain.
    @Test("Matches naive loops", arguments: [(2, 8, 8, 32, 48), (2, 3, 11, 5, 16), (1, 4, 19, 7, 32), (2, 9, 5, 1, 64),
                                             (3, 5, 13, 9, 70), (1, 16, 24, 2, 129), (2, 37, 20, 5, 33), (2, 70, 66, 6, 10)])
    func naive(_ n: Int, _ cin: Int, _ cout: Int, _ h: Int, _ w: Int) {
        var R = Rand(UInt64(7 + n * cin + w))
        let x = R.tensor([n, cin, h, w]), dy = R.tensor([n, cout, h, w])
        let g = ConvGeometry(cin, cout, kernel: 3, stride: 1, padding: 1)
        var dW = [Float](repeating: 0.5, count: cout * cin * 9), dB = [Float](repeating: 0, count: cout)
        _ = conv2dBackward(x, dy: dy, weight: [Float](repeating: 0, count: dW.count), g, dW: &dW, dB: &dB,
                           inputGradient: false, workspace: Workspace())
        let (worst, scale) = Self.naiveError(x, dy, dW)
        #expect(worst <= 1e-5 * max(1, scale), "worst \(worst) of \(scale)")
        // The bias gradient, which the direct kernel sums as it stages dy: against float64
        // plane sums, and bit for bit addBiasGradient's.
        let plane = h * w
        for o in 0..<cout {
            var sum = 0.0
            for b in 0..<n { for i in 0..<plane { sum += Double(dy.data[(b * cout + o) * plane + i]) } }
            #expect(abs(Double(dB[o]) - sum) <= 1e-5 * max(1, abs(sum)), "dB[\(o)] \(dB[o]) against \(sum)")
        }
        var separate = [Float](repeating: 0, count: cout)
        separate.withUnsafeMutableBufferPointer { addBiasGradient(dy, into: $0.baseAddress!) }
        #expect(zip(dB, separate).allSatisfy { $0.bitPattern == $1.bitPattern })
    }

    /// The kernel's AVX2 blocks (what CPUs without AVX-512 run; on this thread and its pool
    /// jobs only, so other tests keep theirs) against the same float64 loops: 8-pixel
    /// vectors, plain loads inside a row and masked ones at its ends (widths of one vector
    /// and less, and not a multiple of 8), and the bias gradient bit for bit as above.
    @Test("The AVX2 blocks match naive loops", .enabled(if: f2a_kernels_available() != 0),
          arguments: [(2, 8, 8, 32, 48), (2, 3, 11, 5, 16), (1, 4, 19, 7, 5), (2, 9, 5, 1, 8), (3, 5, 13, 9, 70),
                      (1, 16, 24, 2, 129), (2, 37, 20, 5, 33)])
    func naiveAVX2(_ n: Int, _ cin: Int, _ cout: Int, _ h: Int, _ w: Int) {
        let previous = f2a_kernels_set_avx512(0)
        defer { _ = f2a_kernels_set_avx512(previous) }
        var R = Rand(UInt64(11 + n * cin + w))
        let x = R.tensor([n, cin, h, w]), dy = R.tensor([n, cout, h, w])
        // The kernel itself: EngineConvolution sends the wider of these layers to the Winograd domain.
        var dW = [Float](repeating: 0.5, count: cout * cin * 9), dB = [Float](repeating: 0, count: cout)
        var planeSums = [Double](repeating: 0, count: n * cout)
        let status = f2a_conv3x3_weight_grad(x.data, Int32(cin), nil, dy.data, Int32(n), Int32(cin), Int32(cout), Int32(h), Int32(w),
                                             &dW, &planeSums, 2)
        #expect(status == 0)
        dB.withUnsafeMutableBufferPointer { addBiasGradient(planeSums: planeSums, images: n, channels: cout, into: $0.baseAddress!) }
        let (worst, scale) = Self.naiveError(x, dy, dW)
        #expect(worst <= 1e-5 * max(1, scale), "worst \(worst) of \(scale)")
        var separate = [Float](repeating: 0, count: cout)
        separate.withUnsafeMutableBufferPointer { addBiasGradient(dy, into: $0.baseAddress!) }
        #expect(zip(dB, separate).allSatisfy { $0.bitPattern == $1.bitPattern })
    }

    /// A decoder conv's input [x, skip] read where each lies gives, bit for bit, the
    /// gradients of the concatenated input (checked against naive loops above): the direct
    /// kernel (a split inside a channel block and at its edge), the Winograd domain (more
    /// channels than the direct kernel takes; chunks of tiles), and dB with both.
    @Test("Two input sources give the concatenated input's gradients",
          arguments: [(2, 8, 8, 11, 9, 37), (1, 3, 5, 16, 7, 32), (2, 6, 10, 16, 4, 16), (1, 20, 19, 24, 4, 32),
                      (2, 40, 30, 40, 6, 10)])
    func twoSources(_ n: Int, _ c1: Int, _ c2: Int, _ cout: Int, _ h: Int, _ w: Int) {
        var R = Rand(UInt64(5 + n * c1 + c2 + w))
        let x = R.tensor([n, c1, h, w]), skip = R.tensor([n, c2, h, w]), dy = R.tensor([n, cout, h, w])
        func gradients(_ sources: [Tensor], chunk: Int? = nil) -> (dW: [Float], dB: [Float]) {
            var dW = [Float](repeating: 0.5, count: cout * (c1 + c2) * 9), dB = [Float](repeating: 0.25, count: cout)
            dW.withUnsafeMutableBufferPointer { wp in
                dB.withUnsafeMutableBufferPointer { bp in
                    if let chunk {
                        EngineConvolution.winogradWeightGradient(sources[0], skip: sources.count > 1 ? sources[1] : nil, dy: dy,
                                                                 into: wp.baseAddress!, chunkTiles: chunk)
                    } else {
                        #expect(EngineConvolution.weightGradient(sources[0], skip: sources.count > 1 ? sources[1] : nil, dy: dy,
                                                                 into: wp.baseAddress!, bias: bp.baseAddress!) || f2a_kernels_available() == 0)
                    }
                }
            }
            return (dW, dB)
        }
        func same(_ a: [Float], _ b: [Float]) -> Bool { a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern } }
        let whole = concatChannels(x, skip)
        let (dW2, dB2) = gradients([x, skip]), (dW1, dB1) = gradients([whole])
        #expect(same(dW1, dW2) && same(dB1, dB2))
        #expect(same(gradients([whole], chunk: 16).dW, gradients([x, skip], chunk: 16).dW))
    }

    /// Tiles cut by the image's edges (sizes not multiples of 4, a 1-pixel row), several
    /// images, and chunks of tiles smaller than the image (their GEMMs accumulate).
    @Test("Winograd domain matches naive loops, in one chunk of tiles and in many",
          arguments: [(2, 5, 7, 9, 13), (3, 3, 2, 1, 17), (1, 9, 12, 17, 16)])
    func winograd(_ n: Int, _ cin: Int, _ cout: Int, _ h: Int, _ w: Int) {
        var R = Rand(UInt64(11 + n * cin + w))
        let x = R.tensor([n, cin, h, w]), dy = R.tensor([n, cout, h, w])
        for chunk in [nil, 16] {
            var dW = [Float](repeating: 0.5, count: cout * cin * 9)
            dW.withUnsafeMutableBufferPointer {
                EngineConvolution.winogradWeightGradient(x, dy: dy, into: $0.baseAddress!, chunkTiles: chunk)
            }
            let (worst, scale) = Self.naiveError(x, dy, dW)
            #expect(worst <= 1e-5 * max(1, scale), "chunk \(chunk ?? 0): worst \(worst) of \(scale)")
        }
    }

    /// The transforms' AVX-512 gathers and run stores against their scalar versions: the
    /// same floats, so the same gradient bit for bit. Lanes span images (12 tiles per
    /// image), tiles are cut by every edge, the last group of tiles is partial. On a CPU
    /// without AVX-512 both runs take the scalar path.
    @Test("Winograd domain: the AVX-512 transform paths give the scalar paths' gradient bit for bit")
    func winogradWideNarrow() {
        var R = Rand(29)
        let x = R.tensor([3, 5, 9, 13]), dy = R.tensor([3, 7, 9, 13])
        func gradient() -> [Float] {
            var dW = [Float](repeating: 0.5, count: 7 * 5 * 9)
            dW.withUnsafeMutableBufferPointer {
                EngineConvolution.winogradWeightGradient(x, dy: dy, into: $0.baseAddress!, chunkTiles: 16)
            }
            return dW
        }
        let previous = f2a_kernels_set_avx512(0)
        defer { _ = f2a_kernels_set_avx512(previous) }
        let narrow = gradient()
        _ = f2a_kernels_set_avx512(1)
        let wide = gradient()
        #expect(zip(narrow, wide).allSatisfy { $0.bitPattern == $1.bitPattern })
        let (worst, scale) = Self.naiveError(x, dy, wide)
        #expect(worst <= 1e-5 * max(1, scale), "worst \(worst) of \(scale)")
    }

    /// The largest difference between dW − 0.5 (dW started at 0.5: the gradient is
    /// accumulated, not stored) and the float64 correlation, and that correlation's largest magnitude.
    static func naiveError(_ x: Tensor, _ dy: Tensor, _ dW: [Float]) -> (Double, Double) {
        let n = x.n, cin = x.c, cout = dy.c, h = x.h, w = x.w
        var worst = 0.0, scale = 0.0
        for o in 0..<cout {
            for c in 0..<cin {
                for ky in 0..<3 {
                    for kx in 0..<3 {
                        var s = 0.0
                        for b in 0..<n {
                            for y in 0..<h {
                                let sy = y + ky - 1
                                guard sy >= 0 && sy < h else { continue }
                                for xx in 0..<w {
                                    let sx = xx + kx - 1
                                    guard sx >= 0 && sx < w else { continue }
                                    s += Double(dy.data[((b * cout + o) * h + y) * w + xx]) * Double(x.data[((b * cin + c) * h + sy) * w + sx])
                                }
                            }
                        }
                        worst = max(worst, abs(Double(dW[((o * cin + c) * 3 + ky) * 3 + kx]) - 0.5 - s))
                        scale = max(scale, abs(s))
                    }
                }
            }
        }
        return (worst, scale)
    }
}
