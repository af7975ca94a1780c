#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How the camera turns scene radiance into an sRGB image: white balance,
/// optics blur, exposure, sensor noise, clipping, sRGB encoding.
public struct SensorSettings: Sendable, Codable {
    /// Colour temperature the camera white-balances for, kelvin. A light of
    /// this temperature renders neutral; a hotter light renders blue.
    public var whiteBalance: Float
    /// Multiplier from white-balanced radiance to sensor level (1 = clipping).
    /// nil: automatic (metered on the image, see `meteringKey`).
    public var exposure: Float?
    /// Target mean sensor level of the automatic exposure (linear, ~0.18).
    public var meteringKey: Float
    /// Keep the automatic exposure from clipping anything (brightest channel
    /// value at 0.97 before noise): ambient shots are highlight-preserving,
    /// flash shots are not.
    public var protectHighlights: Bool
    /// Sensor gain relative to base ISO; noise grows with it.
    public var gain: Float
    /// Noise multiplier (0 = noiseless).
    public var noise: Float
    /// Gaussian blur sigma in pixels (lens softness, shake); 0 = none.
    public var blur: Float

    public init(whiteBalance: Float = 6500, exposure: Float? = nil, meteringKey: Float = 0.18,
                protectHighlights: Bool = false, gain: Float = 1, noise: Float = 0, blur: Float = 0) {
        self.whiteBalance = whiteBalance; self.exposure = exposure; self.meteringKey = meteringKey
        self.protectHighlights = protectHighlights; self.gain = gain; self.noise = noise; self.blur = blur
    }

    /// Photon-noise variance per unit level at gain 1, and read-noise σ at gain 1.
    static let shotCoefficient: Float = 1.2e-4
    static let readSigma: Float = 6e-4

    /// Develops a linear radiance image (interleaved RGB) into sRGB-encoded
    /// values in [0, 1]. Returns the image and the exposure used.
    public func develop(_ linear: [Float], width: Int, height: Int, rng: inout SynthRandom) -> (image: [Float], exposure: Float) {
        precondition(linear.count == width * height * 3)
        let wb = ColourSpace.whiteBalanceGains(kelvin: whiteBalance)
        var img = linear
        img.withUnsafeMutableBufferPointer { p in
            for i in 0..<width * height {
                p[3 * i] *= wb.x; p[3 * i + 1] *= wb.y; p[3 * i + 2] *= wb.z
            }
        }
        if blur > 0.05 { Sensor.gaussianBlur(&img, width: width, height: height, sigma: blur) }
        let e = exposure ?? Sensor.autoExposure(img, width: width, height: height, key: meteringKey, protectHighlights: protectHighlights)
        let shotVar = Sensor.clampPositive(noise * noise * gain * SensorSettings.shotCoefficient)
        let read = noise * gain * SensorSettings.readSigma
        img.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count {
                var v = p[i] * e
                if noise > 0 {
                    let sigma = sqrtf(shotVar * max(v, 0) + read * read)
                    v += sigma * rng.fastNormal()
                }
                p[i] = v
            }
        }
        ColourSpace.encodeInPlace(&img) // clamps to [0, 1]: clipping
        return (img, e)
    }
}

enum Sensor {
    @inline(__always) static func clampPositive(_ x: Float) -> Float { max(x, 0) }

    /// Exposure putting the centre-weighted mean luminance at `key` (Gaussian
    /// weight, sigma 0.3 × width); with `protectHighlights`, also at most what
    /// puts the brightest channel value at 0.97.
    static func autoExposure(_ img: [Float], width: Int, height: Int, key: Float, protectHighlights: Bool) -> Float {
        let n = width * height
        var sum: Double = 0, wsum: Double = 0
        let sig = 0.3 * Float(width)
        let wx = (0..<width).map { expf(-powf(Float($0) + 0.5 - Float(width) / 2, 2) / (2 * sig * sig)) }
        let wy = (0..<height).map { expf(-powf(Float($0) + 0.5 - Float(height) / 2, 2) / (2 * sig * sig)) }
        var peak: Float = 0
        for i in 0..<n {
            let l = 0.2126 * img[3 * i] + 0.7152 * img[3 * i + 1] + 0.0722 * img[3 * i + 2]
            let wt = wx[i % width] * wy[i / width]
            sum += Double(l * wt); wsum += Double(wt)
            if protectHighlights { peak = max(peak, max(img[3 * i], max(img[3 * i + 1], img[3 * i + 2]))) }
        }
        let mean = Float(sum / max(wsum, 1e-12))
        guard mean > 0 else { return 1 }
        var e = key / mean
        if protectHighlights, peak > 0 { e = min(e, 0.97 / peak) }
        return e
    }

    /// Separable Gaussian blur of an interleaved RGB image (clamped edges).
    static func gaussianBlur(_ img: inout [Float], width w: Int, height h: Int, sigma: Float) {
        let r = max(1, Int(ceilf(2.5 * sigma)))
        var k = (-r...r).map { expf(-Float($0 * $0) / (2 * sigma * sigma)) }
        let s = k.reduce(0, +)
        k = k.map { $0 / s }
        var tmp = [Float](repeating: 0, count: img.count)
        blurPass(img, into: &tmp, width: w, height: h, kernel: k, vertical: false)
        blurPass(tmp, into: &img, width: w, height: h, kernel: k, vertical: true)
    }

    /// One 1-D pass of `gaussianBlur` along rows or columns; edges are clamped.
    private static func blurPass(_ src: [Float], into dst: inout [Float], width w: Int, height h: Int,
                                 kernel k: [Float], vertical: Bool) {
        let r = k.count / 2
        for y in 0..<h {
            for x in 0..<w {
                var a: Float = 0, b: Float = 0, c: Float = 0
                for t in -r...r {
                    let j = vertical ? (min(max(y + t, 0), h - 1) * w + x) * 3
                                     : (y * w + min(max(x + t, 0), w - 1)) * 3
                    let wt = k[t + r]
                    a += src[j] * wt; b += src[j + 1] * wt; c += src[j + 2] * wt
                }
                let i = (y * w + x) * 3
                dst[i] = a; dst[i + 1] = b; dst[i + 2] = c
            }
        }
    }
}
