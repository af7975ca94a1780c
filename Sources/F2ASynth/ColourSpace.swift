#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// sRGB transfer functions and black-body colours. All rendering happens in
/// linear-light sRGB/Rec. 709 primaries; images are encoded only at the end.
public enum ColourSpace {
    /// sRGB-encoded value of a linear value (clamped to [0, 1]); exact formula.
    @inline(__always) public static func encode(_ linear: Float) -> Float {
        let v = clamp(linear, 0, 1)
        if v >= 1 { return 1 } // exactly: clipped values must read as 1
        return v <= 0.0031308 ? 12.92 * v : min(1.055 * powf(v, 1 / 2.4) - 0.055, 1)
    }

    /// Linear value of an sRGB-encoded value in [0, 1]; exact formula.
    @inline(__always) public static func decode(_ encoded: Float) -> Float {
        let v = clamp(encoded, 0, 1)
        return v <= 0.04045 ? v / 12.92 : powf((v + 0.055) / 1.055, 2.4)
    }

    private static let lutSize = 4096
    /// encode() sampled on a uniform grid of linear values, for fast encoding.
    private static let encodeTable: [Float] = (0...lutSize).map { encode(Float($0) / Float(lutSize)) }

    /// Fast encode (table + linear interpolation, error < 1e-4 above 0.002,
    /// exact formula below) of a whole buffer in place.
    public static func encodeInPlace(_ values: inout [Float]) {
        let n = Float(lutSize)
        encodeTable.withUnsafeBufferPointer { lut in
            values.withUnsafeMutableBufferPointer { buf in
                for i in 0..<buf.count {
                    let v = clamp(buf[i], 0, 1)
                    if v < 0.002 || v >= 1 { buf[i] = encode(v); continue }
                    let f = v * n
                    let k = min(Int(f), lutSize - 1)
                    let t = f - Float(k)
                    buf[i] = lut[k] + (lut[k + 1] - lut[k]) * t
                }
            }
        }
    }

    /// Decodes a whole buffer in place (exact formula).
    public static func decodeInPlace(_ values: inout [Float]) {
        for i in values.indices { values[i] = decode(values[i]) }
    }

    /// Linear-sRGB colour of a black body (Planckian locus, Kang et al. 2002
    /// cubic fit, valid 1667–25000 K) scaled to luminance 1. 6500 K ≈ white;
    /// lower is warmer (orange), higher cooler (blue).
    public static func blackBody(kelvin: Float) -> Vec3 {
        let t = Double(clamp(kelvin, 1667, 25000))
        let x: Double
        if t <= 4000 {
            x = -0.2661239e9 / (t * t * t) - 0.2343589e6 / (t * t) + 0.8776956e3 / t + 0.179910
        } else {
            x = -3.0258469e9 / (t * t * t) + 2.1070379e6 / (t * t) + 0.2226347e3 / t + 0.240390
        }
        let y: Double
        if t <= 2222 {
            y = -1.1063814 * x * x * x - 1.34811020 * x * x + 2.18555832 * x - 0.20219683
        } else if t <= 4000 {
            y = -0.9549476 * x * x * x - 1.37418593 * x * x + 2.09137015 * x - 0.16748867
        } else {
            y = 3.0817580 * x * x * x - 5.87338670 * x * x + 3.75112997 * x - 0.37001483
        }
        let X = x / y, Y = 1.0, Z = (1 - x - y) / y
        let r = 3.2404542 * X - 1.5371385 * Y - 0.4985314 * Z
        let g = -0.9692660 * X + 1.8760108 * Y + 0.0415560 * Z
        let b = 0.0556434 * X - 0.2040259 * Y + 1.0572252 * Z
        let c = Vec3(Float(max(r, 0.001)), Float(max(g, 0.001)), Float(max(b, 0.001)))
        return c / c.luminance
    }

    /// Per-channel gains a camera applies when white-balanced for a light of
    /// `kelvin`: a light of that temperature becomes neutral grey.
    /// Normalised to unit green gain.
    public static func whiteBalanceGains(kelvin: Float) -> Vec3 {
        let w = blackBody(kelvin: kelvin)
        return Vec3(w.y / w.x, 1, w.y / w.z)
    }

    /// Mired (micro reciprocal degrees), the perceptually even scale for
    /// colour temperature.
    @inline(__always) public static func mired(_ kelvin: Float) -> Float { 1e6 / kelvin }
}
