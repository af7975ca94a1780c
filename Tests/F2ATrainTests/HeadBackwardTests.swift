import CKernels
import Testing
@testable import F2ATrain
import F2ACore

@Suite("Output head backward (CKernels f2a_conv1x1_backward)")
struct HeadBackwardTests {
    /// dx, dW and dB of a 1x1 convolution to 3 channels, image by image as the trainer
    /// calls it, against ConvolutionReference's float64 loops. Input channels in whole
    /// groups of 8, a partial group alone and after whole ones; planes in one block of
    /// pixels and in several, with and without a partial last vector. dW and dB start at
    /// 0.5: the kernel adds to them. The AVX2 blocks (groups of 4 channels, 8-pixel vectors;
    /// on this thread and its pool jobs) and, where the CPU has them, the AVX-512 ones.
    @Test("Matches float64 loops", .enabled(if: f2a_kernels_available() != 0, "the kernel needs AVX2 (else the trainer lowers to GEMMs)"),
          arguments: [(2, 8, 16, 16), (1, 5, 7, 9), (2, 13, 48, 64), (3, 16, 33, 70), (1, 1, 4, 4), (1, 6, 3, 5)])
    func naive(_ n: Int, _ cin: Int, _ h: Int, _ w: Int) throws {
        let g = ConvGeometry(cin, 3, kernel: 1, stride: 1, padding: 0)
        let p = ConvolutionReference.problem(g, n: n, height: h, width: w, seed: UInt64(31 * cin + h))
        let plane = h * w
        let dB64 = (0..<3).map { o in
            (0..<n).reduce(0.0) { s, b in s + (0..<plane).reduce(0.0) { $0 + Double(p.dy.data[(b * 3 + o) * plane + $1]) } }
        }
        for wide in [false, true] where !wide || f2a_cpu_has_avx512() != 0 {
            let previous = f2a_kernels_set_avx512(wide ? 1 : 0)
            defer { _ = f2a_kernels_set_avx512(previous) }
            let blocks = wide ? "AVX-512" : "AVX2"
            let (dx, dW, dB) = try Self.run(p, cin: cin, threads: 2)
            #expect(ConvolutionReference.relativeError(dx, p.dx64) <= 1e-6, "dx, \(blocks)")
            #expect(ConvolutionReference.relativeError(dW.map { $0 - 0.5 }, p.dW64) <= 1e-5, "dW, \(blocks)")
            #expect(ConvolutionReference.relativeError(dB.map { $0 - 0.5 }, dB64) <= 1e-5, "dB, \(blocks)")
        }
    }

    /// The sums go by blocks of pixels in block order: one thread and two give the same bits,
    /// and so does a call without the input gradient.
    @Test("Does not depend on the threads or on dx", .enabled(if: f2a_kernels_available() != 0, "the kernel needs AVX2"))
    func threads() throws {
        let g = ConvGeometry(16, 3, kernel: 1, stride: 1, padding: 0)
        let p = ConvolutionReference.problem(g, n: 2, height: 96, width: 70, seed: 5)
        let one = try Self.run(p, cin: 16, threads: 1), two = try Self.run(p, cin: 16, threads: 2)
        #expect(one.dx == two.dx && one.dW == two.dW && one.dB == two.dB)
        let none = try Self.run(p, cin: 16, threads: 2, inputGradient: false)
        #expect(none.dW == two.dW && none.dB == two.dB && none.dx.allSatisfy(\.isNaN))
    }

    /// Anything but 3 output channels is declined before anything is written.
    @Test("Declines other output channel counts, touching nothing")
    func declines() {
        var x = [Float](repeating: 1, count: 4 * 16), dz = [Float](repeating: 1, count: 4 * 16), weight = [Float](repeating: 1, count: 16)
        var dx = [Float](repeating: 7, count: 4 * 16), dW = [Float](repeating: 7, count: 16), dB = [Float](repeating: 7, count: 4)
        var scratch = [Float](repeating: 0, count: f2a_conv1x1_backward_scratch(16, 4, 4))
        let status = f2a_conv1x1_backward(&x, 4, 16, &dz, 4, &weight, &dx, &dW, &dB, &scratch, 2)
        #expect(status == -1)
        #expect(dx.allSatisfy { $0 == 7 } && dW.allSatisfy { $0 == 7 } && dB.allSatisfy { $0 == 7 })
    }

    struct KernelDeclined: Error {}

    /// The kernel image by image, dx (NaN where not written) only with `inputGradient`.
    static func run(_ p: ConvolutionReference.Problem, cin: Int, threads: Int, inputGradient: Bool = true) throws
        -> (dx: [Float], dW: [Float], dB: [Float]) {
        let n = p.x.n, hw = p.x.h * p.x.w
        var dx = [Float](repeating: .nan, count: p.x.count), dW = [Float](repeating: 0.5, count: 3 * cin)
        var dB = [Float](repeating: 0.5, count: 3)
        var scratch = [Float](repeating: 0, count: f2a_conv1x1_backward_scratch(hw, Int32(cin), 3))
        for b in 0..<n {
            let status = p.x.data.withUnsafeBufferPointer { x in
                p.dy.data.withUnsafeBufferPointer { dz in
                    dx.withUnsafeMutableBufferPointer { d in
                        f2a_conv1x1_backward(x.baseAddress! + b * cin * hw, Int32(cin), hw, dz.baseAddress! + b * 3 * hw, 3, p.weight,
                                             inputGradient ? d.baseAddress! + b * cin * hw : nil, &dW, &dB, &scratch,
                                             Int32(threads))
                    }
                }
            }
            guard status == 0 else { throw KernelDeclined() }
        }
        return (dx, dW, dB)
    }
}
