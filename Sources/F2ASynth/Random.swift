#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SplitMix64 (the same generator as F2AModel's, copied so this module does not
/// depend on the model). Value type: every render owns its own generator, so
/// rendering is deterministic per seed and shares no mutable state.
public struct SynthRandom: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }

    @inline(__always) public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    @inline(__always) public mutating func unit() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
    /// Uniform in [lo, hi).
    @inline(__always) public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * unit() }
    /// Log-uniform in [lo, hi) (lo, hi > 0).
    public mutating func logUniform(_ lo: Float, _ hi: Float) -> Float { expf(uniform(logf(lo), logf(hi))) }
    /// Integer uniform in lo...hi.
    public mutating func int(_ lo: Int, _ hi: Int) -> Int { lo + Int(next() % UInt64(hi - lo + 1)) }
    /// True with probability p.
    public mutating func chance(_ p: Float) -> Bool { unit() < p }
    /// An element of a non-empty array.
    public mutating func pick<T>(_ items: [T]) -> T { items[int(0, items.count - 1)] }
    /// Index drawn with the given (unnormalised, non-negative) weights.
    public mutating func weighted(_ weights: [Float]) -> Int {
        var r = unit() * weights.reduce(0, +)
        for (i, w) in weights.enumerated() { r -= w; if r < 0 { return i } }
        return weights.count - 1
    }

    /// Approximately standard normal: the sum of four 16-bit uniforms
    /// (Irwin–Hall, variance-normalised). Cheap; good enough for sensor noise.
    @inline(__always) public mutating func fastNormal() -> Float {
        let r = next()
        let s = (r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48)
        // Each uniform has mean 32767.5 and variance 65536²/12.
        return (Float(s) - 131_070) * (1.7320508 / 65_536)
    }

    /// Standard normal (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = max(unit(), 1e-7), u2 = unit()
        return sqrtf(-2 * logf(u1)) * cosf(2 * Float.pi * u2)
    }

    /// A uniformly distributed unit vector.
    public mutating func direction() -> Vec3 {
        let z = uniform(-1, 1), a = uniform(0, 2 * Float.pi)
        let r = sqrtf(max(0, 1 - z * z))
        return Vec3(r * cosf(a), r * sinf(a), z)
    }

    /// A generator for a named sub-stream, so that adding draws to one part
    /// of the generator does not shift the others.
    public func fork(_ stream: UInt64) -> SynthRandom {
        var r = SynthRandom(seed: state ^ (stream &* 0xD1B5_4A32_D192_ED03))
        _ = r.next()
        return r
    }
}

/// Stateless 32-bit hash for per-pixel decorrelation.
@inline(__always) func hash32(_ a: UInt32, _ b: UInt32, _ c: UInt32) -> UInt32 {
    var h = a &* 0x27D4_EB2D ^ b &* 0x1656_67B1 ^ c &* 0x9E37_79B1
    h ^= h >> 15; h = h &* 0x85EB_CA6B
    h ^= h >> 13; h = h &* 0xC2B2_AE35
    h ^= h >> 16
    return h
}
