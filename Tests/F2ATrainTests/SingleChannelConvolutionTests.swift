import CKernels
import Testing
@testable import F2ATrain
import F2ACore

@Suite("4x4 convolution to one channel (CKernels conv4x4_single.c)")
struct SingleChannelConvolutionTests {
    /// Forward, weight, bias and input gradients against ConvolutionReference's float64
    /// loops: the PatchGAN's logits layer cut down (15² → 14²), rows of more than one
    /// 16-lane vector with a partial one, no padding and more padding than the kernel's
    /// reach. dW and dB start at 0.5: the kernel adds to them.
    @Test("Matches float64 loops", .enabled(if: f2a_kernels_avx512() != 0, "the kernel needs AVX-512 (else the caller lowers to a GEMM)"),
          arguments: [(3, 20, 15, 15, 1), (2, 7, 21, 37, 1), (1, 5, 6, 4, 0), (2, 3, 4, 4, 2)])
    func naive(_ n: Int, _ cin: Int, _ h: Int, _ w: Int, _ pad: Int) throws {
        let g = ConvGeometry(cin, 1, kernel: 4, stride: 1, padding: pad)
        #expect(SingleChannelConvolution.applies(g))
        let p = ConvolutionReference.problem(g, n: n, height: h, width: w, seed: UInt64(13 * cin + w))
        let y = SingleChannelConvolution.forward(p.x, weight: p.weight, bias: p.bias, g)
        #expect(y.shape == [n, 1, g.outSize(h), g.outSize(w)])
        #expect(ConvolutionReference.relativeError(y.data, p.y64) <= 1e-5)
        var dW = [Float](repeating: 0.5, count: p.weight.count), dB: [Float] = [0.5]
        let dx = try #require(SingleChannelConvolution.backward(p.x, dy: p.dy, weight: p.weight, g, dW: &dW, dB: &dB,
                                                                inputGradient: true))
        #expect(ConvolutionReference.relativeError(dx.data, p.dx64) <= 1e-5)
        #expect(ConvolutionReference.relativeError(dW.map { $0 - 0.5 }, p.dW64) <= 1e-5)
        let dB64 = p.dy.data.reduce(0.0) { $0 + Double($1) }
        #expect(abs(Double(dB[0] - 0.5) - dB64) <= 1e-5 * max(1, abs(dB64)))
    }

    /// Every output is summed in one work item in a fixed order: one thread and two give the
    /// same bits; without the input gradient the parameter gradients are the same.
    @Test("Does not depend on the threads or on the input gradient", .enabled(if: f2a_kernels_avx512() != 0, "the kernel needs AVX-512"))
    func threads() {
        let g = ConvGeometry(16, 1, kernel: 4, stride: 1, padding: 1)
        #expect(SingleChannelConvolution.applies(g))
        let p = ConvolutionReference.problem(g, n: 4, height: 15, width: 15, seed: 2)
        func run(_ threads: Int32, dx: Bool) -> (y: [Float], dx: [Float], dW: [Float], dB: Float) {
            let oh = g.outSize(15)
            var y = [Float](repeating: 0, count: 4 * oh * oh), d = [Float](repeating: .nan, count: p.x.count)
            var dW = [Float](repeating: 0.5, count: p.weight.count), dB: Float = 0.5
            #expect(f2a_conv4x4_single(p.x.data, 4, 16, 15, 15, 1, p.weight, p.bias[0], &y, threads) == 0)
            let status = d.withUnsafeMutableBufferPointer { dp in
                f2a_conv4x4_single_backward(p.x.data, 4, 16, 15, 15, 1, p.weight, p.dy.data, dx ? dp.baseAddress! : nil, &dW, &dB,
                                            threads)
            }
            #expect(status == 0)
            return (y, d, dW, dB)
        }
        let one = run(1, dx: true), two = run(2, dx: true), none = run(2, dx: false)
        #expect(one.y == two.y && one.dx == two.dx && one.dW == two.dW && one.dB == two.dB)
        #expect(none.dW == two.dW && none.dB == two.dB && none.dx.allSatisfy(\.isNaN))
    }
}
