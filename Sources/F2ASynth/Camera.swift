#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pinhole camera. Image x grows to the right, y downwards; the image
/// aspect ratio comes from the render size, the field of view is horizontal.
public struct Camera: Sendable {
    /// Centre of projection, metres.
    public var position: Vec3
    /// Unit viewing direction and the image-plane axes (right, up).
    public private(set) var forward: Vec3
    public private(set) var right: Vec3
    public private(set) var up: Vec3
    /// Horizontal field of view, degrees.
    public var horizontalFOV: Float

    /// Looks from `position` at `target`; `roll` in radians about the view axis.
    public init(position: Vec3, lookAt target: Vec3, horizontalFOV: Float = 65, roll: Float = 0) {
        self.position = position
        self.horizontalFOV = horizontalFOV
        let f = frame(forward: target - position)
        forward = f.w
        right = rotate(-f.u, about: f.w, by: roll)   // frame's u is left-handed for a +y up view
        up = rotate(f.v, about: f.w, by: roll)
    }

    /// tan(hfov / 2).
    @inline(__always) var tanHalf: Float { tanf(horizontalFOV * .pi / 360) }

    /// Angle subtended by one pixel at the image centre (radians) for an image `width` wide.
    @inline(__always) func pixelAngle(width: Int) -> Float { 2 * tanHalf / Float(width) }

    /// Unit direction through image point (px, py) in pixels (pixel centres at +0.5).
    @inline(__always) func direction(px: Float, py: Float, width: Int, height: Int) -> Vec3 {
        let t = tanHalf
        let sx = (2 * px / Float(width) - 1) * t
        let sy = (1 - 2 * py / Float(height)) * t * Float(height) / Float(width)
        return (forward + right * sx + up * sy).normalized
    }

    /// A point on the camera body at `offset` (camera space: x right, y up,
    /// z forward; metres), e.g. the flash.
    public func point(cameraOffset o: Vec3) -> Vec3 { position + right * o.x + up * o.y + forward * o.z }
}
