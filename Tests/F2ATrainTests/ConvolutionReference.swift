@testable import F2ATrain
import F2ACore

/// Float64 references in plain loops for the convolution tests: each output is summed
/// from its definition, sharing no indexing or layout with the kernels under test.
enum ConvolutionReference {
    /// A random convolution problem for geometry g: x [n, in, h, w], weight and bias (scale
    /// 0.5), an output gradient dy, and their float64 reference (`correlation`).
    struct Problem {
        let x: Tensor, weight: [Float], bias: [Float], dy: Tensor
        let y64: [Double], dW64: [Double], dx64: [Double]
    }

    static func problem(_ g: ConvGeometry, n: Int, height h: Int, width w: Int, seed: UInt64) -> Problem {
        var R = Rand(seed)
        let x = R.tensor([n, g.inChannels, h, w])
        let weight = R.array(g.outChannels * g.inChannels * g.kernel * g.kernel, scale: 0.5)
        let bias = R.array(g.outChannels, scale: 0.5)
        let dy = R.tensor([n, g.outChannels, g.outSize(h), g.outSize(w)])
        let (y64, dW64, dx64) = correlation(x, weight, bias, dy, g)
        return Problem(x: x, weight: weight, bias: bias, dy: dy, y64: y64, dW64: dW64, dx64: dx64)
    }

    /// Largest difference relative to the reference's largest magnitude.
    static func relativeError(_ got: [Float], _ expected: [Double]) -> Double {
        precondition(got.count == expected.count)
        let scale = max(1, expected.map(abs).max() ?? 0)
        return zip(got, expected).map { abs(Double($0) - $1) }.max()! / scale
    }

    /// y = correlation + bias, dW = Σ dy ⊗ x, dx = Σ W dy, all in float64, for any kernel
    /// size, stride and zero padding of g.
    static func correlation(_ x: Tensor, _ weight: [Float], _ bias: [Float], _ dy: Tensor, _ g: ConvGeometry)
        -> (y: [Double], dW: [Double], dx: [Double]) {
        let n = x.n, cin = x.c, cout = g.outChannels, h = x.h, w = x.w, p = g.padding, stride = g.stride, k = g.kernel
        let oh = g.outSize(h), ow = g.outSize(w)
        var y = [Double](repeating: 0, count: n * cout * oh * ow)
        var dW = [Double](repeating: 0, count: weight.count), dx = [Double](repeating: 0, count: x.count)
        for b in 0..<n {
            for o in 0..<cout {
                for oy in 0..<oh {
                    for ox in 0..<ow {
                        let yi = ((b * cout + o) * oh + oy) * ow + ox
                        var s = Double(bias[o])
                        let d = Double(dy.data[yi])
                        for c in 0..<cin {
                            for ky in 0..<k {
                                let iy = oy * stride + ky - p
                                guard iy >= 0 && iy < h else { continue }
                                for kx in 0..<k {
                                    let ix = ox * stride + kx - p
                                    guard ix >= 0 && ix < w else { continue }
                                    let xi = ((b * cin + c) * h + iy) * w + ix, wi = ((o * cin + c) * k + ky) * k + kx
                                    s += Double(weight[wi]) * Double(x.data[xi])
                                    dW[wi] += d * Double(x.data[xi])
                                    dx[xi] += d * Double(weight[wi])
                                }
                            }
                        }
                        y[yi] = s
                    }
                }
            }
        }
        return (y, dW, dx)
    }
}
