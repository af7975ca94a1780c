#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What the generator put into a random scene (for the parameters JSON).
public struct SceneSummary: Sendable, Codable {
    /// Overall scale: 1 ≈ a living room, 0.3 ≈ a shelf or table-top close-up.
    public var scale: Float
    /// Room width, depth, height, metres.
    public var room: Vec3
    public var cameraPosition: Vec3
    public var cameraTarget: Vec3
    public var horizontalFOV: Float
    /// Object kinds in order ("box", "sphere", "cylinder", "quad").
    public var objects: [String]
    /// Distances from the camera to the object centres, metres.
    public var objectDistances: [Float]
    /// Texture kind of each texture in the scene.
    public var textureKinds: [String]
    /// Library photos cropped for textures.
    public var photos: [String]
    /// Ambient irradiance over flash irradiance at the camera target.
    public var ambientToFlash: Float
}

/// Random rooms with objects, lights and camera, deterministic per seed.
public enum SceneGenerator {
    /// A random scene for `rng`; textures from `library` with probability
    /// `photoProbability` per surface (procedural otherwise).
    public static func make(_ rng: inout SynthRandom, width: Int, height: Int,
                            library: TextureLibrary?, photoProbability: Float) -> (Scene, SceneSummary) {
        var textures: [TextureImage] = []
        var kinds: [String] = []
        var photos: [String] = []
        var materials: [Material] = []

        func addTexture(_ choices: [TextureKind], _ weights: [Float], photoChance: Float) -> Int {
            if let lib = library, rng.chance(photoChance) {
                let (t, name) = TextureFactory.photoCrop(lib, size: 128, &rng)
                textures.append(t); kinds.append(TextureKind.photo.rawValue); photos.append(name)
            } else {
                let kind = choices[rng.weighted(weights)]
                let size = kind == .solid || kind == .gradient ? 32 : 64
                textures.append(TextureFactory.procedural(kind, size: size, &rng))
                kinds.append(kind.rawValue)
            }
            return textures.count - 1
        }
        func addMaterial(_ m: Material) -> Int { materials.append(m); return materials.count - 1 }

        // Room.
        let s = rng.logUniform(0.3, 1.0)
        let W = s * rng.uniform(3, 6), D = s * rng.uniform(3, 7), H = s * rng.uniform(2.3, 3)
        let wallTex = addTexture([.solid, .noise, .gradient, .stripes, .checks], [5, 3, 1, 1, 0.5], photoChance: photoProbability * 0.4)
        let floorTex = addTexture([.wood, .checks, .noise, .stripes, .solid], [3, 2, 2, 1, 1], photoChance: photoProbability * 0.5)
        let ceilTex = addTexture([.solid, .noise], [3, 1], photoChance: 0)
        let wallIsPhoto = kinds[wallTex] == TextureKind.photo.rawValue
        let wallMat = addMaterial(Material(texture: wallTex, tint: .one, tileSize: s * (wallIsPhoto ? rng.uniform(1.5, 3) : rng.uniform(0.5, 2)),
                                           specular: rng.chance(0.5) ? 0 : rng.uniform(0, 0.03), shininess: rng.uniform(5, 20)))
        let floorGloss = rng.chance(0.4)
        let floorMat = addMaterial(Material(texture: floorTex, tint: .one, tileSize: s * rng.uniform(0.4, 1.5),
                                            specular: floorGloss ? rng.uniform(0.04, 0.2) : rng.uniform(0, 0.02),
                                            shininess: floorGloss ? rng.uniform(50, 400) : 10))
        let ceilMat = addMaterial(Material(texture: ceilTex, tint: Vec3(repeating: rng.uniform(0.7, 1)), tileSize: s * 2,
                                           specular: 0, shininess: 10))
        var prims: [Primitive] = [
            .plane(point: Vec3(0, 0, 0), normal: Vec3(0, 1, 0), material: floorMat),
            .plane(point: Vec3(0, H, 0), normal: Vec3(0, -1, 0), material: ceilMat),
            .plane(point: Vec3(-W / 2, 0, 0), normal: Vec3(1, 0, 0), material: wallMat),
            .plane(point: Vec3(W / 2, 0, 0), normal: Vec3(-1, 0, 0), material: wallMat),
            .plane(point: Vec3(0, 0, D), normal: Vec3(0, 0, -1), material: wallMat),
            .plane(point: Vec3(0, 0, 0), normal: Vec3(0, 0, 1), material: wallMat),
        ]

        // Support surface for the main subject: the floor, or a table.
        let hasTable = rng.chance(0.45)
        let tableTop: Float = hasTable ? s * rng.uniform(0.45, 0.8) : 0
        // Camera, looking at a focus point on the support surface (or at a wall).
        let camH = tableTop + s * (hasTable ? rng.uniform(0.2, 0.8) : rng.uniform(0.45, 1.6))
        let camPos = Vec3(rng.uniform(-0.3, 0.3) * W, min(camH, H - 0.1 * s), rng.uniform(0.03, 0.2) * D)
        let level = rng.chance(0.2)
        let yawC = rng.uniform(-0.35, 0.35)
        var focus = s * rng.logUniform(0.6, 2.5)
        let dy = camPos.y - tableTop
        let target: Vec3
        if level {
            target = camPos + Vec3(sinf(yawC), rng.uniform(-0.25, 0.05), cosf(yawC)) * focus
        } else {
            focus = max(focus, dy * 1.15)
            let horiz = sqrtf(focus * focus - dy * dy)
            target = Vec3(camPos.x + sinf(yawC) * horiz, tableTop, camPos.z + cosf(yawC) * horiz)
        }
        let camera = Camera(position: camPos, lookAt: target, horizontalFOV: rng.uniform(50, 70), roll: rng.uniform(-0.05, 0.05))
        var objects: [String] = []
        var distances: [Float] = []
        var tableHalf = Vec3.zero, tableCentre = Vec3.zero
        if hasTable {
            tableHalf = Vec3(s * rng.uniform(0.4, 1.0), tableTop / 2, s * rng.uniform(0.3, 0.7))
            tableCentre = Vec3(clamp(target.x, -W / 2 + tableHalf.x, W / 2 - tableHalf.x), tableTop / 2,
                               clamp(max(target.z, camPos.z + tableHalf.z + 0.1 * s), tableHalf.z, D - tableHalf.z))
            let tex = addTexture([.wood, .solid, .noise, .checks], [3, 2, 1, 0.5], photoChance: photoProbability * 0.5)
            let m = addMaterial(Material(texture: tex, tint: .one, tileSize: s * rng.uniform(0.3, 1.2),
                                         specular: rng.uniform(0, 0.15), shininess: rng.uniform(20, 300)))
            prims.append(Primitive(.box(half: tableHalf), center: tableCentre, material: m))
            objects.append("table")
            distances.append((tableCentre - camPos).length)
        }

        // Objects, placed where the camera sees the table or the floor,
        // clustered around the image centre (near to far).
        let count = rng.int(4, 11) + objects.count
        var supports: [(top: Float, centre: Vec3, half: Float)] = [] // box tops to stack on
        var attempts = 0
        while objects.count < count && attempts < 50 {
            attempts += 1
            let px = clamp(0.5 + 0.28 * rng.normal(), 0.02, 0.98) * Float(width)
            let py = clamp(0.6 + 0.25 * rng.normal(), 0.1, 0.98) * Float(height)
            let dir = camera.direction(px: px, py: py, width: width, height: height)
            var ground: Vec3
            var base: Float = 0
            if dir.y < -0.01 {
                var t = -camPos.y / dir.y
                if hasTable {
                    let tt = (tableTop - camPos.y) / dir.y
                    let q = camPos + dir * tt
                    if abs(q.x - tableCentre.x) < tableHalf.x * 0.9 && abs(q.z - tableCentre.z) < tableHalf.z * 0.9 {
                        t = tt; base = tableTop
                    }
                }
                ground = camPos + dir * t
            } else {
                ground = camPos + dir * rng.uniform(0.5, 0.9) * (D - camPos.z)
            }
            if base == 0, rng.chance(0.2) { // pull towards the camera: near objects
                let f = rng.uniform(0.3, 0.7)
                ground = Vec3(camPos.x + (ground.x - camPos.x) * f, 0, camPos.z + (ground.z - camPos.z) * f)
            }
            ground.y = 0
            ground.x = clamp(ground.x, -W / 2 + 0.05 * s, W / 2 - 0.05 * s)
            ground.z = clamp(ground.z, 0.05 * s, D - 0.05 * s)
            if let sup = supports.last, rng.chance(0.25) { // stack on the last box
                ground = Vec3(sup.centre.x + rng.uniform(-0.5, 0.5) * sup.half, 0, sup.centre.z + rng.uniform(-0.5, 0.5) * sup.half)
                base = sup.top
            }
            let size = s * rng.logUniform(0.05, 0.3)
            let yaw = rng.uniform(0, 2 * .pi)
            let ux = Vec3(cosf(yaw), 0, sinf(yaw))
            let kindIndex = rng.weighted([0.35, 0.2, 0.25, 0.2])
            var prim: Primitive
            var kind: String
            switch kindIndex {
            case 0:
                let half = Vec3(size * rng.uniform(0.5, 1.5), size * rng.uniform(0.4, 1.5), size * rng.uniform(0.5, 1.5))
                let c = Vec3(ground.x, base + half.y, ground.z)
                prim = Primitive(.box(half: half), center: c, u: ux, v: Vec3(0, 1, 0), material: 0)
                kind = "box"
                supports.append((c.y + half.y, c, min(half.x, half.z)))
            case 1:
                let r = size * rng.uniform(0.5, 1.2)
                prim = Primitive(.sphere(radius: r), center: Vec3(ground.x, base + r, ground.z), u: ux, v: Vec3(0, 1, 0), material: 0)
                kind = "sphere"
            case 2:
                let r = size * rng.uniform(0.3, 0.9), hh = size * rng.uniform(0.5, 2)
                if rng.chance(0.75) {
                    prim = Primitive(.cylinder(radius: r, halfHeight: hh), center: Vec3(ground.x, base + hh, ground.z),
                                     u: ux, v: Vec3(0, 1, 0), material: 0)
                } else { // lying on its side
                    prim = Primitive(.cylinder(radius: r, halfHeight: hh), center: Vec3(ground.x, base + r, ground.z),
                                     u: Vec3(0, 1, 0), v: ux, material: 0)
                }
                kind = "cylinder"
            default:
                let a = size * rng.uniform(0.8, 2.5), b = size * rng.uniform(0.6, 2)
                switch rng.weighted([0.45, 0.3, 0.25]) {
                case 0: // picture or poster on a wall (back or side)
                    let side = rng.weighted([3, 1, 1])
                    let y = clamp(rng.uniform(0.3, 0.8) * H, b + 0.01, H - b - 0.01)
                    if side == 0 {
                        prim = Primitive(.quad(halfU: a, halfV: b), center: Vec3(ground.x, y, D - 0.005 * s),
                                         u: Vec3(1, 0, 0), v: Vec3(0, 1, 0), material: 0)
                    } else {
                        let x = side == 1 ? -W / 2 + 0.005 * s : W / 2 - 0.005 * s
                        prim = Primitive(.quad(halfU: a, halfV: b), center: Vec3(x, y, clamp(ground.z, a, D - a)),
                                         u: Vec3(0, 0, 1), v: Vec3(0, 1, 0), material: 0)
                    }
                case 1: // board leaning
                    let lean = rng.uniform(0.1, 0.5)
                    let v = Vec3(sinf(lean) * ux.z, cosf(lean), -sinf(lean) * ux.x)
                    prim = Primitive(.quad(halfU: a, halfV: b), center: Vec3(ground.x, base + b * cosf(lean), ground.z) ,
                                     u: ux, v: v, material: 0)
                default: // lying flat (mat, book, paper)
                    // u and v in the floor plane: the normal is vertical.
                    prim = Primitive(.quad(halfU: a, halfV: b), center: Vec3(ground.x, base + 0.003 * s, ground.z),
                                     u: ux, v: Vec3(ux.z, 0, -ux.x), material: 0)
                }
                kind = "quad"
            }
            // Keep the camera and flash outside every object.
            let dc = (prim.center - camPos).length
            // …and none so close that it fills the view.
            guard dc > prim.boundingRadius + 0.15, prim.boundingRadius < 0.55 * dc else { continue }
            let isPhotoish = kind == "quad"
            let tex = addTexture([.solid, .noise, .stripes, .checks, .gradient, .wood], [2, 2, 2, 1.5, 1, 1],
                                 photoChance: isPhotoish ? min(1, photoProbability * 1.6) : photoProbability)
            let gloss = rng.weighted([0.4, 0.35, 0.25])
            let spec: Float = gloss == 0 ? (rng.chance(0.5) ? 0 : rng.uniform(0, 0.02)) : (gloss == 1 ? rng.uniform(0.03, 0.1) : rng.uniform(0.1, 0.5))
            let shin: Float = gloss == 0 ? rng.uniform(5, 20) : (gloss == 1 ? rng.uniform(10, 80) : rng.logUniform(100, 2000))
            let tile = kinds[tex] == TextureKind.photo.rawValue ? prim.boundingRadius * rng.uniform(1.5, 2.5)
                                                                : prim.boundingRadius * rng.uniform(0.5, 2.5)
            prim.material = addMaterial(Material(texture: tex, tint: .one, tileSize: tile, specular: spec, shininess: shin))
            prims.append(prim)
            objects.append(kind)
            distances.append(dc)
        }

        // Flash: a phone (≈1 cm), a pop-up flash above the lens, or a side flash.
        let flashOffset: Vec3
        switch rng.weighted([0.3, 0.4, 0.3]) {
        case 0: flashOffset = Vec3(rng.uniform(-0.02, 0.02), rng.uniform(-0.01, 0.025), 0)
        case 1: flashOffset = Vec3(rng.uniform(-0.01, 0.01), rng.uniform(0.05, 0.12), rng.uniform(0, 0.03))
        default: flashOffset = Vec3((rng.chance(0.5) ? 1 : -1) * rng.uniform(0.06, 0.14), rng.uniform(-0.02, 0.04), 0)
        }
        let flash = FlashLight(offset: flashOffset, intensity: 1, temperature: rng.uniform(5500, 7500),
                               bounce: rng.uniform(0.01, 0.06), beam: rng.uniform(0, 1.5))

        // Ambient: lamps, ceiling fixtures, windows, plus the room's bounce light.
        let flashAtTarget = 1 / (target - camPos).lengthSquared
        let ratio = rng.logUniform(0.05, 1.0)
        let envShare = rng.uniform(0.2, 0.6)
        var lights: [AreaLight] = []
        let nLights = 1 + rng.weighted([0.4, 0.45, 0.15])
        var weights: [Float] = []
        for _ in 0..<nLights {
            let c: Vec3, r: Float, temp: Float
            switch rng.weighted([0.45, 0.3, 0.25]) {
            case 0: // lamp somewhere in the room
                r = s * rng.uniform(0.1, 0.35)
                // At least a few radii from walls, floor and ceiling (no hot spots).
                let m = 3 * r
                c = Vec3(rng.uniform(-1, 1) * max(W / 2 - m, 0), clamp(rng.uniform(0.3, 0.85) * H, m, max(m, H - m)),
                         clamp(rng.uniform(0.05, 0.95) * D, m, max(m, D - m)))
                temp = rng.uniform(2300, 3500)
            case 1: // ceiling fixture
                r = s * rng.uniform(0.2, 0.5)
                c = Vec3(rng.uniform(-0.4, 0.4) * W, H - r * 2.5, rng.uniform(0.1, 0.9) * D)
                temp = rng.uniform(2700, 4500)
            default: // window: a big source just outside a side wall
                r = s * rng.uniform(0.5, 1.1)
                let side: Float = rng.chance(0.5) ? -1 : 1
                c = Vec3(side * (W / 2 + r * 0.6), rng.uniform(0.4, 0.7) * H, rng.uniform(0.2, 0.9) * D)
                temp = rng.uniform(5000, 7500)
            }
            let wgt = rng.uniform(0.3, 1)
            weights.append(wgt)
            lights.append(AreaLight(center: c, radius: r, intensity: (c - target).lengthSquared, temperature: temp))
        }
        let wsum = weights.reduce(0, +)
        let direct = ratio * flashAtTarget * (1 - envShare)
        for j in lights.indices { lights[j].intensity *= direct * weights[j] / wsum }
        let meanMired = lights.indices.reduce(Float(0)) { $0 + ColourSpace.mired(lights[$1].temperature) * weights[$1] } / wsum
        let ambient = AmbientLighting(lights: lights, environmentIntensity: ratio * flashAtTarget * envShare,
                                      environmentTemperature: 1e6 / (meanMired + rng.uniform(-30, 30)),
                                      groundRatio: rng.uniform(0.2, 0.6), occlusionRadius: s * rng.uniform(0.25, 0.6))

        let scene = Scene(camera: camera, primitives: prims, materials: materials, textures: textures,
                          ambient: ambient, flash: flash)
        let summary = SceneSummary(scale: s, room: Vec3(W, D, H), cameraPosition: camPos, cameraTarget: target,
                                   horizontalFOV: camera.horizontalFOV, objects: objects, objectDistances: distances,
                                   textureKinds: kinds, photos: photos, ambientToFlash: ratio)
        return (scene, summary)
    }
}
