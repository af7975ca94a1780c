#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Radiance images of one scene under each illumination, in linear light and
/// scene units (not exposed), plus per-pixel auxiliary data. All images are
/// row-major; RGB ones are interleaved (width*height*3).
public struct LinearRender: Sendable {
    public let width: Int
    public let height: Int
    /// Radiance from the flash alone (direct + bounce).
    public var flash: [Float]
    /// Radiance from the ambient lighting alone.
    public var ambient: [Float]
    /// Distance along the primary ray, metres (`.infinity` where nothing was hit).
    public var depth: [Float]
    /// Index of the primitive seen at each pixel centre (-1: none).
    public var primitive: [Int32]
    /// Fraction of the pixel's samples that see the flash (0 in flash shadows,
    /// 1 when lit; back-facing surfaces count as unlit).
    public var flashVisibility: [Float]
}

/// Quality knobs of the ray caster.
public struct RenderQuality: Sendable, Codable {
    /// Shadow rays per traced pixel per ambient area light. Shadow and AO
    /// rays are traced on a checkerboard, interleaved over 4×4 pixels and
    /// filtered, so the effective count is 8× this.
    public var shadowSamples: Int = 1
    /// Ambient-occlusion rays per pixel (also interleaved and filtered).
    public var occlusionSamples: Int = 1
    /// Supersample (2×2) pixels on geometry and flash-shadow edges.
    public var antialias: Bool = true
    public init(shadowSamples: Int = 1, occlusionSamples: Int = 1, antialias: Bool = true) {
        self.shadowSamples = shadowSamples; self.occlusionSamples = occlusionSamples; self.antialias = antialias
    }
}

/// The ray caster. One primary ray per pixel (four on edges), one hard
/// shadow ray to the flash, a few interleaved shadow rays per area light and
/// ambient-occlusion rays, denoised by a geometry-aware 4×4 filter.
public struct Renderer: Sendable {
    public let scene: Scene
    public let width: Int
    public let height: Int
    public let quality: RenderQuality

    let casters: Occluders
    let everything: Occluders
    let tanHalf: Float
    /// Primary-ray culling: for each 8×8 pixel tile, the primitives whose
    /// bounding spheres meet the tile's viewing cone (planes always).
    static let tileSize = 8
    let tilesX: Int
    let tileStart: [Int32]
    let tileList: [Int32]
    let pixelAngle: Float
    let flashPosition: Vec3
    let flashColour: Vec3
    let beam: Float
    let lightColours: [Vec3]
    let lightCentres: [Vec3]
    let lightRadii: [Float]
    let envColour: Vec3
    /// Unit-disk points (golden-angle spiral), 8 checkerboard phases × samples.
    let diskPoints: [(Float, Float)]
    let diskAO: [(Float, Float)]
    /// The pixel itself, then its 8 neighbours.
    let neighbourOrder: [(Int, Int)] = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, -1), (-1, 1), (1, 1)]
    static let phase: [Int] = [0, 8, 2, 10, 12, 4, 14, 6, 3, 11, 1, 9, 15, 7, 13, 5] // 4×4 Bayer order

    public init(scene: Scene, width: Int, height: Int, quality: RenderQuality = RenderQuality()) {
        precondition(width > 0 && height > 0)
        precondition(scene.ambient.lights.count <= 4, "at most 4 ambient area lights")
        precondition(scene.primitives.allSatisfy { $0.material >= 0 && $0.material < scene.materials.count })
        precondition(scene.materials.allSatisfy { $0.texture >= 0 && $0.texture < scene.textures.count })
        self.scene = scene; self.width = width; self.height = height; self.quality = quality
        casters = Occluders(scene)
        tanHalf = scene.camera.tanHalf
        pixelAngle = scene.camera.pixelAngle(width: width)
        let ts = Renderer.tileSize
        tilesX = (width + ts - 1) / ts
        let tilesY = (height + ts - 1) / ts
        var starts: [Int32] = [0], list: [Int32] = []
        let cam = scene.camera
        for ty in 0..<tilesY {
            for tx in 0..<tilesX {
                let x0 = Float(tx * ts), x1 = Float(min((tx + 1) * ts, width))
                let y0 = Float(ty * ts), y1 = Float(min((ty + 1) * ts, height))
                let dc = cam.direction(px: (x0 + x1) / 2, py: (y0 + y1) / 2, width: width, height: height)
                var cosMax: Float = 1
                for (cx, cy) in [(x0, y0), (x1, y0), (x0, y1), (x1, y1)] {
                    cosMax = min(cosMax, dc.dot(cam.direction(px: cx, py: cy, width: width, height: height)))
                }
                let theta = acosf(clamp(cosMax, -1, 1))
                for (i, p) in scene.primitives.enumerated() {
                    let r = p.boundingRadius
                    let v = p.center - cam.position
                    let dist = v.length
                    var include = !r.isFinite || dist <= r * 1.001
                    if !include {
                        let angle = acosf(clamp(v.dot(dc) / dist, -1, 1))
                        include = angle <= theta + asinf(min(r / dist, 1)) + 1e-3
                    }
                    if include { list.append(Int32(i)) }
                }
                starts.append(Int32(list.count))
            }
        }
        tileStart = starts
        tileList = list
        everything = Occluders(scene, includeAll: true)
        flashPosition = scene.camera.point(cameraOffset: scene.flash.offset)
        flashColour = scene.flash.colour
        beam = max(scene.flash.beam, 0)
        lightColours = scene.ambient.lights.map(\.colour)
        lightCentres = scene.ambient.lights.map(\.center)
        lightRadii = scene.ambient.lights.map(\.radius)
        envColour = ColourSpace.blackBody(kelvin: scene.ambient.environmentTemperature) * scene.ambient.environmentIntensity
        func spiral(_ n: Int) -> [(Float, Float)] {
            (0..<n).map { i in
                let r = sqrtf((Float(i) + 0.5) / Float(n)), a = Float(i) * 2.3999632
                return (r * cosf(a), r * sinf(a))
            }
        }
        diskPoints = spiral(8 * max(1, quality.shadowSamples))
        diskAO = spiral(8 * max(1, quality.occlusionSamples))
    }

    /// Geometry and material at a surface point seen along a primary ray.
    struct Surface {
        var hit: Hit
        var p: Vec3
        var n: Vec3
        var view: Vec3
        var albedo: Vec3
        var specular: Float
        var shininess: Float
    }

    @inline(__always) func surface(px: Float, py: Float) -> Surface? {
        let cam = scene.camera
        let sx = (2 * px / Float(width) - 1) * tanHalf
        let sy = (1 - 2 * py / Float(height)) * tanHalf * Float(height) / Float(width)
        let d = (cam.forward + cam.right * sx + cam.up * sy).normalized
        let tile = min(Int(py), height - 1) / Renderer.tileSize * tilesX + min(Int(px), width - 1) / Renderer.tileSize
        let range = Int(tileStart[tile])..<Int(tileStart[tile + 1])
        guard var hit = tileList.withUnsafeBufferPointer({ everything.trace(origin: cam.position, direction: d,
                                                                            subset: UnsafeBufferPointer(rebasing: $0[range])) })
        else { return nil }
        var n = hit.normal
        let cosV = n.dot(d)
        if cosV > 0 { n = -n }
        hit.normal = n
        let p = cam.position + d * hit.t
        let m = scene.materials[hit.primitive == -1 ? 0 : scene.primitives[hit.primitive].material]
        let footprint = pixelAngle * hit.t / max(abs(cosV), 0.15) / m.tileSize
        let albedo = scene.textures[m.texture].sample(u: hit.su / m.tileSize, v: hit.sv / m.tileSize, footprint: footprint) * m.tint
        return Surface(hit: hit, p: p, n: n, view: -d, albedo: albedo, specular: m.specular, shininess: m.shininess)
    }

    /// Normalised Blinn–Phong lobe value (per unit irradiance).
    @inline(__always) func blinnPhong(_ s: Surface, _ l: Vec3, shininess: Float) -> Float {
        let h = (l + s.view).normalized
        let c = s.n.dot(h)
        // c^s ≈ exp(-s (1 - c)): skip the power where the lobe is negligible.
        guard c > 0, shininess * (1 - c) < 10 else { return 0 }
        return (shininess + 8) / (8 * .pi) * powf(c, shininess)
    }

    /// Direct flash radiance (without shadowing) and whether the flash is in front.
    @inline(__always) func flashTerm(_ s: Surface) -> (Vec3, Float) {
        let l = flashPosition - s.p
        let d2 = l.lengthSquared
        let inv = 1 / sqrtf(d2)
        let L = l * inv
        let c = s.n.dot(L)
        guard c > 0 else { return (.zero, 0) }
        var e = c * inv * inv
        if beam > 0 { // beam profile around the camera axis
            let ca = -L.dot(scene.camera.forward), c2 = ca * ca
            e *= c2 / (c2 + beam * max(1 - c2, 0))
        }
        var brdf = s.albedo * (1 / Float.pi)
        if s.specular > 0.002 { brdf += Vec3(repeating: s.specular * blinnPhong(s, L, shininess: s.shininess)) }
        let vis: Float = casters.blocked(origin: s.p + s.n * 1e-3, direction: L, tMax: d2 * inv - 2e-3) ? 0 : 1
        return (brdf * flashColour * e, vis)
    }

    /// Unshadowed radiance from area light j, and the unit direction to it.
    @inline(__always) func lightTerm(_ s: Surface, _ j: Int) -> (Vec3, Vec3) {
        let r = lightRadii[j]
        let l = lightCentres[j] - s.p
        let d2 = max(l.lengthSquared, r * r)
        let inv = 1 / sqrtf(d2)
        let L = l * inv
        // Sphere light: wrap the cosine a little past the horizon by its angular radius.
        let sinA = min(r * inv, 1)
        let c = (s.n.dot(L) + sinA) * (1 / (1 + sinA))
        guard c > 0 else { return (.zero, L) }
        var brdf = s.albedo * (1 / Float.pi)
        if s.specular > 0.002 {
            let sEff = 2 / (2 / s.shininess + sinA * sinA)
            brdf += Vec3(repeating: s.specular * blinnPhong(s, L, shininess: sEff))
        }
        return (brdf * lightColours[j] * (c * c * inv * inv), L)
    }

    /// Fraction of `count` sample points on light j's disk (facing the unit
    /// direction `L` from s to the light) visible from s.
    @inline(__always) func lightVisibility(_ s: Surface, _ j: Int, L: Vec3, first: Int, stride: Int, count: Int) -> Float {
        let centre = lightCentres[j], radius = lightRadii[j]
        var u = Vec3(0, 1, 0).cross(L)
        let ul = u.lengthSquared
        u = ul > 1e-8 ? u * (1 / sqrtf(ul)) : Vec3(1, 0, 0)
        let v = L.cross(u)
        let origin = s.p + s.n * 1e-3
        var seen = 0
        for k in 0..<count {
            let (a, b) = diskPoints[(first + k * stride) % diskPoints.count]
            let q = centre + u * (a * radius) + v * (b * radius)
            let l = q - origin
            let d2 = l.lengthSquared
            let inv = 1 / sqrtf(d2)
            if !casters.blocked(origin: origin, direction: l * inv, tMax: d2 * inv) { seen += 1 }
        }
        return Float(seen) / Float(count)
    }

    /// Unoccluded fraction of cosine-weighted hemisphere directions within the AO radius.
    @inline(__always) func occlusion(_ s: Surface, first: Int, stride: Int, count: Int) -> Float {
        let radius = scene.ambient.occlusionRadius
        guard radius > 0 else { return 1 }
        let f = frame(forward: s.n)
        let origin = s.p + s.n * 1e-3
        var open: Float = 0
        for k in 0..<count {
            let (a, b) = diskAO[(first + k * stride) % diskAO.count]
            let z = sqrtf(max(0, 1 - a * a - b * b))
            let dir = f.u * a + f.v * b + f.w * z
            if let t = everything.nearest(origin: origin, direction: dir, tMax: radius) {
                let x = t / radius
                open += x * x
            } else {
                open += 1
            }
        }
        return open / Float(count)
    }

    /// Environment irradiance for normal n (upper hemisphere brighter).
    @inline(__always) func environment(_ n: Vec3) -> Vec3 {
        envColour * mix(scene.ambient.groundRatio, 1, 0.5 + 0.5 * n.y)
    }

    /// Renders both illuminations.
    public func render() -> LinearRender {
        let w = width, h = height, np = w * h
        let nl = scene.ambient.lights.count
        let ks = max(1, quality.shadowSamples), ka = max(1, quality.occlusionSamples)
        var flash = [Float](repeating: 0, count: np * 3)
        var ambient = [Float](repeating: 0, count: np * 3)
        var depth = [Float](repeating: .infinity, count: np)
        var prim = [Int32](repeating: -1, count: np)
        var key = [Int32](repeating: -1, count: np)
        var fvis = [Float](repeating: 0, count: np)
        var nor = [Vec3](repeating: .zero, count: np)
        var albedo = [Vec3](repeating: .zero, count: np)
        var lightRad = [Vec3](repeating: .zero, count: np * max(nl, 1))
        var vis = [Float](repeating: 1, count: np * (nl + 1)) // last plane: AO
        var flashIrradianceSum: Double = 0
        var hits = 0

        // Pass 1: primary rays, direct flash, unshadowed ambient terms, raw visibility.
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                guard let s = surface(px: Float(x) + 0.5, py: Float(y) + 0.5) else { continue }
                let ph = Renderer.phase[(y & 3) * 4 + (x & 3)]
                depth[i] = s.hit.t; prim[i] = Int32(s.hit.primitive); key[i] = s.hit.surfaceKey
                nor[i] = s.n; albedo[i] = s.albedo
                let (fr, fv) = flashTerm(s)
                fvis[i] = fv
                flash[3 * i] = fr.x * fv; flash[3 * i + 1] = fr.y * fv; flash[3 * i + 2] = fr.z * fv
                let l = flashPosition - s.p
                flashIrradianceSum += Double(fv * max(0, s.n.dot(l.normalized)) / l.lengthSquared)
                hits += 1
                // Shadow and AO rays on a checkerboard only (the filter fills in the other half).
                let traced = (x ^ y) & 1 == 0
                for j in 0..<nl {
                    let (r, L) = lightTerm(s, j)
                    lightRad[j * np + i] = r
                    if traced { vis[j * np + i] = r.maxComponent > 0 ? lightVisibility(s, j, L: L, first: ph & 7, stride: 8, count: ks) : 1 }
                }
                vis[nl * np + i] = traced ? occlusion(s, first: ph & 7, stride: 8, count: ka) : -1
            }
        }

        // Pass 2: geometry-aware 4×4 filter of the visibilities.
        var filtered = vis
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                let id = key[i]
                guard id >= 0 else { continue }
                var sums = (Float(0), Float(0), Float(0), Float(0), Float(0))
                var cnt: Float = 0
                for yy in max(0, y - 2)...min(h - 1, y + 1) {
                    // Only the traced (checkerboard) pixels of the window.
                    var xx = max(0, x - 2)
                    if (xx ^ yy) & 1 != 0 { xx += 1 }
                    while xx <= min(w - 1, x + 1) {
                        let k = yy * w + xx
                        xx += 2
                        guard key[k] == id else { continue }
                        cnt += 1
                        sums.4 += vis[nl * np + k]
                        if nl > 0 { sums.0 += vis[k] }
                        if nl > 1 { sums.1 += vis[np + k] }
                        if nl > 2 { sums.2 += vis[2 * np + k] }
                        if nl > 3 { sums.3 += vis[3 * np + k] }
                    }
                }
                if cnt == 0 { // no traced pixel of this surface nearby (thin sliver): trace here
                    guard let s = surface(px: Float(x) + 0.5, py: Float(y) + 0.5) else { continue }
                    for j in 0..<nl {
                        let (r, L) = lightTerm(s, j)
                        filtered[j * np + i] = r.maxComponent > 0 ? lightVisibility(s, j, L: L, first: (x + y) & 7, stride: 8, count: ks) : 1
                    }
                    filtered[nl * np + i] = occlusion(s, first: (x + y) & 7, stride: 8, count: ka)
                    continue
                }
                let r = 1 / cnt
                filtered[nl * np + i] = sums.4 * r
                if nl > 0 { filtered[i] = sums.0 * r }
                if nl > 1 { filtered[np + i] = sums.1 * r }
                if nl > 2 { filtered[2 * np + i] = sums.2 * r }
                if nl > 3 { filtered[3 * np + i] = sums.3 * r }
            }
        }

        // Pass 3: compose ambient, add flash bounce.
        let meanFlashE = hits > 0 ? Float(flashIrradianceSum / Double(hits)) : 0
        let bounce = flashColour * (scene.flash.bounce * meanFlashE / Float.pi)
        for i in 0..<np where prim[i] >= 0 {
            let ao = filtered[nl * np + i]
            var a = albedo[i] * environment(nor[i]) * (ao / Float.pi)
            for j in 0..<nl { a += lightRad[j * np + i] * filtered[j * np + i] }
            ambient[3 * i] = a.x; ambient[3 * i + 1] = a.y; ambient[3 * i + 2] = a.z
            let b = albedo[i] * bounce * ao
            flash[3 * i] += b.x; flash[3 * i + 1] += b.y; flash[3 * i + 2] += b.z
        }

        // Pass 4: 2×2 supersampling of edge pixels (geometry or flash shadow).
        if quality.antialias {
            // 1: flash-shadow boundary only (re-shade the flash), 2: geometry edge (re-shade both).
            var edge = [UInt8](repeating: 0, count: np)
            for y in 0..<h {
                for x in 0..<w {
                    let i = y * w + x
                    for dir in 0..<2 {
                        let xx = x + (1 - dir), yy = y + dir
                        guard xx < w, yy < h else { continue }
                        let k = yy * w + xx
                        var e: UInt8 = prim[k] != prim[i] ? 2 : 0
                        if e == 0, prim[i] >= 0, nor[k].dot(nor[i]) < 0.7 || abs(depth[k] - depth[i]) > 0.05 * depth[i] { e = 2 }
                        if e == 0, fvis[k] != fvis[i] { e = 1 }
                        edge[i] = max(edge[i], e); edge[k] = max(edge[k], e)
                    }
                }
            }
            // The centre sample (already shaded) plus three more on a rotated grid.
            let offsets: [(Float, Float)] = [(0.15, 0.35), (0.65, 0.15), (0.85, 0.65), (0.35, 0.85)]
            for y in 0..<h {
                for x in 0..<w where edge[y * w + x] > 0 {
                    let i = y * w + x
                    let geometry = edge[i] == 2
                    var f = Vec3(flash[3 * i], flash[3 * i + 1], flash[3 * i + 2])
                    var a = Vec3(ambient[3 * i], ambient[3 * i + 1], ambient[3 * i + 2])
                    var v = fvis[i]
                    for (k, (ox, oy)) in offsets.enumerated() where k != (x + 2 * y) & 3 {
                        guard let s = surface(px: Float(x) + ox, py: Float(y) + oy) else { continue }
                        let (fr, fv) = flashTerm(s)
                        v += fv
                        guard geometry else { // same surface: only the flash changes
                            f += fr * fv + s.albedo * bounce * filtered[nl * np + i]
                            a += Vec3(ambient[3 * i], ambient[3 * i + 1], ambient[3 * i + 2])
                            continue
                        }
                        // Reuse the filtered visibilities of a neighbouring pixel on the same surface.
                        var src = -1
                        search: for (dx, dy) in neighbourOrder {
                            let xx = x + dx, yy = y + dy
                            guard xx >= 0, xx < w, yy >= 0, yy < h else { continue }
                            let n = yy * w + xx
                            if key[n] == s.hit.surfaceKey { src = n; break search }
                        }
                        let ao = src >= 0 ? filtered[nl * np + src] : occlusion(s, first: k * 4 + (x & 3), stride: 4, count: 1)
                        f += fr * fv + s.albedo * bounce * ao
                        a += s.albedo * environment(s.n) * (ao / Float.pi)
                        for j in 0..<nl {
                            let (r, L) = lightTerm(s, j)
                            guard r.maxComponent > 0 else { continue }
                            a += r * (src >= 0 ? filtered[j * np + src]
                                               : lightVisibility(s, j, L: L, first: k * 4 + (y & 3), stride: 4, count: 1))
                        }
                    }
                    f = f * 0.25; a = a * 0.25 // 1 centre + 3 new samples
                    flash[3 * i] = f.x; flash[3 * i + 1] = f.y; flash[3 * i + 2] = f.z
                    ambient[3 * i] = a.x; ambient[3 * i + 1] = a.y; ambient[3 * i + 2] = a.z
                    fvis[i] = v * 0.25
                }
            }
        }
        return LinearRender(width: w, height: h, flash: flash, ambient: ambient, depth: depth, primitive: prim,
                            flashVisibility: fvis)
    }
}
