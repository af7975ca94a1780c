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
