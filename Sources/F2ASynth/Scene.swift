#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Surface reflectance: a textured Lambertian albedo plus a normalised
/// Blinn–Phong specular lobe (white, as for dielectrics).
public struct Material: Sendable {
    /// Index into `Scene.textures`.
    public var texture: Int
    /// Multiplies the texture (linear RGB).
    public var tint: Vec3
    /// Size of one texture tile on the surface, metres.
    public var tileSize: Float
    /// Specular reflectance (0 = matte; ~0.04 plastic/paint; up to ~0.5 glazed, glossy).
    public var specular: Float
    /// Blinn–Phong exponent (10 = broad sheen, 1000 = sharp glint).
    public var shininess: Float

    public init(texture: Int, tint: Vec3 = .one, tileSize: Float = 1, specular: Float = 0, shininess: Float = 50) {
        self.texture = texture; self.tint = tint; self.tileSize = tileSize
        self.specular = specular; self.shininess = shininess
    }
}

/// An analytic primitive in a local orthonormal frame (u, v, w) centred at
/// `center`. Dimensions are in metres.
public struct Primitive: Sendable {
    public enum Shape: Sendable, Equatable {
        /// Infinite plane through `center` with normal `w` (room walls, floor,
        /// ceiling), one-sided: only rays coming from the side `w` points to hit it.
        case plane
        /// Rectangle in the (u, v) plane, normal `w`; half sizes along u and v.
        case quad(halfU: Float, halfV: Float)
        /// Box with half extents along (u, v, w).
        case box(half: Vec3)
        case sphere(radius: Float)
        /// Capped cylinder around the `v` axis.
        case cylinder(radius: Float, halfHeight: Float)
    }

    public var shape: Shape
    public var center: Vec3
    public var u: Vec3
    public var v: Vec3
    public var w: Vec3
    /// Index into `Scene.materials`.
    public var material: Int
    /// Whether it can cast shadows from the lights. The room's planes are not
    /// (lights and camera are inside the convex room), which keeps shadow rays cheap.
    public var castsShadows: Bool

    /// Bounding-sphere radius (infinite for planes).
    public var boundingRadius: Float {
        switch shape {
        case .plane: return .infinity
        case .quad(let a, let b): return sqrtf(a * a + b * b)
        case .box(let h): return h.length
        case .sphere(let r): return r
        case .cylinder(let r, let h): return sqrtf(r * r + h * h)
        }
    }

    /// A primitive with frame (u, v, w); `u` and `v` are orthonormalised.
    public init(_ shape: Shape, center: Vec3, u: Vec3 = Vec3(1, 0, 0), v: Vec3 = Vec3(0, 1, 0),
                material: Int, castsShadows: Bool = true) {
        let uu = u.normalized
        let vv = (v - uu * uu.dot(v)).normalized
        self.shape = shape; self.center = center
        self.u = uu; self.v = vv; self.w = uu.cross(vv)
        self.material = material; self.castsShadows = castsShadows
    }

    /// A plane through `point` facing `normal`.
    public static func plane(point: Vec3, normal: Vec3, material: Int) -> Primitive {
        let f = frame(forward: normal, upHint: abs(normal.y) > 0.9 ? Vec3(0, 0, 1) : Vec3(0, 1, 0))
        return Primitive(.plane, center: point, u: f.u, v: f.v, material: material, castsShadows: false)
    }
}

/// A ray hit: distance, world normal (facing the ray origin), surface
/// coordinates in metres, and what was hit.
struct Hit {
    var t: Float
    var normal: Vec3
    var su: Float
    var sv: Float
    var primitive: Int
    /// Primitive and smooth face (box side, cylinder cap…): equal keys = one smooth surface.
    var surfaceKey: Int32
}

extension Primitive {
    /// Nearest intersection with t in (tMin, tMax), as (t, local normal, su, sv).
    @inline(__always)
    func intersect(origin: Vec3, direction: Vec3, tMin: Float, tMax: Float) -> (t: Float, n: Vec3, su: Float, sv: Float)? {
        let rel = origin - center
        let o = Vec3(rel.dot(u), rel.dot(v), rel.dot(w))
        let d = Vec3(direction.dot(u), direction.dot(v), direction.dot(w))
        switch shape {
        case .plane:
            guard d.z < -1e-9 else { return nil }
            let t = -o.z / d.z
            guard t > tMin, t < tMax else { return nil }
            return (t, Vec3(0, 0, 1), o.x + t * d.x, o.y + t * d.y)
        case .quad(let a, let b):
            guard abs(d.z) > 1e-9 else { return nil }
            let t = -o.z / d.z
            guard t > tMin, t < tMax else { return nil }
            let x = o.x + t * d.x, y = o.y + t * d.y
            guard abs(x) <= a, abs(y) <= b else { return nil }
            return (t, Vec3(0, 0, 1), x + a, y + b)
        case .sphere(let r):
            let bq = o.dot(d), c = o.dot(o) - r * r
            let disc = bq * bq - c
            guard disc > 0 else { return nil }
            let s = sqrtf(disc)
            var t = -bq - s
            if t <= tMin { t = -bq + s }
            guard t > tMin, t < tMax else { return nil }
            let p = (o + d * t) / r
            return (t, p, atan2f(p.x, p.z) * r, asinf(clamp(p.y, -1, 1)) * r)
        case .box(let h):
            // Slabs.
            let ix = 1 / d.x, iy = 1 / d.y, iz = 1 / d.z
            let tx1 = (-h.x - o.x) * ix, tx2 = (h.x - o.x) * ix
            let ty1 = (-h.y - o.y) * iy, ty2 = (h.y - o.y) * iy
            let tz1 = (-h.z - o.z) * iz, tz2 = (h.z - o.z) * iz
            let nx = min(tx1, tx2), fx = max(tx1, tx2)
            let ny = min(ty1, ty2), fy = max(ty1, ty2)
            let nz = min(tz1, tz2), fz = max(tz1, tz2)
            let tNear = max(nx, max(ny, nz)), tFar = min(fx, min(fy, fz))
            guard tNear <= tFar, tFar > tMin else { return nil }
            var t = tNear
            var axis = nx >= ny && nx >= nz ? 0 : (ny >= nz ? 1 : 2)
            if t <= tMin {
                t = tFar
                axis = fx <= fy && fx <= fz ? 0 : (fy <= fz ? 1 : 2)
            }
            guard t < tMax else { return nil }
            let p = o + d * t
            switch axis {
            case 0: return (t, Vec3(p.x > 0 ? 1 : -1, 0, 0), p.z + h.z, p.y + h.y)
            case 1: return (t, Vec3(0, p.y > 0 ? 1 : -1, 0), p.x + h.x, p.z + h.z)
            default: return (t, Vec3(0, 0, p.z > 0 ? 1 : -1), p.x + h.x, p.y + h.y)
            }
        case .cylinder(let r, let hh):
            var best: Float = tMax
            var result: (t: Float, n: Vec3, su: Float, sv: Float)? = nil
            // Side: x² + z² = r², |y| ≤ hh.
            let a = d.x * d.x + d.z * d.z
            if a > 1e-12 {
                let bq = o.x * d.x + o.z * d.z
                let c = o.x * o.x + o.z * o.z - r * r
                let disc = bq * bq - a * c
                if disc > 0 {
                    let s = sqrtf(disc)
                    let t1 = (-bq - s) / a, t2 = (-bq + s) / a
                    var t = t1
                    if !(t1 > tMin && abs(o.y + t1 * d.y) <= hh) { t = t2 }
                    let y = o.y + t * d.y
                    if t > tMin && t < best && abs(y) <= hh {
                        let x = o.x + t * d.x, z = o.z + t * d.z
                        best = t
                        result = (t, Vec3(x / r, 0, z / r), atan2f(x, z) * r, y + hh)
                    }
                }
            }
            // Caps.
            if abs(d.y) > 1e-9 {
                for k in 0..<2 {
                    let cap: Float = k == 0 ? -hh : hh
                    let t = (cap - o.y) / d.y
                    if t > tMin && t < best {
                        let x = o.x + t * d.x, z = o.z + t * d.z
                        if x * x + z * z <= r * r {
                            best = t
                            result = (t, Vec3(0, cap > 0 ? 1 : -1, 0), x + r, z + r)
                        }
                    }
                }
            }
            return result
        }
    }

    /// Distance to the nearest intersection in (tMin, tMax), without surface
    /// attributes (cheap paths for spheres, planes and quads).
    @inline(__always) func distance(origin: Vec3, direction: Vec3, tMin: Float, tMax: Float) -> Float? {
        switch shape {
        case .sphere(let r):
            let oc = origin - center
            let b = oc.dot(direction), c = oc.lengthSquared - r * r
            let disc = b * b - c
            guard disc > 0 else { return nil }
            let sq = sqrtf(disc)
            var t = -b - sq
            if t <= tMin { t = -b + sq }
            return t > tMin && t < tMax ? t : nil
        case .plane:
            let dn = direction.dot(w)
            guard dn < -1e-9 else { return nil }
            let t = (center - origin).dot(w) / dn
            return t > tMin && t < tMax ? t : nil
        case .quad(let a, let b):
            let dn = direction.dot(w)
            guard abs(dn) > 1e-9 else { return nil }
            let t = (center - origin).dot(w) / dn
            guard t > tMin && t < tMax else { return nil }
            let q = origin + direction * t - center
            return abs(q.dot(u)) <= a && abs(q.dot(v)) <= b ? t : nil
        case .box(let h):
            let rel = origin - center
            let o = Vec3(rel.dot(u), rel.dot(v), rel.dot(w))
            let ix = 1 / direction.dot(u), iy = 1 / direction.dot(v), iz = 1 / direction.dot(w)
            let tx1 = (-h.x - o.x) * ix, tx2 = (h.x - o.x) * ix
            let ty1 = (-h.y - o.y) * iy, ty2 = (h.y - o.y) * iy
            let tz1 = (-h.z - o.z) * iz, tz2 = (h.z - o.z) * iz
            let tNear = max(min(tx1, tx2), max(min(ty1, ty2), min(tz1, tz2)))
            let tFar = min(max(tx1, tx2), min(max(ty1, ty2), max(tz1, tz2)))
            guard tNear <= tFar else { return nil }
            let t = tNear > tMin ? tNear : tFar
            return t > tMin && t < tMax ? t : nil
        default:
            return intersect(origin: origin, direction: direction, tMin: tMin, tMax: tMax)?.t
        }
    }

    /// Index of the smooth face a local normal belongs to (0 for planes, quads, spheres).
    @inline(__always) func face(localNormal n: Vec3) -> Int {
        switch shape {
        case .plane, .quad, .sphere: return 0
        case .cylinder: return n.y > 0.5 ? 1 : (n.y < -0.5 ? 2 : 0)
        case .box: return abs(n.x) > 0.5 ? (n.x > 0 ? 0 : 1) : abs(n.y) > 0.5 ? (n.y > 0 ? 2 : 3) : (n.z > 0 ? 4 : 5)
        }
    }

    /// Local → world direction.
    @inline(__always) func toWorld(_ n: Vec3) -> Vec3 { u * n.x + v * n.y + w * n.z }
}

/// Everything the renderer needs: geometry, materials, textures, lights, camera.
/// Build one by hand for controlled experiments, or let `SceneGenerator` make
/// a random room.
public struct Scene: Sendable {
    public var camera: Camera
    public var primitives: [Primitive]
    public var materials: [Material]
    public var textures: [TextureImage]
    public var ambient: AmbientLighting
    public var flash: FlashLight

    public init(camera: Camera, primitives: [Primitive], materials: [Material], textures: [TextureImage],
                ambient: AmbientLighting, flash: FlashLight) {
        self.camera = camera; self.primitives = primitives; self.materials = materials
        self.textures = textures; self.ambient = ambient; self.flash = flash
    }
}

/// Shadow-ray acceleration: the shadow casters with their bounding spheres.
struct Occluders {
    var prims: [Primitive]
    var centres: [Vec3]
    var radii2: [Float]

    init(_ scene: Scene, includeAll: Bool = false) {
        prims = scene.primitives.filter { includeAll || $0.castsShadows }
        centres = prims.map(\.center)
        radii2 = prims.map { $0.boundingRadius * $0.boundingRadius }
    }

    /// Whether anything blocks the segment origin + t·direction, t ∈ (tMin, tMax).
    /// `direction` must be unit length.
    @inline(__always) func blocked(origin: Vec3, direction: Vec3, tMin: Float = 1e-3, tMax: Float) -> Bool {
        for i in 0..<prims.count {
            // Bounding-sphere reject.
            let r2 = radii2[i]
            if r2.isFinite {
                let oc = centres[i] - origin
                let tc = oc.dot(direction)
                let d2 = oc.lengthSquared - tc * tc
                if d2 > r2 { continue }
                if tc < -sqrtf(r2) || tc - sqrtf(r2) > tMax { continue }
            }
            if prims[i].distance(origin: origin, direction: direction, tMin: tMin, tMax: tMax) != nil { return true }
        }
        return false
    }

    /// Nearest hit (world normal, not yet facing the ray) among these primitives.
    @inline(__always) func trace(origin: Vec3, direction: Vec3) -> Hit? {
        nearestHit(origin: origin, direction: direction, among: 0..<prims.count)
    }

    /// `trace` restricted to the primitives at `subset` (indices into `prims`).
    @inline(__always) func trace(origin: Vec3, direction: Vec3, subset: UnsafeBufferPointer<Int32>) -> Hit? {
        nearestHit(origin: origin, direction: direction, among: subset.lazy.map { Int($0) })
    }

    // Generic over the candidate list so the full scan and the grid-cell scan share one loop;
    // @inline(__always) lets each caller get its own specialised copy (no existential cost).
    @inline(__always) private func nearestHit<Candidates: Sequence>(origin: Vec3, direction: Vec3,
                                                                   among candidates: Candidates) -> Hit?
    where Candidates.Element == Int {
        var best = Float.infinity
        var index = -1
        for i in candidates {
            let r2 = radii2[i]
            if r2.isFinite {
                let oc = centres[i] - origin
                let tc = oc.dot(direction)
                if oc.lengthSquared - tc * tc > r2 { continue }
                if tc - sqrtf(r2) > best { continue }
            }
            if let t = prims[i].distance(origin: origin, direction: direction, tMin: 1e-4, tMax: best) {
                best = t; index = i
            }
        }
        guard index >= 0, let h = prims[index].intersect(origin: origin, direction: direction, tMin: 1e-4,
                                                         tMax: best * 1.0001 + 1e-6) else { return nil }
        return Hit(t: h.t, normal: prims[index].toWorld(h.n), su: h.su, sv: h.sv, primitive: index,
                   surfaceKey: Int32(index * 8 + prims[index].face(localNormal: h.n)))
    }

    /// Distance to the nearest blocker within tMax, or nil.
    @inline(__always) func nearest(origin: Vec3, direction: Vec3, tMin: Float = 1e-3, tMax: Float) -> Float? {
        var best = tMax
        var found = false
        for i in 0..<prims.count {
            let r2 = radii2[i]
            if r2.isFinite {
                let oc = centres[i] - origin
                let tc = oc.dot(direction)
                let d2 = oc.lengthSquared - tc * tc
                if d2 > r2 { continue }
                if tc < -sqrtf(r2) || tc - sqrtf(r2) > best { continue }
            }
            if let t = prims[i].distance(origin: origin, direction: direction, tMin: tMin, tMax: best) {
                best = t; found = true
            }
        }
        return found ? best : nil
    }
}
