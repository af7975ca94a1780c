import CKernels
import Testing
@testable import F2ATrain
import F2ACore

/// The phase GEMMs of 4x4 stride-2 convolutions (`PhaseConvolution`) against float64
/// correlation in plain loops (`ConvolutionReference`): forward, weight gradient
/// (accumulated onto dW), bias gradient, input gradient of all input channels and of the
/// last ones (the image half of a conditional discriminator's input). Even and odd
/// sizes (an odd size's last phase row or column is half padding), one-row outputs,
/// channel counts around a 16-lane vector, a phase grid of several column chunks, and
/// weight gradients summed in 2 and 4 column slices of up to 3 chunks each; the forward
/// pass, input gradient and weight gradient both through the shifted kernels (the forward
/// one's AVX2 and AVX-512 blocks, the same bits; the weight gradient's AVX-512 block where
/// the CPU has it, else BLAS) and through BLAS; the forward pass and the input gradient by
/// Winograd F(2x2, 2x2), AVX2 and AVX-512 blocks, the same bits (one and two tile rows to a vector, a
/// row's last tile in column groups, tiles cut by the output's edge); and with the LeakyReLU of the
/// discriminator's first layer fused in.
/// The finite-difference checks (GradientCheckTests) cover the same path at tiny shapes.
@Suite("4x4 stride-2 convolution as GEMMs over the input's phases")
struct PhaseConvolutionTests {
    struct Case: CustomStringConvertible, Sendable {
        let n: Int, cin: Int, cout: Int, h: Int, w: Int
        var description: String { "n\(n) \(cin)->\(cout) \(h)x\(w)" }
    }

    @Test("Forward, weight, bias and input gradients match naive loops", arguments: [
        Case(n: 3, cin: 6, cout: 16, h: 16, w: 12),   // the PatchGAN's first layer, cut down: 24 phase rows, paired shifts
        Case(n: 2, cin: 17, cout: 9, h: 11, w: 9),    // odd sizes
        Case(n: 1, cin: 4, cout: 3, h: 2, w: 7),      // one output row; 16 phase rows, the least paired
        Case(n: 2, cin: 3, cout: 33, h: 5, w: 4),
        Case(n: 4, cin: 3, cout: 8, h: 40, w: 31),    // 1428 grid columns: chunks of 512 and a short one
        Case(n: 2, cin: 5, cout: 7, h: 66, w: 70),    // 2411 GEMM columns: the weight gradient in 2 slices
        Case(n: 4, cin: 3, cout: 8, h: 94, w: 94),    // 9167: 4 slices of 3 chunks, the last one short
        Case(n: 2, cin: 32, cout: 20, h: 20, w: 36),  // 128 phase rows: whole 16 x 16 transposes
        Case(n: 2, cin: 12, cout: 9, h: 66, w: 70),   // 48 phase rows (the shifted weight gradient's least), 2 slices
        Case(n: 3, cin: 5, cout: 18, h: 18, w: 34),   // rows of 9 tiles (forward and input gradient): a column group
    ])
    func naive(_ c: Case) {
        for winograd in [false, true] {
            var kernels: [[[Float]]] = []
            for wide in [false, true] where f2a_kernels_available() != 0 && (!wide || f2a_cpu_has_avx512() != 0) {
                // On this thread and its pool jobs only.
                let previous = f2a_kernels_set_avx512(wide ? 1 : 0)
                defer { _ = f2a_kernels_set_avx512(previous) }
                let path = (winograd ? "Winograd F(2x2, 2x2), " : "shifted kernel, ") + (wide ? "AVX-512" : "AVX2")
                kernels.append(check(c, shiftedKernel: true, winograd: winograd, path: path))
            }
            if kernels.count == 2 {
                #expect(zip(kernels[0][0], kernels[1][0]).allSatisfy { $0.bitPattern == $1.bitPattern },
                        "y: AVX2 and AVX-512 blocks differ (Winograd: \(winograd))")
                #expect(zip(kernels[0][1], kernels[1][1]).allSatisfy { $0.bitPattern == $1.bitPattern },
                        "dx: AVX2 and AVX-512 blocks differ (Winograd: \(winograd))")
            }
        }
        _ = check(c, shiftedKernel: false, winograd: false, path: "BLAS")
    }

    /// Checks one path; returns its y and dx.
    func check(_ c: Case, shiftedKernel: Bool, winograd: Bool, path: String) -> [[Float]] {
        let g = ConvGeometry(c.cin, c.cout, kernel: 4, stride: 2, padding: 1)
        #expect(PhaseConvolution.applies(g))
        let p = ConvolutionReference.problem(g, n: c.n, height: c.h, width: c.w, seed: UInt64(71 + c.cin * c.h))
        let (x, weight, bias, dy, y64, dW64, dx64) = (p.x, p.weight, p.bias, p.dy, p.y64, p.dW64, p.dx64)
        let oh = g.outSize(c.h), ow = g.outSize(c.w)
        let (y, phases) = PhaseConvolution.forward(x, weight: weight, bias: bias, g, shiftedKernel: shiftedKernel, winograd: winograd)
        #expect(y.shape == [c.n, c.cout, oh, ow])
        #expect(ConvolutionReference.relativeError(y.data, y64) < 1e-5, "y, \(path)")

        var dW = [Float](repeating: 0.5, count: weight.count), dB = [Float](repeating: 0.25, count: c.cout)
        let dx = PhaseConvolution.backward(x, dy: dy, weight: weight, g, dW: &dW, dB: &dB, inputGradient: 0..<c.cin,
                                           phases: phases, shiftedKernel: shiftedKernel, winograd: winograd)!
        #expect(dx.shape == x.shape)
        #expect(ConvolutionReference.relativeError(dW.map { $0 - 0.5 }, dW64) < 1e-5, "dW, \(path)")
        #expect(ConvolutionReference.relativeError(dx.data, dx64) < 1e-5, "dx, \(path)")
        var dB64 = [Double](repeating: 0, count: c.cout)
        for b in 0..<c.n { for o in 0..<c.cout { for i in 0..<(oh * ow) { dB64[o] += Double(dy.data[(b * c.cout + o) * oh * ow + i]) } } }
        #expect(ConvolutionReference.relativeError(dB.map { $0 - 0.25 }, dB64) < 1e-5, "dB, \(path)")

        // The phases made again from x give the kept ones' gradient bit for bit.
        var dW2 = [Float](repeating: 0.5, count: weight.count)
        _ = PhaseConvolution.backward(x, dy: dy, weight: weight, g, dW: &dW2, dB: nil, inputGradient: nil, shiftedKernel: shiftedKernel,
                                      winograd: winograd)
        #expect(zip(dW, dW2).allSatisfy { $0.bitPattern == $1.bitPattern })

        // The last input channels only, without parameter gradients.
        let from = c.cin / 2
        let part = PhaseConvolution.backward(x, dy: dy, weight: weight, g, dW: nil, dB: nil, inputGradient: from..<c.cin,
                                               shiftedKernel: shiftedKernel, winograd: winograd)!
        #expect(part.shape == [c.n, c.cin - from, c.h, c.w])
        let plane = c.h * c.w
        var expected: [Double] = []
        for b in 0..<c.n { expected += dx64[((b * c.cin + from) * plane)..<((b + 1) * c.cin * plane)] }
        #expect(ConvolutionReference.relativeError(part.data, expected) < 1e-5, "dx of channels \(from)..., \(path)")

        // With the LeakyReLU fused (the discriminator's first layer): the output against the
        // reference's, and the gradients against the unfused composition: dW and dx the same
        // bits (the same gated dY goes into the same GEMMs), dB summed in another order.
        let slope: Float = 0.2
        let (yl, phasesL) = PhaseConvolution.forward(x, weight: weight, bias: bias, g, leakySlope: slope, shiftedKernel: shiftedKernel,
                                                     winograd: winograd)
        #expect(ConvolutionReference.relativeError(yl.data, y64.map { $0 < 0 ? $0 * Double(slope) : $0 }) < 1e-5, "leaky y, \(path)")
        var dWf = [Float](repeating: 0.5, count: weight.count), dBf = [Float](repeating: 0.25, count: c.cout)
        let dxf = PhaseConvolution.backward(x, dy: dy, weight: weight, g, dW: &dWf, dB: &dBf, inputGradient: 0..<c.cin,
                                            phases: phasesL, leaky: (yl, slope), shiftedKernel: shiftedKernel,
                                            winograd: winograd)!
        var gated = dy
        Pointwise.leakyReluBackward(&gated, output: yl, slope: slope)
        var dWu = [Float](repeating: 0.5, count: weight.count), dBu = [Float](repeating: 0.25, count: c.cout)
        let dxu = PhaseConvolution.backward(x, dy: gated, weight: weight, g, dW: &dWu, dB: &dBu, inputGradient: 0..<c.cin,
                                            phases: phasesL, shiftedKernel: shiftedKernel, winograd: winograd)!
        #expect(zip(dWf, dWu).allSatisfy { $0.bitPattern == $1.bitPattern }, "leaky dW, \(path)")
        #expect(zip(dxf.data, dxu.data).allSatisfy { $0.bitPattern == $1.bitPattern }, "leaky dx, \(path)")
        #expect(ConvolutionReference.relativeError(dBf.map { $0 - 0.25 }, dBu.map { Double($0 - 0.25) }) < 1e-5, "leaky dB, \(path)")
        #expect(gated.data != dy.data, "the case has negative outputs")
        return [y.data, dx.data]
    }
}
