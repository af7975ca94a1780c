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
///
/// Each step below draws from the one random stream in a fixed order: a scene is defined
/// by its seed, so reordering any draw (or skipping one) changes every later scene.
public enum SceneGenerator {
    /// A random scene for `rng`; textures from `library` with probability
    /// `photoProbability` per surface (procedural otherwise).
    public static func make(_ rng: inout SynthRandom, width: Int, height: Int,
                            library: TextureLibrary?, photoProbability: Float) -> (Scene, SceneSummary) {
        var surfaces = Surfaces(library: library)
        let (room, walls) = makeRoom(&rng, &surfaces, photoProbability: photoProbability)
        let shot = frameShot(&rng, room: room)
        var contents = Contents(primitives: walls)
        let table = shot.hasTable
            ? addTable(&rng, &surfaces, &contents, room: room, shot: shot, photoProbability: photoProbability)
            : nil
        placeObjects(&rng, &surfaces, &contents, room: room, shot: shot, table: table,
                     width: width, height: height, photoProbability: photoProbability)
        let flash = makeFlash(&rng)
        let (ambient, ratio) = makeAmbient(&rng, room: room, cameraPosition: shot.cameraPosition, target: shot.target)

        let scene = Scene(camera: shot.camera, primitives: contents.primitives, materials: surfaces.materials,
                          textures: surfaces.textures, ambient: ambient, flash: flash)
        let summary = SceneSummary(scale: room.scale, room: Vec3(room.width, room.depth, room.height),
                                   cameraPosition: shot.cameraPosition, cameraTarget: shot.target,
                                   horizontalFOV: shot.camera.horizontalFOV, objects: contents.objects,
                                   objectDistances: contents.distances, textureKinds: surfaces.kinds,
                                   photos: surfaces.photos, ambientToFlash: ratio)
        return (scene, summary)
    }

    /// The textures and materials of the scene being built, in the order `Scene` indexes them.
    private struct Surfaces {
        let library: TextureLibrary?
        var textures: [TextureImage] = []
        var kinds: [String] = []
        var photos: [String] = []
        var materials: [Material] = []

        /// A crop of a library photo with probability `photoChance` (no draw without a
        /// library), else a procedural texture of a kind drawn from `choices` by `weights`.
        mutating func addTexture(_ choices: [TextureKind], _ weights: [Float], photoChance: Float,
                                 _ rng: inout SynthRandom) -> Int {
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

        mutating func addMaterial(_ m: Material) -> Int { materials.append(m); return materials.count - 1 }

        func isPhoto(_ texture: Int) -> Bool { kinds[texture] == TextureKind.photo.rawValue }
    }

    /// What stands in the scene, with the summary's names and camera distances.
    private struct Contents {
        var primitives: [Primitive]
        var objects: [String] = []
        var distances: [Float] = []
    }

    /// The room's size in metres; `scale` (1 ≈ a living room, 0.3 ≈ a table-top close-up)
    /// also sizes everything placed in it.
    private struct Room {
        var scale: Float
        var width: Float
        var depth: Float
        var height: Float
    }

    /// Where the camera stands and what it looks at.
    private struct Shot {
        var hasTable: Bool
        /// Height of the support surface under the subject (0: the floor).
        var tableTop: Float
        var cameraPosition: Vec3
        var target: Vec3
        var camera: Camera
    }

    private struct Table {
        var half: Vec3
        var centre: Vec3
    }

    // MARK: Room

    /// The room's size and its six planes (floor, ceiling, four walls).
    private static func makeRoom(_ rng: inout SynthRandom, _ surfaces: inout Surfaces,
                                 photoProbability: Float) -> (Room, [Primitive]) {
        let s = rng.logUniform(0.3, 1.0)
        let W = s * rng.uniform(3, 6), D = s * rng.uniform(3, 7), H = s * rng.uniform(2.3, 3)
        let wallTex = surfaces.addTexture([.solid, .noise, .gradient, .stripes, .checks], [5, 3, 1, 1, 0.5],
                                          photoChance: photoProbability * 0.4, &rng)
        let floorTex = surfaces.addTexture([.wood, .checks, .noise, .stripes, .solid], [3, 2, 2, 1, 1],
                                           photoChance: photoProbability * 0.5, &rng)
        let ceilTex = surfaces.addTexture([.solid, .noise], [3, 1], photoChance: 0, &rng)
        let wallIsPhoto = surfaces.isPhoto(wallTex)
        let wallMat = surfaces.addMaterial(Material(texture: wallTex, tint: .one, tileSize: s * (wallIsPhoto ? rng.uniform(1.5, 3) : rng.uniform(0.5, 2)),
                                                    specular: rng.chance(0.5) ? 0 : rng.uniform(0, 0.03), shininess: rng.uniform(5, 20)))
        let floorGloss = rng.chance(0.4)
        let floorMat = surfaces.addMaterial(Material(texture: floorTex, tint: .one, tileSize: s * rng.uniform(0.4, 1.5),
                                                     specular: floorGloss ? rng.uniform(0.04, 0.2) : rng.uniform(0, 0.02),
                                                     shininess: floorGloss ? rng.uniform(50, 400) : 10))
        let ceilMat = surfaces.addMaterial(Material(texture: ceilTex, tint: Vec3(repeating: rng.uniform(0.7, 1)), tileSize: s * 2,
                                                    specular: 0, shininess: 10))
        let planes: [Primitive] = [
            .plane(point: Vec3(0, 0, 0), normal: Vec3(0, 1, 0), material: floorMat),
            .plane(point: Vec3(0, H, 0), normal: Vec3(0, -1, 0), material: ceilMat),
            .plane(point: Vec3(-W / 2, 0, 0), normal: Vec3(1, 0, 0), material: wallMat),
            .plane(point: Vec3(W / 2, 0, 0), normal: Vec3(-1, 0, 0), material: wallMat),
            .plane(point: Vec3(0, 0, D), normal: Vec3(0, 0, -1), material: wallMat),
            .plane(point: Vec3(0, 0, 0), normal: Vec3(0, 0, 1), material: wallMat),
        ]
        return (Room(scale: s, width: W, depth: D, height: H), planes)
    }

    // MARK: Camera

    /// The support surface for the main subject (the floor, or a table) and a camera
    /// looking at a focus point on it (or at a wall).
    private static func frameShot(_ rng: inout SynthRandom, room: Room) -> Shot {
        let s = room.scale, W = room.width, D = room.depth, H = room.height
        let hasTable = rng.chance(0.45)
        let tableTop: Float = hasTable ? s * rng.uniform(0.45, 0.8) : 0
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
        return Shot(hasTable: hasTable, tableTop: tableTop, cameraPosition: camPos, target: target, camera: camera)
    }

    // MARK: Objects

    /// The table under the camera's target, kept inside the room and in front of the camera.
    private static func addTable(_ rng: inout SynthRandom, _ surfaces: inout Surfaces, _ contents: inout Contents,
                                 room: Room, shot: Shot, photoProbability: Float) -> Table {
        let s = room.scale, W = room.width, D = room.depth
        let tableTop = shot.tableTop, target = shot.target, camPos = shot.cameraPosition
        let tableHalf = Vec3(s * rng.uniform(0.4, 1.0), tableTop / 2, s * rng.uniform(0.3, 0.7))
        let tableCentre = Vec3(clamp(target.x, -W / 2 + tableHalf.x, W / 2 - tableHalf.x), tableTop / 2,
                               clamp(max(target.z, camPos.z + tableHalf.z + 0.1 * s), tableHalf.z, D - tableHalf.z))
        let tex = surfaces.addTexture([.wood, .solid, .noise, .checks], [3, 2, 1, 0.5], photoChance: photoProbability * 0.5, &rng)
        let m = surfaces.addMaterial(Material(texture: tex, tint: .one, tileSize: s * rng.uniform(0.3, 1.2),
                                              specular: rng.uniform(0, 0.15), shininess: rng.uniform(20, 300)))
        contents.primitives.append(Primitive(.box(half: tableHalf), center: tableCentre, material: m))
        contents.objects.append("table")
        contents.distances.append((tableCentre - camPos).length)
        return Table(half: tableHalf, centre: tableCentre)
    }

    /// A box top that later objects may be stacked on.
    private typealias Support = (top: Float, centre: Vec3, half: Float)

    /// Objects placed where the camera sees the table or the floor, clustered around the
    /// image centre (near to far); up to 50 attempts, since some placements are rejected.
    private static func placeObjects(_ rng: inout SynthRandom, _ surfaces: inout Surfaces, _ contents: inout Contents,
                                     room: Room, shot: Shot, table: Table?, width: Int, height: Int,
                                     photoProbability: Float) {
        let count = rng.int(4, 11) + contents.objects.count
        var supports: [Support] = []
        var attempts = 0
        while contents.objects.count < count && attempts < 50 {
            attempts += 1
            let (ground, base) = objectGround(&rng, room: room, shot: shot, table: table, supports: supports,
                                              width: width, height: height)
            let size = room.scale * rng.logUniform(0.05, 0.3)
            let yaw = rng.uniform(0, 2 * .pi)
            let ux = Vec3(cosf(yaw), 0, sinf(yaw))
            let (shape, kind, support) = objectShape(&rng, room: room, ground: ground, base: base, size: size, ux: ux)
            var prim = shape
            // A box counts as a support even if it is rejected below.
            if let support { supports.append(support) }
            // Keep the camera and flash outside every object.
            let dc = (prim.center - shot.cameraPosition).length
            // …and none so close that it fills the view.
            guard dc > prim.boundingRadius + 0.15, prim.boundingRadius < 0.55 * dc else { continue }
            prim.material = objectMaterial(&rng, &surfaces, prim: prim, isPhotoish: kind == "quad",
                                           photoProbability: photoProbability)
            contents.primitives.append(prim)
            contents.objects.append(kind)
            contents.distances.append(dc)
        }
    }

    /// Where an object stands: the point of the floor (or table top) under a random image
    /// point, sometimes pulled towards the camera or stacked on the last box; and the
    /// height of what it stands on.
    private static func objectGround(_ rng: inout SynthRandom, room: Room, shot: Shot, table: Table?,
                                     supports: [Support], width: Int, height: Int) -> (ground: Vec3, base: Float) {
        let s = room.scale, W = room.width, D = room.depth
        let camPos = shot.cameraPosition, tableTop = shot.tableTop
        let px = clamp(0.5 + 0.28 * rng.normal(), 0.02, 0.98) * Float(width)
        let py = clamp(0.6 + 0.25 * rng.normal(), 0.1, 0.98) * Float(height)
        let dir = shot.camera.direction(px: px, py: py, width: width, height: height)
        var ground: Vec3
        var base: Float = 0
        if dir.y < -0.01 {
            var t = -camPos.y / dir.y
            if let table {
                let tt = (tableTop - camPos.y) / dir.y
                let q = camPos + dir * tt
                if abs(q.x - table.centre.x) < table.half.x * 0.9 && abs(q.z - table.centre.z) < table.half.z * 0.9 {
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
        return (ground, base)
    }

    /// A box, sphere, cylinder or quad (picture, leaning board, flat mat) of about `size`
    /// at `ground`, turned by `ux`; material 0 until it is kept. A box is also a support.
    private static func objectShape(_ rng: inout SynthRandom, room: Room, ground: Vec3, base: Float, size: Float,
                                    ux: Vec3) -> (Primitive, String, Support?) {
        let s = room.scale, W = room.width, D = room.depth, H = room.height
        switch rng.weighted([0.35, 0.2, 0.25, 0.2]) {
        case 0:
            let half = Vec3(size * rng.uniform(0.5, 1.5), size * rng.uniform(0.4, 1.5), size * rng.uniform(0.5, 1.5))
            let c = Vec3(ground.x, base + half.y, ground.z)
            return (Primitive(.box(half: half), center: c, u: ux, v: Vec3(0, 1, 0), material: 0), "box",
                    (c.y + half.y, c, min(half.x, half.z)))
        case 1:
            let r = size * rng.uniform(0.5, 1.2)
            return (Primitive(.sphere(radius: r), center: Vec3(ground.x, base + r, ground.z), u: ux, v: Vec3(0, 1, 0), material: 0),
                    "sphere", nil)
        case 2:
            let r = size * rng.uniform(0.3, 0.9), hh = size * rng.uniform(0.5, 2)
            let prim: Primitive
            if rng.chance(0.75) {
                prim = Primitive(.cylinder(radius: r, halfHeight: hh), center: Vec3(ground.x, base + hh, ground.z),
                                 u: ux, v: Vec3(0, 1, 0), material: 0)
            } else { // lying on its side
                prim = Primitive(.cylinder(radius: r, halfHeight: hh), center: Vec3(ground.x, base + r, ground.z),
                                 u: Vec3(0, 1, 0), v: ux, material: 0)
            }
            return (prim, "cylinder", nil)
        default:
            let a = size * rng.uniform(0.8, 2.5), b = size * rng.uniform(0.6, 2)
            let prim: Primitive
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
            return (prim, "quad", nil)
        }
    }

    /// A kept object's material: matte, satin or glossy; quads (pictures, posters) take
    /// library photos more often.
    private static func objectMaterial(_ rng: inout SynthRandom, _ surfaces: inout Surfaces, prim: Primitive,
                                       isPhotoish: Bool, photoProbability: Float) -> Int {
        let tex = surfaces.addTexture([.solid, .noise, .stripes, .checks, .gradient, .wood], [2, 2, 2, 1.5, 1, 1],
                                      photoChance: isPhotoish ? min(1, photoProbability * 1.6) : photoProbability, &rng)
        let gloss = rng.weighted([0.4, 0.35, 0.25])
        let spec: Float = gloss == 0 ? (rng.chance(0.5) ? 0 : rng.uniform(0, 0.02)) : (gloss == 1 ? rng.uniform(0.03, 0.1) : rng.uniform(0.1, 0.5))
        let shin: Float = gloss == 0 ? rng.uniform(5, 20) : (gloss == 1 ? rng.uniform(10, 80) : rng.logUniform(100, 2000))
        let tile = surfaces.isPhoto(tex) ? prim.boundingRadius * rng.uniform(1.5, 2.5)
                                         : prim.boundingRadius * rng.uniform(0.5, 2.5)
        return surfaces.addMaterial(Material(texture: tex, tint: .one, tileSize: tile, specular: spec, shininess: shin))
    }

    // MARK: Lights

    /// A phone (≈1 cm), a pop-up flash above the lens, or a side flash.
    private static func makeFlash(_ rng: inout SynthRandom) -> FlashLight {
        let flashOffset: Vec3
        switch rng.weighted([0.3, 0.4, 0.3]) {
        case 0: flashOffset = Vec3(rng.uniform(-0.02, 0.02), rng.uniform(-0.01, 0.025), 0)
        case 1: flashOffset = Vec3(rng.uniform(-0.01, 0.01), rng.uniform(0.05, 0.12), rng.uniform(0, 0.03))
        default: flashOffset = Vec3((rng.chance(0.5) ? 1 : -1) * rng.uniform(0.06, 0.14), rng.uniform(-0.02, 0.04), 0)
        }
        return FlashLight(offset: flashOffset, intensity: 1, temperature: rng.uniform(5500, 7500),
                          bounce: rng.uniform(0.01, 0.06), beam: rng.uniform(0, 1.5))
    }

    /// Lamps, ceiling fixtures, windows, plus the room's bounce light, scaled so that the
    /// ambient irradiance at the target is `ratio` times the flash's; returns that ratio too.
    private static func makeAmbient(_ rng: inout SynthRandom, room: Room, cameraPosition camPos: Vec3,
                                    target: Vec3) -> (AmbientLighting, ratio: Float) {
        let s = room.scale
        let flashAtTarget = 1 / (target - camPos).lengthSquared
        let ratio = rng.logUniform(0.05, 1.0)
        let envShare = rng.uniform(0.2, 0.6)
        var lights: [AreaLight] = []
        let nLights = 1 + rng.weighted([0.4, 0.45, 0.15])
        var weights: [Float] = []
        for _ in 0..<nLights {
            let light = makeAreaLight(&rng, room: room, target: target)
            let wgt = rng.uniform(0.3, 1)
            weights.append(wgt)
            lights.append(light)
        }
        let wsum = weights.reduce(0, +)
        let direct = ratio * flashAtTarget * (1 - envShare)
        for j in lights.indices { lights[j].intensity *= direct * weights[j] / wsum }
        let meanMired = lights.indices.reduce(Float(0)) { $0 + ColourSpace.mired(lights[$1].temperature) * weights[$1] } / wsum
        let ambient = AmbientLighting(lights: lights, environmentIntensity: ratio * flashAtTarget * envShare,
                                      environmentTemperature: 1e6 / (meanMired + rng.uniform(-30, 30)),
                                      groundRatio: rng.uniform(0.2, 0.6), occlusionRadius: s * rng.uniform(0.25, 0.6))
        return (ambient, ratio)
    }

    /// One lamp, ceiling fixture or window, with unit irradiance at `target` (before the
    /// caller's scaling).
    private static func makeAreaLight(_ rng: inout SynthRandom, room: Room, target: Vec3) -> AreaLight {
        let s = room.scale, W = room.width, D = room.depth, H = room.height
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
        return AreaLight(center: c, radius: r, intensity: (c - target).lengthSquared, temperature: temp)
    }
}
