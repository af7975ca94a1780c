import F2AImage
import Testing
import Foundation

/// Deterministic 8-bit test images, the same as `pixel()` in make_golden.py
/// (which computed the scikit-image numbers in MetricsGolden.swift).
enum TestImages {
    static func hash(_ x: Int, _ y: Int, _ c: Int, _ seed: Int) -> Int {
        var h = (UInt32(truncatingIfNeeded: x) &* 73_856_093) ^ (UInt32(truncatingIfNeeded: y) &* 19_349_663)
            ^ (UInt32(truncatingIfNeeded: c) &* 83_492_791) ^ (UInt32(truncatingIfNeeded: seed) &* 2_654_435_761)
        h ^= h >> 13
        h = h &* 0x5BD1_E995
        h ^= h >> 15
        return Int(h)
    }

    static func clamp8(_ v: Int) -> Int { min(max(v, 0), 255) }

    static func pixel(_ kind: String, _ x: Int, _ y: Int, _ c: Int) -> Int {
        switch kind {
        case "ramp": return (3 * x + 5 * y + 60 * c) % 256
        case "ramp+noise": return clamp8((3 * x + 5 * y + 60 * c) % 256 + hash(x, y, c, 7) % 41 - 20)
        case "blobs": return hash(x / 8, y / 8, c, 3) % 256
        case "blobs+offset": return clamp8(hash(x / 8, y / 8, c, 3) % 256 + 25 + hash(x, y, c, 9) % 11 - 5)
        case "blobs-dark": return clamp8(Int(Double(hash(x / 8, y / 8, c, 3) % 256) * 0.73) + hash(x, y, c, 5) % 7 - 3)
        case "noise1": return hash(x, y, c, 1) % 256
        case "noise2": return hash(x, y, c, 2) % 256
        default: fatalError("unknown test image kind \(kind)")
        }
    }

    /// Interleaved RGB floats k/255 of image `kind`, optionally moved off the
    /// 8-bit grid by up to ±0.4/255 (the metrics round to 8 bits first, so
    /// the result must not change).
    static func image(_ kind: String, width: Int, height: Int, jitter: Bool = false) -> [Float] {
        var out = [Float](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    let k = Float(pixel(kind, x, y, c))
                    let j: Float = jitter ? Float(hash(x, y, c, 42) % 81 - 40) / 100 : 0
                    out[(y * width + x) * 3 + c] = (k + j) / 255
                }
            }
        }
        return out
    }
}

@Suite("Metrics against scikit-image")
struct MetricsTests {
    static let tolerance = 1e-3

    @Test("PSNR, SSIM and EA-PSNR match the Python references", arguments: metricsGolden)
    func matchesScikitImage(_ g: MetricsGoldenCase) {
        for jitter in [false, true] {
            let a = TestImages.image(g.kindA, width: g.width, height: g.height, jitter: jitter)
            let b = TestImages.image(g.kindB, width: g.width, height: g.height, jitter: jitter)
            let psnr = Metrics.psnr(a, b)
            if g.psnr.isInfinite {
                #expect(psnr == .infinity, "\(g.name) jitter \(jitter): psnr \(psnr)")
            } else {
                #expect(abs(psnr - g.psnr) <= Self.tolerance, "\(g.name) jitter \(jitter): psnr \(psnr) vs \(g.psnr)")
            }
            let ssim = Metrics.ssimGray(a, b, width: g.width, height: g.height)
            #expect(abs(ssim - g.ssim) <= Self.tolerance, "\(g.name) jitter \(jitter): ssim \(ssim) vs \(g.ssim)")
            let ea = Metrics.exposureAlignedPSNR(a, b).psnr
            if g.eaPSNR.isInfinite {
                #expect(ea == .infinity, "\(g.name) jitter \(jitter): EA-PSNR \(ea)")
            } else {
                #expect(abs(ea - g.eaPSNR) <= Self.tolerance, "\(g.name) jitter \(jitter): EA-PSNR \(ea) vs \(g.eaPSNR)")
            }
        }
    }

    @Test("EA-PSNR is never below PSNR and finds the gain that made the target")
    func exposureAligned() {
        let a = TestImages.image("blobs", width: 64, height: 64)
        // The same image 1.5 stops darker in linear light.
        let b = a.map { Float(Metrics.srgbEncode(Metrics.srgbDecode(Double($0)) * pow(2, -1.5))) }
        let (ea, stops) = Metrics.exposureAlignedPSNR(a, b)
        #expect(stops == -1.5)
        #expect(ea > 45 && ea > Metrics.psnr(a, b) + 20, "EA-PSNR \(ea), PSNR \(Metrics.psnr(a, b))")
        let noisy = TestImages.image("ramp+noise", width: 40, height: 30), ramp = TestImages.image("ramp", width: 40, height: 30)
        #expect(Metrics.exposureAlignedPSNR(noisy, ramp).psnr >= Metrics.psnr(noisy, ramp))
    }

    @Test("Both metrics are symmetric")
    func symmetric() {
        let a = TestImages.image("ramp", width: 40, height: 30)
        let b = TestImages.image("ramp+noise", width: 40, height: 30)
        #expect(Metrics.psnr(a, b) == Metrics.psnr(b, a))
        #expect(abs(Metrics.ssimGray(a, b, width: 40, height: 30) - Metrics.ssimGray(b, a, width: 40, height: 30)) < 1e-12)
    }

    @Test("SSIM is undefined below the 7x7 window")
    func tooSmallForSSIM() {
        let a = TestImages.image("ramp", width: 6, height: 9)
        #expect(Metrics.ssimGray(a, a, width: 6, height: 9).isNaN)
        #expect(Metrics.ssimGray(a, a, width: 9, height: 6).isNaN)
    }

    @Test("Out-of-range and NaN samples are clamped like 8-bit conversion")
    func clamping() {
        // 1.7 and 1.0 both quantise to 255, -3 and NaN to 0: identical after rounding.
        let a: [Float] = [1.7, -3, .nan]
        let b: [Float] = [1.0, 0, 0]
        #expect(Metrics.psnr(a, b) == .infinity)
    }
}
