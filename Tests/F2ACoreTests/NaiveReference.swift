@testable import F2ACore

// Straightforward loops that define what each layer computes, written
// independently of the GEMM-based implementations they check.

func randomTensor(_ shape: [Int], seed: UInt64, scale: Float = 1) -> Tensor {
    var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
    var t = Tensor(zeros: shape)
    for i in t.data.indices {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        t.data[i] = scale * (Float(state % 20001) / 10000 - 1)
    }
    return t
}

func naiveConv2d(_ x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Int) -> Tensor {
    let (n, cin, h, w) = (x.n, x.c, x.h, x.w)
    let cout = weight.shape[0], k = weight.shape[2]
    let oh = (h + 2 * padding - k) / stride + 1, ow = (w + 2 * padding - k) / stride + 1
    var y = Tensor(zeros: [n, cout, oh, ow])
    for b in 0..<n { for o in 0..<cout { for oy in 0..<oh { for ox in 0..<ow {
        var acc = Double(bias.data[o])
        for c in 0..<cin { for ky in 0..<k { for kx in 0..<k {
            let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
            guard iy >= 0, iy < h, ix >= 0, ix < w else { continue }
            acc += Double(x.data[((b * cin + c) * h + iy) * w + ix]) * Double(weight.data[((o * cin + c) * k + ky) * k + kx])
        }}}
        y.data[((b * cout + o) * oh + oy) * ow + ox] = Float(acc)
    }}}}
    return y
}

func naiveConvTranspose2x2(_ x: Tensor, weight: Tensor, bias: Tensor) -> Tensor {
    let (n, cin, h, w) = (x.n, x.c, x.h, x.w)
    let cout = weight.shape[1]
    var y = Tensor(zeros: [n, cout, 2 * h, 2 * w])
    for b in 0..<n { for o in 0..<cout { for oy in 0..<(2 * h) { for ox in 0..<(2 * w) {
        let iy = oy / 2, ix = ox / 2, ky = oy % 2, kx = ox % 2
        var acc = Double(bias.data[o])
        for c in 0..<cin {
            acc += Double(x.data[((b * cin + c) * h + iy) * w + ix]) * Double(weight.data[((c * cout + o) * 2 + ky) * 2 + kx])
        }
        y.data[((b * cout + o) * 2 * h + oy) * 2 * w + ox] = Float(acc)
    }}}}
    return y
}

func maxAbsDifference(_ a: Tensor, _ b: Tensor) -> Float {
    precondition(a.shape == b.shape, "\(a.shape) vs \(b.shape)")
    return zip(a.data, b.data).map { abs($0 - $1) }.max() ?? 0
}
