import CKernels
import Testing
@testable import F2ATrain
import F2ACore

@Suite("Transposed-conv backward (CKernels f2a_convT2x2_backward)")
struct ConvTransposeBackwardTests {
    /// A problem: the layer's input x [n, cin, h, w], weight [cin, cout, 2, 2], the gradient
    /// of [output, other channels] dy [n, cout + extra, 2h, 2w] and the output's ReLU (gate,
    /// with zeros and negatives), and dx, dW, dB in float64 loops.
    struct Problem {
        var x: Tensor, weight: [Float], dy: Tensor, gate: Tensor?, cout: Int
        var dx64: [Double] = [], dW64: [Double] = [], dB64: [Double] = []

        init(n: Int, cin: Int, cout: Int, h: Int, w: Int, extra: Int, gated: Bool, seed: UInt64) {
            var R = Rand(seed)
            x = R.tensor([n, cin, h, w]); weight = R.array(cin * cout * 4)
            dy = R.tensor([n, cout + extra, 2 * h, 2 * w]); gate = gated ? R.tensor([n, cout, 2 * h, 2 * w]) : nil
            self.cout = cout
            let h2 = 2 * h, w2 = 2 * w
            dx64 = [Double](repeating: 0, count: n * cin * h * w)
            dW64 = [Double](repeating: 0, count: cin * cout * 4)
            dB64 = [Double](repeating: 0, count: cout)
            for b in 0..<n {
                for o in 0..<cout {
                    for yy in 0..<h2 {
                        for xx in 0..<w2 {
                            var g = Double(dy.data[((b * (cout + extra) + o) * h2 + yy) * w2 + xx])
                            if let gate, gate.data[((b * cout + o) * h2 + yy) * w2 + xx] <= 0 { g = 0 }
                            dB64[o] += g
                            let y = yy / 2, xc = xx / 2, tap = (yy % 2) * 2 + xx % 2
                            for c in 0..<cin {
                                let wi = (c * cout + o) * 4 + tap, xi = ((b * cin + c) * h + y) * w + xc
                                dx64[xi] += Double(weight[wi]) * g
                                dW64[wi] += Double(x.data[xi]) * g
                            }
                        }
                    }
                }
            }
        }

        /// The kernel's dx, and dW and dB added to 0.5 each, or nil where it declines.
        func kernel(threads: Int) -> (dx: [Float], dW: [Float], dB: [Float])? {
            var dx = [Float](repeating: .nan, count: x.count), dW = [Float](repeating: 0.5, count: weight.count)
            var dB = [Float](repeating: 0.5, count: cout)
            let status = (gate?.data ?? []).withUnsafeBufferPointer { gp in
                f2a_convT2x2_backward(x.data, Int32(x.n), Int32(x.c), Int32(x.h), Int32(x.w), dy.data, Int32(dy.c),
                                      gate == nil ? nil : gp.baseAddress!, weight, Int32(cout), &dx, &dW, &dB, Int32(threads))
            }
            return status == 0 ? (dx, dW, dB) : nil
        }
    }

    /// Against float64 loops at the trainer's shapes and around them: widths of a multiple of
    /// 16 pixels (whole vectors), others with a partial vector at each row's end (the 160-pixel
    /// crop's 10, 20 and 40), rows narrower than a vector; blocks of several rows and a partial
    /// last block; T's 4·cout rows a multiple of 16 and not (cout 3, 5), input channels past a
    /// 6-row block; gated and not; more gradient channels than the output's (a decoder conv's
    /// [upsampled, skip] gradient, read in place).
    @Test("Matches float64 loops", arguments: [
        (2, 32, 16, 64, 64, 16, true), (2, 64, 32, 32, 32, 32, true), (3, 16, 8, 8, 8, 0, true),
        (2, 7, 3, 10, 10, 2, true), (1, 12, 5, 20, 20, 0, false), (2, 16, 4, 40, 40, 4, true),
        (1, 5, 16, 3, 37, 0, true), (1, 128, 128, 8, 8, 128, true),
    ])
    func naive(_ n: Int, _ cin: Int, _ cout: Int, _ h: Int, _ w: Int, _ extra: Int, _ gated: Bool) throws {
        let p = Problem(n: n, cin: cin, cout: cout, h: h, w: w, extra: extra, gated: gated, seed: UInt64(17 * cin + w))
        guard let r = p.kernel(threads: 2) else {
            #expect(f2a_kernels_avx512() == 0, "the kernel declined on an AVX-512 CPU")
            return
        }
        #expect(ConvolutionReference.relativeError(r.dx, p.dx64) <= 1e-5)
        #expect(ConvolutionReference.relativeError(r.dW.map { $0 - 0.5 }, p.dW64) <= 1e-5)
        #expect(ConvolutionReference.relativeError(r.dB.map { $0 - 0.5 }, p.dB64) <= 1e-5)
    }

    /// The blocks are summed in shares fixed by their count, added in share order: one thread
    /// and two give the same bits. And the trainer's function gives the kernel's results where
    /// it runs, its GEMMs' (close to them) where told not to use it.
    @Test("Does not depend on the threads; the trainer's function runs it")
    func threads() throws {
        let p = Problem(n: 3, cin: 24, cout: 8, h: 24, w: 40, extra: 8, gated: true, seed: 3)
        guard let one = p.kernel(threads: 1), let two = p.kernel(threads: 2) else {
            #expect(f2a_kernels_avx512() == 0)
            return
        }
        #expect(one.dx == two.dx && one.dW == two.dW && one.dB == two.dB)

        func trainer(kernel: Bool) -> (dx: [Float], dW: [Float], dB: [Float]) {
            var dW = [Float](repeating: 0.5, count: p.weight.count), dB = [Float](repeating: 0.5, count: p.cout)
            let dx = convTranspose2x2Backward(p.x, dy: p.dy, weight: p.weight, outChannels: p.cout, gate: p.gate,
                                              dW: &dW, dB: &dB, kernel: kernel)
            return (dx.data, dW, dB)
        }
        let viaKernel = trainer(kernel: true), viaGemm = trainer(kernel: false)
        #expect(viaKernel.dx == two.dx && viaKernel.dW == two.dW && viaKernel.dB == two.dB)
        #expect(ConvolutionReference.relativeError(viaGemm.dx, p.dx64) <= 1e-5)
        #expect(ConvolutionReference.relativeError(viaGemm.dW.map { $0 - 0.5 }, p.dW64) <= 1e-5)
    }

    /// Without the AVX-512 blocks the kernel declines before writing anything.
    @Test("Declines without AVX-512, touching nothing")
    func declines() {
        let p = Problem(n: 1, cin: 4, cout: 2, h: 4, w: 4, extra: 0, gated: false, seed: 9)
        let previous = f2a_kernels_set_avx512(0)
        defer { _ = f2a_kernels_set_avx512(previous) }
        var dx = [Float](repeating: 7, count: p.x.count), dW = [Float](repeating: 7, count: p.weight.count)
        var dB = [Float](repeating: 7, count: 2)
        let status = f2a_convT2x2_backward(p.x.data, 1, 4, 4, 4, p.dy.data, 2, nil, p.weight, 2, &dx, &dW, &dB, 2)
        #expect(status == -1)
        #expect(dx.allSatisfy { $0 == 7 } && dW.allSatisfy { $0 == 7 } && dB.allSatisfy { $0 == 7 })
    }
}
