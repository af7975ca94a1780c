import CKernels
import Testing
@testable import F2ATrain
import F2ACore

/// The F(3x3, 4x4) path of 4x4 stride-1 convolutions against float64 correlation in
/// plain loops: forward, weight gradient (accumulated onto dW), input gradient of all
/// input channels and of a range of them. The finite-difference checks
/// (GradientCheckTests) cover tiny shapes; these use the channel counts of 16-lane
/// groups and a partial one, output sizes that are not multiples of the 3x3 tile, and
/// chunks of tiles smaller than one image (their GEMMs and dx scatters accumulate).
@Suite("4x4 stride-1 convolution in the Winograd domain")
struct Winograd4x4Tests {
    struct Case: CustomStringConvertible, Sendable {
        let n: Int, cin: Int, cout: Int, h: Int, w: Int, padding: Int
        var description: String { "n\(n) \(cin)->\(cout) \(h)x\(w) p\(padding)" }
    }

    @Test("Forward, weight and input gradients match naive loops, in one chunk of tiles and in many", arguments: [
        Case(n: 2, cin: 20, cout: 19, h: 16, w: 13, padding: 1),   // the PatchGAN's layer, channels cut down
        Case(n: 3, cin: 3, cout: 5, h: 7, w: 9, padding: 1),
        Case(n: 1, cin: 17, cout: 2, h: 4, w: 4, padding: 0),     // one tile, cut to 1x1
        Case(n: 2, cin: 4, cout: 33, h: 11, w: 5, padding: 2),
    ])
    func naive(_ c: Case) {
        let g = ConvGeometry(c.cin, c.cout, kernel: 4, stride: 1, padding: c.padding)
        #expect(Winograd4x4.applies(g))
        let p = ConvolutionReference.problem(g, n: c.n, height: c.h, width: c.w, seed: UInt64(31 + c.cin * c.w))
        let (x, weight, bias, dy, y64, dW64, dx64) = (p.x, p.weight, p.bias, p.dy, p.y64, p.dW64, p.dx64)
        let oh = g.outSize(c.h), ow = g.outSize(c.w)
        for chunk in [nil, 2] {
            let ws = Workspace()
            let y = Winograd4x4.forward(x, weight: weight, bias: bias, g, workspace: ws, chunkTiles: chunk)
            #expect(y.shape == [c.n, c.cout, oh, ow])
            #expect(ConvolutionReference.relativeError(y.data, y64) < 1e-5, "chunk \(chunk ?? 0) y")
            var dW = [Float](repeating: 0.5, count: weight.count), dB = [Float](repeating: 0, count: c.cout)
            let dx = Winograd4x4.backward(x, dy: dy, weight: weight, g, dW: &dW, dB: &dB, inputGradient: 0..<c.cin,
                                          workspace: ws, chunkTiles: chunk)!
            #expect(ConvolutionReference.relativeError(dW.map { $0 - 0.5 }, dW64) < 1e-5, "chunk \(chunk ?? 0) dW")
            #expect(ConvolutionReference.relativeError(dx.data, dx64) < 1e-5, "chunk \(chunk ?? 0) dx")
            // The last input channels only, without parameter gradients.
            let from = c.cin / 2
            let part = Winograd4x4.backward(x, dy: dy, weight: weight, g, dW: nil, dB: nil, inputGradient: from..<c.cin,
                                            workspace: ws, chunkTiles: chunk)!
            #expect(part.shape == [c.n, c.cin - from, c.h, c.w])
            let plane = c.h * c.w
            var expected: [Double] = []
            for b in 0..<c.n {
                let lo = (b * c.cin + from) * plane, hi = (b + 1) * c.cin * plane
                expected += dx64[lo..<hi]
            }
            #expect(ConvolutionReference.relativeError(part.data, expected) < 1e-5, "chunk \(chunk ?? 0) dx of channels \(from)...")
        }
    }

    /// The transforms' AVX-512 gathers and run loads and stores against their scalar
    /// versions: forward and backward give the same floats bit for bit. On a CPU without
    /// AVX-512 both runs take the scalar path.
    @Test("The AVX-512 transform paths give the scalar paths' results bit for bit")
    func wideNarrow() {
        var R = Rand(37)
        let g = ConvGeometry(6, 9, kernel: 4, stride: 1, padding: 1)
        let x = R.tensor([3, 6, 10, 11]), weight = R.array(9 * 6 * 16, scale: 0.5), bias = R.array(9, scale: 0.5)
        let dy = R.tensor([3, 9, g.outSize(10), g.outSize(11)])
        func run() -> [Float] {
            let ws = Workspace()
            let y = Winograd4x4.forward(x, weight: weight, bias: bias, g, workspace: ws, chunkTiles: 20)
            var dW = [Float](repeating: 0, count: weight.count), dB = [Float](repeating: 0, count: 9)
            let dx = Winograd4x4.backward(x, dy: dy, weight: weight, g, dW: &dW, dB: &dB, inputGradient: 0..<6,
                                          workspace: ws, chunkTiles: 20)!
            return y.data + dW + dx.data
        }
        let previous = f2a_kernels_set_avx512(0)
        defer { _ = f2a_kernels_set_avx512(previous) }
        let narrow = run()
        _ = f2a_kernels_set_avx512(1)
        let wide = run()
        #expect(narrow.count == wide.count && zip(narrow, wide).allSatisfy { $0.bitPattern == $1.bitPattern })
    }

    /// Weights transformed once (`transformedWeights`, as the discriminator keeps them from
    /// its forward pass for its backward) give the results of weights transformed on every
    /// call, bit for bit: forward, both gradients, and the input gradient alone.
    @Test("Transformed weights passed in give the same results")
    func transformedOnce() {
        let g = ConvGeometry(5, 7, kernel: 4, stride: 1, padding: 1)
        let p = ConvolutionReference.problem(g, n: 2, height: 9, width: 8, seed: 41)
        let (x, weight, bias, dy) = (p.x, p.weight, p.bias, p.dy)
        func run(_ u: [Float]?) -> [Float] {
            let ws = Workspace()
            let y = Winograd4x4.forward(x, weight: weight, bias: bias, g, workspace: ws, transformed: u, chunkTiles: 8)
            var dW = [Float](repeating: 0, count: weight.count), dB = [Float](repeating: 0, count: 7)
            let dx = Winograd4x4.backward(x, dy: dy, weight: weight, g, dW: &dW, dB: &dB, inputGradient: 0..<5,
                                          workspace: ws, transformed: u, chunkTiles: 8)!
            let part = Winograd4x4.backward(x, dy: dy, weight: weight, g, dW: nil, dB: nil, inputGradient: 2..<5,
                                            workspace: ws, transformed: u)!
            return y.data + dW + dB + dx.data + part.data
        }
        let each = run(nil), once = run(Winograd4x4.transformedWeights(weight, g))
        #expect(each.count == once.count && zip(each, once).allSatisfy { $0.bitPattern == $1.bitPattern })
        // Another layer's weights passed in must change the result (the argument is used).
        let other = run(Winograd4x4.transformedWeights(weight.map { -$0 }, g))
        #expect(zip(each, other).contains { $0.bitPattern != $1.bitPattern })
    }
}
