/// Image quality metrics as `f2a eval` and the trainer report them, defined to
/// match scikit-image so numbers are comparable with published ones.
public enum Metrics {
    /// PSNR in dB between two interleaved RGB images after rounding both to
    /// 8 bits (data range 255). Infinite for identical images.
    public static func psnr(_ a: [Float], _ b: [Float]) -> Double {
        precondition(a.count == b.count && !a.isEmpty)
        var sum = 0.0
        for i in a.indices {
            let d = Double(quantize(a[i])) - Double(quantize(b[i]))
            sum += d * d
        }
        let mse = sum / Double(a.count)
        return mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
    }

    /// SSIM of the grayscale images, as scikit-image's
    /// `structural_similarity(gray_a, gray_b, data_range=1)` defaults:
    /// gray = 0.2125 R + 0.7154 G + 0.0721 B of the 8-bit values / 255,
    /// uniform 7x7 window, K1 = 0.01, K2 = 0.03, sample covariance (N−1),
    /// mean over the map without a 3-pixel border.
    public static func ssimGray(_ a: [Float], _ b: [Float], width: Int, height: Int) -> Double {
        precondition(a.count == width * height * 3 && b.count == a.count)
        let win = 7, r = win / 2
        guard width >= win, height >= win else { return .nan }
        let x = gray(a), y = gray(b)
        let np = Double(win * win)
        let covNorm = np / (np - 1)
        let c1 = 0.01 * 0.01, c2 = 0.03 * 0.03
        // Box sums via a summed-area table of each moment.
        func integral(_ f: (Int) -> Double) -> [Double] {
            var s = [Double](repeating: 0, count: (width + 1) * (height + 1))
            for yy in 0..<height {
                var row = 0.0
                for xx in 0..<width {
                    row += f(yy * width + xx)
                    s[(yy + 1) * (width + 1) + xx + 1] = s[yy * (width + 1) + xx + 1] + row
                }
            }
            return s
        }
        let sx = integral { x[$0] }, sy = integral { y[$0] }
        let sxx = integral { x[$0] * x[$0] }, syy = integral { y[$0] * y[$0] }, sxy = integral { x[$0] * y[$0] }
        func box(_ s: [Double], _ cx: Int, _ cy: Int) -> Double {
            let x0 = cx - r, y0 = cy - r, x1 = cx + r + 1, y1 = cy + r + 1
            let w1 = width + 1
            return (s[y1 * w1 + x1] - s[y0 * w1 + x1] - s[y1 * w1 + x0] + s[y0 * w1 + x0]) / np
        }
        var total = 0.0
        for cy in r..<(height - r) {
            for cx in r..<(width - r) {
                let ux = box(sx, cx, cy), uy = box(sy, cx, cy)
                let vx = covNorm * (box(sxx, cx, cy) - ux * ux)
                let vy = covNorm * (box(syy, cx, cy) - uy * uy)
                let vxy = covNorm * (box(sxy, cx, cy) - ux * uy)
                total += ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
            }
        }
        return total / Double((width - 2 * r) * (height - 2 * r))
    }

    /// Exposure-aligned PSNR (EA-PSNR): the PSNR of `x` against `target`
    /// after `x` gets the one global exposure gain, in linear light, that
    /// maximises it. FAID's ambient exposure is not determined by the flash
    /// image, so this scores what a model does to light and colour apart from
    /// the exposure it could not know. Both images are rounded to 8 bits
    /// first (as saved), the gain is searched from −3 to +2 stops in 1/40
    /// stop (the first best wins) and the result is rounded to 8 bits again:
    /// the definition of tools/baselines/faid.py `best_gain`.
    /// - Returns: the PSNR in dB and the gain in stops.
    public static func exposureAlignedPSNR(_ x: [Float], _ target: [Float]) -> (psnr: Double, stops: Double) {
        precondition(x.count == target.count && !x.isEmpty)
        // Every sample is an (x, target) pair of 8-bit codes, so a joint
        // histogram makes each of the 201 trials 65,536 operations instead
        // of one pass over the image.
        var joint = [Double](repeating: 0, count: 256 * 256)
        for i in x.indices { joint[Int(quantize(x[i])) << 8 | Int(quantize(target[i]))] += 1 }
        let linear = (0..<256).map { srgbDecode(Double($0) / 255) }
        var best = (psnr: -Double.infinity, stops: 0.0)
        for k in 0...200 {
            let stops = -3 + Double(k) * 0.025, gain = pow(2, stops)
            var sum = 0.0
            for v in 0..<256 {
                let y = Double(quantize(Float(srgbEncode(linear[v] * gain))))
                let row = v << 8
                for t in 0..<256 where joint[row | t] != 0 {
                    let d = y - Double(t)
                    sum += joint[row | t] * d * d
                }
            }
            let mse = sum / Double(x.count)
            let psnr = mse == 0 ? .infinity : 10 * log10(255 * 255 / mse)
            if psnr > best.psnr { best = (psnr, stops) }
        }
        return best
    }

    /// The sRGB transfer functions (IEC 61966-2-1), in double precision.
    public static func srgbDecode(_ v: Double) -> Double {
        v <= 0.04045 ? v / 12.92 : pow((v + 0.055) / 1.055, 2.4)
    }

    public static func srgbEncode(_ v: Double) -> Double {
        let c = min(max(v, 0), 1)
        return c <= 0.0031308 ? c * 12.92 : 1.055 * pow(c, 1 / 2.4) - 0.055
    }

    @inline(__always)
    static func quantize(_ v: Float) -> UInt8 {
        v.isNaN ? 0 : UInt8(min(max(v * 255 + 0.5, 0), 255))
    }

    static func gray(_ rgb: [Float]) -> [Double] {
        (0..<(rgb.count / 3)).map { i in
            (0.2125 * Double(quantize(rgb[3 * i])) + 0.7154 * Double(quantize(rgb[3 * i + 1]))
                + 0.0721 * Double(quantize(rgb[3 * i + 2]))) / 255
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif
