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
    /// Stratified shadow rays per ambient area light per shading node (one
    /// node per 4×4 pixels; soft shadows are interpolated between nodes).
    public var shadowSamples: Int = 8
    /// Ambient-occlusion rays per shading node.
    public var occlusionSamples: Int = 6
    /// Supersample (2×2) pixels on geometry and flash-shadow edges.
    public var antialias: Bool = true
    public init(shadowSamples: Int = 8, occlusionSamples: Int = 6, antialias: Bool = true) {
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
    let materials: [Material]
    let primMaterial: [Int32]
    /// All textures' mip levels in one array; per texture: level-0 size and
    /// the start of each level (up to 12 levels) in `texOffsets[8*t...]`.
    let texAll: [Float]
    let texSize: [Int32]
    let texLevels: [Int32]
    let texOffsets: [Int32]
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
    /// Strata of the unit disk for light and AO samples.
    let diskStrata: Int
    let aoStrata: Int
    /// The pixel itself, then its 8 neighbours.
    let neighbourOrder: [(Int, Int)] = [(0, 0), (-1, 0), (1, 0), (0, -1), (0, 1), (-1, -1), (1, -1), (-1, 1), (1, 1)]
    /// Spacing of the soft-shadow/AO shading nodes, pixels.
    static let nodeSpacing = 4

    public init(scene: Scene, width: Int, height: Int, quality: RenderQuality = RenderQuality()) {
        precondition(width > 0 && height > 0)
        precondition(scene.ambient.lights.count <= 4, "at most 4 ambient area lights")
        precondition(scene.primitives.allSatisfy { $0.material >= 0 && $0.material < scene.materials.count })
        precondition(scene.materials.allSatisfy { $0.texture >= 0 && $0.texture < scene.textures.count })
        self.scene = scene; self.width = width; self.height = height; self.quality = quality
        casters = Occluders(scene)
        materials = scene.materials
        primMaterial = scene.primitives.map { Int32($0.material) }
        var all: [Float] = [], sizes: [Int32] = [], levels: [Int32] = [], offs: [Int32] = []
        for t in scene.textures {
            let base = all.count
            all.append(contentsOf: t.texels)
            sizes.append(Int32(t.size)); levels.append(Int32(min(t.offsets.count, 12)))
            for l in 0..<12 { offs.append(Int32(base + (l < t.offsets.count ? t.offsets[l] : 0))) }
        }
        texAll = all; texSize = sizes; texLevels = levels; texOffsets = offs
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
        diskStrata = max(1, quality.shadowSamples)
        aoStrata = max(1, quality.occlusionSamples)
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
        let m = materials[Int(primMaterial[hit.primitive])]
        let footprint = pixelAngle * hit.t / max(abs(cosV), 0.15) / m.tileSize
        let albedo = sampleTexture(m.texture, u: hit.su / m.tileSize, v: hit.sv / m.tileSize, footprint: footprint) * m.tint
        return Surface(hit: hit, p: p, n: n, view: -d, albedo: albedo, specular: m.specular, shininess: m.shininess)
    }

    /// Trilinear, wrapping sample of texture `t` at (u, v) tiles; `footprint`
    /// is the pixel size in tiles (mip selection = anti-aliasing).
    @inline(__always) func sampleTexture(_ t: Int, u: Float, v: Float, footprint: Float) -> Vec3 {
        let size = Int(texSize[t]), levels = Int(texLevels[t])
        let lod = clamp(fastLog2(max(footprint * Float(size), 1e-6)), 0, Float(levels - 1))
        let l0 = Int(lod)
        let f = lod - Float(l0)
        return texAll.withUnsafeBufferPointer { p in
            @inline(__always) func bilinear(_ level: Int) -> Vec3 {
                bilinearWrapped(p, offset: Int(texOffsets[t * 12 + level]), size: size >> level, u: u, v: v)
            }
            let a = bilinear(l0)
            if f < 0.01 || l0 + 1 >= levels { return a }
            return mix(a, bilinear(l0 + 1), f)
        }
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

    /// Point `i` of `n` on the unit disk: stratum i of an (n/2)×2 grid on the
    /// unit square, jittered per pixel by `seed`, mapped concentrically
    /// (Shirley–Chiu). Jitter turns the interleaving pattern into fine noise
    /// that the filter averages, instead of 4-pixel staircases in penumbrae.
    @inline(__always) func diskSample(_ i: Int, of n: Int, seed: UInt32) -> (Float, Float) {
        let gx = max(n / 2, 1)
        let h = hash32(UInt32(i), seed, 0x51ED)
        let ju = Float(h & 0xFFFF) * (1 / 65_536.0), jv = Float(h >> 16) * (1 / 65_536.0)
        let a = 2 * (Float(i % gx) + ju) / Float(gx) - 1
        let b = 2 * (Float(i / gx % 2) + jv) / 2 - 1
        if a == 0 && b == 0 { return (0, 0) }
        let r: Float, phi: Float
        if abs(a) > abs(b) { r = a; phi = (.pi / 4) * (b / a) } else { r = b; phi = .pi / 2 - (.pi / 4) * (a / b) }
        return (r * cosf(phi), r * sinf(phi))
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
    @inline(__always) func lightVisibility(_ s: Surface, _ j: Int, L: Vec3, first: Int, stride: Int, count: Int, seed: UInt32) -> Float {
        let centre = lightCentres[j], radius = lightRadii[j]
        var u = Vec3(0, 1, 0).cross(L)
        let ul = u.lengthSquared
        u = ul > 1e-8 ? u * (1 / sqrtf(ul)) : Vec3(1, 0, 0)
        let v = L.cross(u)
        let origin = s.p + s.n * 1e-3
        var seen = 0
        for k in 0..<count {
            let (a, b) = diskSample((first + k * stride) % diskStrata, of: diskStrata, seed: seed &+ UInt32(k))
            let q = centre + u * (a * radius) + v * (b * radius)
            let l = q - origin
            let d2 = l.lengthSquared
            let inv = 1 / sqrtf(d2)
            if !casters.blocked(origin: origin, direction: l * inv, tMax: d2 * inv) { seen += 1 }
        }
        return Float(seen) / Float(count)
    }

    /// Unoccluded fraction of cosine-weighted hemisphere directions within the AO radius.
    @inline(__always) func occlusion(_ s: Surface, first: Int, stride: Int, count: Int, seed: UInt32) -> Float {
        let radius = scene.ambient.occlusionRadius
        guard radius > 0 else { return 1 }
        let f = frame(forward: s.n)
        let origin = s.p + s.n * 1e-3
        var open: Float = 0
        for k in 0..<count {
            let (a, b) = diskSample((first + k * stride) % aoStrata, of: aoStrata, seed: seed &+ UInt32(k))
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
        var pixels = primaryPass()
        let nodes = smoothed(sampledNodes())
        let visibility = interpolatedVisibility(nodes, key: pixels.key)
        let bounce = flashColour * (scene.flash.bounce * pixels.meanFlashIrradiance / Float.pi)
        compose(&pixels, visibility: visibility, bounce: bounce)
        if quality.antialias {
            supersampleEdges(&pixels, edges: edgeMap(pixels), visibility: visibility, bounce: bounce)
        }
        return LinearRender(width: width, height: height, flash: pixels.flash, ambient: pixels.ambient,
                            depth: pixels.depth, primitive: pixels.prim, flashVisibility: pixels.fvis)
    }

    /// Per-pixel buffers of a render, filled by the primary pass and finished by the later ones.
    private struct PixelBuffers {
        /// Radiance, interleaved RGB.
        var flash: [Float]
        var ambient: [Float]
        var depth: [Float]
        var prim: [Int32]
        /// Surface key at the pixel centre (-1: none): which pixels and nodes may share samples.
        var key: [Int32]
        var fvis: [Float]
        var nor: [Vec3]
        var albedo: [Vec3]
        /// Unshadowed radiance from each area light, light-major (`j * np + i`).
        var lightRad: [Vec3]
        /// Mean direct flash irradiance over the pixels that hit something (sets the flash bounce).
        var meanFlashIrradiance: Float
    }

    /// Soft-shadow and AO visibilities on the coarse grid of shading nodes: per node,
    /// one value per area light, then AO.
    private struct NodeGrid {
        var columns: Int
        var rows: Int
        var key: [Int32]
        var vis: [Float]
    }

    // MARK: Pass 1

    /// Primary rays, direct flash, unshadowed ambient terms.
    private func primaryPass() -> PixelBuffers {
        let w = width, h = height, np = w * h
        let nl = scene.ambient.lights.count
        var flash = [Float](repeating: 0, count: np * 3)
        let ambient = [Float](repeating: 0, count: np * 3)
        var depth = [Float](repeating: .infinity, count: np)
        var prim = [Int32](repeating: -1, count: np)
        var key = [Int32](repeating: -1, count: np)
        var fvis = [Float](repeating: 0, count: np)
        var nor = [Vec3](repeating: .zero, count: np)
        var albedo = [Vec3](repeating: .zero, count: np)
        var lightRad = [Vec3](repeating: .zero, count: np * max(nl, 1))
        var flashIrradianceSum: Double = 0
        var hits = 0
        for y in 0..<h {
            for x in 0..<w {
                let i = y * w + x
                guard let s = surface(px: Float(x) + 0.5, py: Float(y) + 0.5) else { continue }
                depth[i] = s.hit.t; prim[i] = Int32(s.hit.primitive); key[i] = s.hit.surfaceKey
                nor[i] = s.n; albedo[i] = s.albedo
                let (fr, fv) = flashTerm(s)
                fvis[i] = fv
                flash[3 * i] = fr.x * fv; flash[3 * i + 1] = fr.y * fv; flash[3 * i + 2] = fr.z * fv
                let l = flashPosition - s.p
                flashIrradianceSum += Double(fv * max(0, s.n.dot(l.normalized)) / l.lengthSquared)
                hits += 1
                for j in 0..<nl { lightRad[j * np + i] = lightTerm(s, j).0 }
            }
        }
        let meanFlashE = hits > 0 ? Float(flashIrradianceSum / Double(hits)) : 0
        return PixelBuffers(flash: flash, ambient: ambient, depth: depth, prim: prim, key: key, fvis: fvis,
                            nor: nor, albedo: albedo, lightRad: lightRad, meanFlashIrradiance: meanFlashE)
    }

    // MARK: Pass 2

    // Soft shadows and AO on a coarse grid (one node per 4×4 pixels, many stratified
    // samples each), interpolated bilinearly over nodes on the same smooth surface;
    // traced per pixel where no node matches.

    /// Traces every node's light and AO samples.
    private func sampledNodes() -> NodeGrid {
        let w = width, h = height
        let nl = scene.ambient.lights.count
        let ks = max(1, quality.shadowSamples), ka = max(1, quality.occlusionSamples)
        let step = Renderer.nodeSpacing
        let gw = (w + step - 1) / step, gh = (h + step - 1) / step, nn = gw * gh
        let planes = nl + 1 // lights, then AO
        var nodeKey = [Int32](repeating: -1, count: nn)
        var nodeVis = [Float](repeating: 1, count: nn * planes)
        for gy in 0..<gh {
            for gx in 0..<gw {
                let n = gy * gw + gx
                let px = min(Float(gx * step) + Float(step) / 2, Float(w) - 0.5)
                let py = min(Float(gy * step) + Float(step) / 2, Float(h) - 0.5)
                guard let s = surface(px: px, py: py) else { continue }
                nodeKey[n] = s.hit.surfaceKey
                let seed = hash32(UInt32(gx), UInt32(gy), 0xA5A5)
                for j in 0..<nl {
                    let (r, L) = lightTerm(s, j)
                    if r.maxComponent > 0 {
                        nodeVis[n * planes + j] = lightVisibility(s, j, L: L, first: 0, stride: 1, count: ks, seed: seed &+ UInt32(j))
                    }
                }
                nodeVis[n * planes + nl] = occlusion(s, first: 0, stride: 1, count: ka, seed: seed &+ 77)
            }
        }
        return NodeGrid(columns: gw, rows: gh, key: nodeKey, vis: nodeVis)
    }

    /// Tent-filters the node values over nodes of the same surface (3×3):
    /// trades a little softness for 4–9× less sampling noise.
    private func smoothed(_ nodes: NodeGrid) -> NodeGrid {
        let nl = scene.ambient.lights.count
        let gw = nodes.columns, gh = nodes.rows
        let planes = nl + 1
        let nodeKey = nodes.key, nodeVis = nodes.vis
        var smoothed = nodeVis
        for gy in 0..<gh {
            for gx in 0..<gw {
                let n = gy * gw + gx
                let id = nodeKey[n]
                guard id >= 0 else { continue }
                var acc = (Float(0), Float(0), Float(0), Float(0), Float(0))
                var wsum: Float = 0
                for yy in max(0, gy - 1)...min(gh - 1, gy + 1) {
                    for xx in max(0, gx - 1)...min(gw - 1, gx + 1) {
                        let m = yy * gw + xx
                        guard nodeKey[m] == id else { continue }
                        let wt: Float = (yy == gy ? 2 : 1) * (xx == gx ? 2 : 1)
                        wsum += wt
                        let o = m * planes
                        acc.4 += wt * nodeVis[o + nl]
                        if nl > 0 { acc.0 += wt * nodeVis[o] }
                        if nl > 1 { acc.1 += wt * nodeVis[o + 1] }
                        if nl > 2 { acc.2 += wt * nodeVis[o + 2] }
                        if nl > 3 { acc.3 += wt * nodeVis[o + 3] }
                    }
                }
                let o = n * planes, r = 1 / wsum
                smoothed[o + nl] = acc.4 * r
                if nl > 0 { smoothed[o] = acc.0 * r }
                if nl > 1 { smoothed[o + 1] = acc.1 * r }
                if nl > 2 { smoothed[o + 2] = acc.2 * r }
                if nl > 3 { smoothed[o + 3] = acc.3 * r }
            }
        }
        return NodeGrid(columns: gw, rows: gh, key: nodeKey, vis: smoothed)
    }

    /// Per-pixel visibilities, plane-major (light j at `j * np + i`, AO at `nl * np + i`):
    /// bilinear over the four surrounding nodes on the pixel's surface, else the nearest
    /// such node one ring further out, else traced at the pixel.
    private func interpolatedVisibility(_ nodes: NodeGrid, key: [Int32]) -> [Float] {
        let w = width, h = height, np = w * h
        let nl = scene.ambient.lights.count
        let ks = max(1, quality.shadowSamples), ka = max(1, quality.occlusionSamples)
        let step = Renderer.nodeSpacing
        let gw = nodes.columns, gh = nodes.rows
        let planes = nl + 1
        let nodeKey = nodes.key, nodeVis = nodes.vis
        var filtered = [Float](repeating: 1, count: np * planes)
        var values = (Float(0), Float(0), Float(0), Float(0), Float(0))
        for y in 0..<h {
            let fy = (Float(y) + 0.5 - Float(step) / 2) / Float(step)
            let y0 = min(max(Int(floorf(fy)), 0), gh - 1), y1 = min(y0 + 1, gh - 1)
            let ty = clamp(fy - Float(y0), 0, 1)
            for x in 0..<w {
                let i = y * w + x
                let id = key[i]
                guard id >= 0 else { continue }
                let fx = (Float(x) + 0.5 - Float(step) / 2) / Float(step)
                let x0 = min(max(Int(floorf(fx)), 0), gw - 1), x1 = min(x0 + 1, gw - 1)
                let tx = clamp(fx - Float(x0), 0, 1)
                values = (0, 0, 0, 0, 0)
                var wsum: Float = 0
                for corner in 0..<4 {
                    let n = (corner < 2 ? y0 : y1) * gw + (corner & 1 == 0 ? x0 : x1)
                    let wt = (corner & 1 == 0 ? 1 - tx : tx) * (corner < 2 ? 1 - ty : ty)
                    guard nodeKey[n] == id, wt > 0 else { continue }
                    wsum += wt
                    let o = n * planes
                    values.4 += wt * nodeVis[o + nl]
                    if nl > 0 { values.0 += wt * nodeVis[o] }
                    if nl > 1 { values.1 += wt * nodeVis[o + 1] }
                    if nl > 2 { values.2 += wt * nodeVis[o + 2] }
                    if nl > 3 { values.3 += wt * nodeVis[o + 3] }
                }
                if wsum < 1e-3 {
                    // Nearest matching node within one more ring, else trace here.
                    var best = -1, bestD = Int.max
                    for ny in max(0, y0 - 1)...min(gh - 1, y1 + 1) {
                        for nx in max(0, x0 - 1)...min(gw - 1, x1 + 1) where nodeKey[ny * gw + nx] == id {
                            let dx = nx * step + step / 2 - x, dy = ny * step + step / 2 - y
                            if dx * dx + dy * dy < bestD { bestD = dx * dx + dy * dy; best = ny * gw + nx }
                        }
                    }
                    if best >= 0 {
                        for p in 0..<planes { filtered[p * np + i] = nodeVis[best * planes + p] }
                    } else if let s = surface(px: Float(x) + 0.5, py: Float(y) + 0.5) {
                        let seed = UInt32(truncatingIfNeeded: i)
                        for j in 0..<nl {
                            let (r, L) = lightTerm(s, j)
                            if r.maxComponent > 0 { filtered[j * np + i] = lightVisibility(s, j, L: L, first: 0, stride: 1, count: ks, seed: seed &+ UInt32(j)) }
                        }
                        filtered[nl * np + i] = occlusion(s, first: 0, stride: 1, count: ka, seed: seed &+ 77)
                    }
                    continue
                }
                let r = 1 / wsum
                filtered[nl * np + i] = values.4 * r
                if nl > 0 { filtered[i] = values.0 * r }
                if nl > 1 { filtered[np + i] = values.1 * r }
                if nl > 2 { filtered[2 * np + i] = values.2 * r }
                if nl > 3 { filtered[3 * np + i] = values.3 * r }
            }
        }
        return filtered
    }

    // MARK: Pass 3

    /// Composes the ambient image and adds the flash bounce.
    private func compose(_ pixels: inout PixelBuffers, visibility filtered: [Float], bounce: Vec3) {
        let np = width * height
        let nl = scene.ambient.lights.count
        for i in 0..<np where pixels.prim[i] >= 0 {
            let ao = filtered[nl * np + i]
            var a = pixels.albedo[i] * environment(pixels.nor[i]) * (ao / Float.pi)
            for j in 0..<nl { a += pixels.lightRad[j * np + i] * filtered[j * np + i] }
            pixels.ambient[3 * i] = a.x; pixels.ambient[3 * i + 1] = a.y; pixels.ambient[3 * i + 2] = a.z
            let b = pixels.albedo[i] * bounce * ao
            pixels.flash[3 * i] += b.x; pixels.flash[3 * i + 1] += b.y; pixels.flash[3 * i + 2] += b.z
        }
    }

    // MARK: Pass 4

    // 2×2 supersampling of edge pixels (geometry or flash shadow).

    /// Per pixel: 0 inside a surface, 1 on a flash-shadow boundary only (re-shade the
    /// flash), 2 on a geometry edge (re-shade both).
    private func edgeMap(_ pixels: PixelBuffers) -> [UInt8] {
        let w = width, h = height, np = w * h
        let prim = pixels.prim, nor = pixels.nor, depth = pixels.depth, fvis = pixels.fvis
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
        return edge
    }

    /// Re-shades the edge pixels with three more samples each.
    private func supersampleEdges(_ pixels: inout PixelBuffers, edges edge: [UInt8], visibility filtered: [Float], bounce: Vec3) {
        let w = width, h = height, np = w * h
        let nl = scene.ambient.lights.count
        let ks = max(1, quality.shadowSamples), ka = max(1, quality.occlusionSamples)
        let key = pixels.key
        // The centre sample (already shaded) plus three more on a rotated grid.
        let offsets: [(Float, Float)] = [(0.15, 0.35), (0.65, 0.15), (0.85, 0.65), (0.35, 0.85)]
        for y in 0..<h {
            for x in 0..<w where edge[y * w + x] > 0 {
                let i = y * w + x
                let geometry = edge[i] == 2
                var f = Vec3(pixels.flash[3 * i], pixels.flash[3 * i + 1], pixels.flash[3 * i + 2])
                var a = Vec3(pixels.ambient[3 * i], pixels.ambient[3 * i + 1], pixels.ambient[3 * i + 2])
                var v = pixels.fvis[i]
                for (k, (ox, oy)) in offsets.enumerated() where k != (x + 2 * y) & 3 {
                    guard let s = surface(px: Float(x) + ox, py: Float(y) + oy) else { continue }
                    let (fr, fv) = flashTerm(s)
                    v += fv
                    guard geometry else { // same surface: only the flash changes
                        f += fr * fv + s.albedo * bounce * filtered[nl * np + i]
                        a += Vec3(pixels.ambient[3 * i], pixels.ambient[3 * i + 1], pixels.ambient[3 * i + 2])
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
                    let ao = src >= 0 ? filtered[nl * np + src] : occlusion(s, first: 0, stride: 1, count: ka, seed: UInt32(truncatingIfNeeded: i))
                    f += fr * fv + s.albedo * bounce * ao
                    a += s.albedo * environment(s.n) * (ao / Float.pi)
                    for j in 0..<nl {
                        let (r, L) = lightTerm(s, j)
                        guard r.maxComponent > 0 else { continue }
                        a += r * (src >= 0 ? filtered[j * np + src]
                                           : lightVisibility(s, j, L: L, first: 0, stride: 1, count: ks, seed: UInt32(truncatingIfNeeded: i)))
                    }
                }
                f = f * 0.25; a = a * 0.25 // 1 centre + 3 new samples
                pixels.flash[3 * i] = f.x; pixels.flash[3 * i + 1] = f.y; pixels.flash[3 * i + 2] = f.z
                pixels.ambient[3 * i] = a.x; pixels.ambient[3 * i + 1] = a.y; pixels.ambient[3 * i + 2] = a.z
                pixels.fvis[i] = v * 0.25
            }
        }
    }
}
