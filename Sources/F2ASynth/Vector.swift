#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A 3-vector of Float: positions and directions in metres (world space is
/// right-handed, +y up), or linear RGB triples.
public struct Vec3: Sendable, Equatable, Codable, CustomStringConvertible {
    public var x: Float
    public var y: Float
    public var z: Float

    @inline(__always) public init(_ x: Float, _ y: Float, _ z: Float) { self.x = x; self.y = y; self.z = z }
    @inline(__always) public init(repeating v: Float) { x = v; y = v; z = v }

    public static let zero = Vec3(0, 0, 0)
    public static let one = Vec3(1, 1, 1)

    @inline(__always) public static func + (a: Vec3, b: Vec3) -> Vec3 { Vec3(a.x + b.x, a.y + b.y, a.z + b.z) }
    @inline(__always) public static func - (a: Vec3, b: Vec3) -> Vec3 { Vec3(a.x - b.x, a.y - b.y, a.z - b.z) }
    @inline(__always) public static prefix func - (a: Vec3) -> Vec3 { Vec3(-a.x, -a.y, -a.z) }
    @inline(__always) public static func * (a: Vec3, s: Float) -> Vec3 { Vec3(a.x * s, a.y * s, a.z * s) }
    @inline(__always) public static func * (s: Float, a: Vec3) -> Vec3 { Vec3(a.x * s, a.y * s, a.z * s) }
    /// Component-wise product (colours).
    @inline(__always) public static func * (a: Vec3, b: Vec3) -> Vec3 { Vec3(a.x * b.x, a.y * b.y, a.z * b.z) }
    @inline(__always) public static func / (a: Vec3, s: Float) -> Vec3 { let r = 1 / s; return Vec3(a.x * r, a.y * r, a.z * r) }
    @inline(__always) public static func += (a: inout Vec3, b: Vec3) { a = a + b }

    @inline(__always) public func dot(_ b: Vec3) -> Float { x * b.x + y * b.y + z * b.z }
    @inline(__always) public func cross(_ b: Vec3) -> Vec3 {
        Vec3(y * b.z - z * b.y, z * b.x - x * b.z, x * b.y - y * b.x)
    }
    @inline(__always) public var lengthSquared: Float { dot(self) }
    @inline(__always) public var length: Float { sqrtf(dot(self)) }
    @inline(__always) public var normalized: Vec3 { self * (1 / sqrtf(dot(self))) }
    /// Rec. 709 luminance of a linear RGB triple.
    @inline(__always) public var luminance: Float { 0.2126 * x + 0.7152 * y + 0.0722 * z }
    @inline(__always) public var maxComponent: Float { Swift.max(x, Swift.max(y, z)) }

    public var description: String { "(\(x), \(y), \(z))" }
}

/// An orthonormal frame (right, up, forward) built around a forward direction.
@inline(__always) func frame(forward f: Vec3, upHint: Vec3 = Vec3(0, 1, 0)) -> (u: Vec3, v: Vec3, w: Vec3) {
    let w = f.normalized
    var u = upHint.cross(w)
    if u.lengthSquared < 1e-8 { u = Vec3(1, 0, 0).cross(w) }
    u = u.normalized
    return (u, w.cross(u), w)
}

/// Rotates `v` about unit `axis` by `angle` radians (Rodrigues).
@inline(__always) func rotate(_ v: Vec3, about axis: Vec3, by angle: Float) -> Vec3 {
    let c = cosf(angle), s = sinf(angle)
    return v * c + axis.cross(v) * s + axis * (axis.dot(v) * (1 - c))
}

@inline(__always) func clamp(_ x: Float, _ lo: Float, _ hi: Float) -> Float { Swift.min(Swift.max(x, lo), hi) }
@inline(__always) func mix(_ a: Float, _ b: Float, _ t: Float) -> Float { a + (b - a) * t }
@inline(__always) func mix(_ a: Vec3, _ b: Vec3, _ t: Float) -> Vec3 { a + (b - a) * t }
@inline(__always) func smoothstep(_ e0: Float, _ e1: Float, _ x: Float) -> Float {
    let t = clamp((x - e0) / (e1 - e0), 0, 1)
    return t * t * (3 - 2 * t)
}

/// log2 to about ±0.01 (exponent bits plus a quadratic in the mantissa), for mip selection.
@inline(__always) func fastLog2(_ x: Float) -> Float {
    let bits = x.bitPattern
    let e = Float(Int((bits >> 23) & 0xFF) - 127)
    let m = Float(bitPattern: (bits & 0x7F_FFFF) | 0x3F80_0000) // [1, 2)
    return e + (-0.34484843 * m + 2.02466578) * m - 1.67487759
}
