import Foundation
import Testing
@testable import F2ASynth

// Hand-built scenes: camera at the origin looking down -z (right = +x, up = +y).

private func camera(fov: Float = 60) -> Camera {
    Camera(position: .zero, lookAt: Vec3(0, 0, -1), horizontalFOV: fov)
}

/// A checkerboard-with-noise albedo texture (strong high-frequency content).
private func busyTexture() -> TextureImage {
    let n = 64
    var px = [Float](repeating: 0, count: n * n * 3)
    var rng = SynthRandom(seed: 99)
    for y in 0..<n {
        for x in 0..<n {
            let base: Float = ((x / 8) + (y / 8)) % 2 == 0 ? 0.7 : 0.15
            for c in 0..<3 { px[(y * n + x) * 3 + c] = base * rng.uniform(0.7, 1) }
        }
    }
    return TextureImage(size: n, linearRGB: px)
}

private func noiseless(_ wb: Float = 6500, exposure: Float? = nil, protect: Bool = false) -> SensorSettings {
    SensorSettings(whiteBalance: wb, exposure: exposure, meteringKey: 0.18, protectHighlights: protect, gain: 1, noise: 0, blur: 0)
}

private func luminance(_ img: [Float], _ i: Int) -> Float {
    0.2126 * img[3 * i] + 0.7152 * img[3 * i + 1] + 0.0722 * img[3 * i + 2]
}

private func linear(_ img: [Float]) -> [Float] { img.map(ColourSpace.decode) }

// MARK: determinism

@Test(arguments: FlashMode.allCases)
func sameSeedSamePair(mode: FlashMode) {
    let options = SynthOptions(width: 80, height: 60, flashMode: mode)
    let a = renderPair(seed: 1234, options: options)
    let b = renderPair(seed: 1234, options: options)
    #expect(a.flash == b.flash)
    #expect(a.ambient == b.ambient)
    #expect(a.flashVisibility == b.flashVisibility)
    let c = renderPair(seed: 1235, options: options)
    #expect(a.flash != c.flash)
    #expect(a.ambient != c.ambient)
}

@Test func concurrentRendersMatchSequential() async {
    let options = SynthOptions(width: 64, height: 48, flashMode: .mix)
    let seeds: [UInt64] = [3, 4, 5, 6]
    let sequential = seeds.map { renderPair(seed: $0, options: options).flash }
    let concurrent = await withTaskGroup(of: (Int, [Float]).self) { group in
        for (i, s) in seeds.enumerated() { group.addTask { (i, renderPair(seed: s, options: options).flash) } }
        var out = [[Float]](repeating: [], count: seeds.count)
        for await (i, f) in group { out[i] = f }
        return out
    }
    #expect(sequential == concurrent)
}

@Test func pairShapesAndRange() {
    let p = renderPair(seed: 9, options: SynthOptions(width: 64, height: 40))
    #expect(p.flash.count == 64 * 40 * 3 && p.ambient.count == 64 * 40 * 3 && p.flashVisibility.count == 64 * 40)
    #expect(p.flash.allSatisfy { $0 >= 0 && $0 <= 1 })
    #expect(p.ambient.allSatisfy { $0 >= 0 && $0 <= 1 })
    #expect(pairSeed(base: 1, index: 0) != pairSeed(base: 1, index: 1))
    #expect(pairSeed(base: 1, index: 5) == pairSeed(base: 1, index: 5))
}

// MARK: inverse-square falloff

/// A fronto-parallel plane of uniform albedo at distance d, lit by the flash only.
private func planeScene(distance d: Float, albedo: Float = 0.5) -> Scene {
    Scene(camera: camera(),
          primitives: [.plane(point: Vec3(0, 0, -d), normal: Vec3(0, 0, 1), material: 0)],
          materials: [Material(texture: 0)],
          textures: [TextureImage(colour: Vec3(repeating: albedo))],
          ambient: .none, flash: FlashLight(offset: .zero, intensity: 1, temperature: 6500, bounce: 0))
}

@Test(arguments: [Float(0.5), 1, 2, 3])
func flashFallsWithDistanceSquared(d: Float) {
    let w = 32, h = 24, centre = (h / 2) * w + w / 2
    let near = Renderer(scene: planeScene(distance: d), width: w, height: h).render()
    let far = Renderer(scene: planeScene(distance: 2 * d), width: w, height: h).render()
    let ratio = luminance(near.flash, centre) / luminance(far.flash, centre)
    #expect(abs(ratio - 4) < 0.04, "linear radiance ratio \(ratio) at d=\(d)")
    #expect(near.ambient.allSatisfy { $0 == 0 })

    // Same through the camera pipeline: fixed exposure, no noise, sRGB encoded.
    let exposure = 0.8 / (luminance(near.flash, centre) * 1.05)
    let pn = renderPair(scene: planeScene(distance: d), flashSensor: noiseless(exposure: exposure),
                        ambientSensor: noiseless(exposure: 1), width: w, height: h)
    let pf = renderPair(scene: planeScene(distance: 2 * d), flashSensor: noiseless(exposure: exposure),
                        ambientSensor: noiseless(exposure: 1), width: w, height: h)
    let encodedRatio = luminance(linear(pn.flash), centre) / luminance(linear(pf.flash), centre)
    #expect(abs(encodedRatio - 4) < 0.08, "decoded sRGB ratio \(encodedRatio) at d=\(d)")
}

@Test(arguments: [Float(0.5), 1.5])
func flashBeamDarkensCornersOnly(beam: Float) {
    let w = 48, h = 36, centre = (h / 2) * w + w / 2, corner = 1 * w + 1
    var narrow = planeScene(distance: 1)
    narrow.flash.beam = beam
    let flat = Renderer(scene: planeScene(distance: 1), width: w, height: h).render()
    let beamed = Renderer(scene: narrow, width: w, height: h).render()
    #expect(abs(luminance(beamed.flash, centre) / luminance(flat.flash, centre) - 1) < 0.01)
    #expect(luminance(beamed.flash, corner) < 0.95 * luminance(flat.flash, corner))
}

@Test func flashFalloffAcrossOneImage() {
    // Two planes of the same albedo in one image: left half at 1 m, right half at 2 m.
    let scene = Scene(camera: camera(fov: 40),
                      primitives: [Primitive(.quad(halfU: 0.5, halfV: 1), center: Vec3(-0.5, 0, -1), material: 0),
                                   .plane(point: Vec3(0, 0, -2), normal: Vec3(0, 0, 1), material: 0)],
                      materials: [Material(texture: 0)], textures: [TextureImage(colour: Vec3(repeating: 0.4))],
                      ambient: .none, flash: FlashLight(offset: .zero, intensity: 1, bounce: 0))
    let w = 64, h = 32
    let r = Renderer(scene: scene, width: w, height: h).render()
    // Pixels near the centre line, where both planes are nearly head-on.
    let left = (h / 2) * w + w / 2 - 3, right = (h / 2) * w + w / 2 + 3
    #expect(r.primitive[left] == 0 && r.primitive[right] == 1)
    let ratio = luminance(r.flash, left) / luminance(r.flash, right)
    #expect(abs(ratio - 4) < 0.15, "ratio \(ratio)")
}

// MARK: flash shadows

/// A wall at 2 m, a box at 1 m, a side/top flash and an ambient lamp in front-left.
private func shadowScene(flashOffset: Vec3) -> Scene {
    Scene(camera: camera(),
          primitives: [.plane(point: Vec3(0, 0, -2), normal: Vec3(0, 0, 1), material: 0),
                       Primitive(.box(half: Vec3(0.15, 0.15, 0.15)), center: Vec3(0, 0, -1), material: 1)],
          materials: [Material(texture: 0), Material(texture: 1)],
          textures: [TextureImage(colour: Vec3(repeating: 0.6)), TextureImage(colour: Vec3(0.5, 0.3, 0.2))],
          ambient: AmbientLighting(lights: [AreaLight(center: Vec3(-1.5, 0.3, -0.6), radius: 0.4, intensity: 1, temperature: 3000)],
                                   environmentIntensity: 0.05, occlusionRadius: 0.3),
          flash: FlashLight(offset: flashOffset, intensity: 1, bounce: 0.02))
}

@Test(arguments: [Vec3(0.15, 0.15, 0), Vec3(0.12, 0, 0), Vec3(0, 0.12, 0)])
func flashShadowsWhereAmbientIsLit(offset: Vec3) {
    let w = 128, h = 96
    let scene = shadowScene(flashOffset: offset)
    let r = Renderer(scene: scene, width: w, height: h).render()
    var wallLit: [Float] = [], shadowAmbient: [Float] = [], shadowFlash: [Float] = [], litFlash: [Float] = []
    var sx: Float = 0, sy: Float = 0
    for i in 0..<(w * h) where r.primitive[i] == 0 {
        if r.flashVisibility[i] == 0 {
            shadowAmbient.append(luminance(r.ambient, i)); shadowFlash.append(luminance(r.flash, i))
            sx += Float(i % w); sy += Float(i / w)
        } else if r.flashVisibility[i] == 1 {
            wallLit.append(luminance(r.ambient, i)); litFlash.append(luminance(r.flash, i))
        }
    }
    #expect(shadowAmbient.count > 20, "flash-shadow pixels on the wall: \(shadowAmbient.count)")
    guard shadowAmbient.count > 20 else { return }
    let median = wallLit.sorted()[wallLit.count / 2]
    let litInAmbient = shadowAmbient.filter { $0 > 0.5 * median }.count
    #expect(Float(litInAmbient) > 0.8 * Float(shadowAmbient.count), "ambient light reaches the flash shadow")
    // The flash shadow is dark (bounce only) and displaced away from the flash.
    let meanShadowFlash = shadowFlash.reduce(0, +) / Float(shadowFlash.count)
    let meanLitFlash = litFlash.reduce(0, +) / Float(litFlash.count)
    #expect(meanShadowFlash < 0.1 * meanLitFlash)
    sx /= Float(shadowAmbient.count); sy /= Float(shadowAmbient.count)
    if offset.x > 0 { #expect(sx < Float(w) / 2 - 2, "flash to the right: shadow to the left") }
    if offset.y > 0 { #expect(sy > Float(h) / 2 + 2, "flash above: shadow below") }
    // A flash on the optical axis casts no visible shadow.
    let centred = Renderer(scene: shadowScene(flashOffset: .zero), width: w, height: h).render()
    let visible = (0..<(w * h)).filter { centred.primitive[$0] == 0 && centred.flashVisibility[$0] < 0.5 }.count
    #expect(visible == 0)
}

@Test func randomScenesHaveFlashShadows() {
    let options = SynthOptions(width: 96, height: 72)
    var withShadow = 0, wide = 0, wideWithShadow = 0
    for seed in 0..<24 {
        let p = renderPair(seed: UInt64(seed), options: options).parameters
        let shadowed = p.flashShadowFraction > 0.0005
        if shadowed { withShadow += 1 }
        let o = p.flash.offset
        if (o.x * o.x + o.y * o.y).squareRoot() > 0.04 { // pop-up or side flash
            wide += 1
            if shadowed { wideWithShadow += 1 }
        }
    }
    #expect(withShadow >= 15, "\(withShadow) of 24 random pairs have flash shadows")
    #expect(wide >= 10 && wideWithShadow * 4 >= wide * 3, "\(wideWithShadow) of \(wide) pairs with an offset flash have shadows")
}

// MARK: clipping

@Test func highlightsClipOnlyInFlashImage() {
    let scene = Scene(camera: camera(),
                      primitives: [.plane(point: Vec3(0, 0, -3), normal: Vec3(0, 0, 1), material: 0),
                                   Primitive(.sphere(radius: 0.15), center: Vec3(0, -0.05, -0.8), material: 1)],
                      materials: [Material(texture: 0), Material(texture: 1, specular: 0.6, shininess: 400)],
                      textures: [TextureImage(colour: Vec3(repeating: 0.5)), TextureImage(colour: Vec3(0.6, 0.5, 0.4))],
                      ambient: AmbientLighting(lights: [AreaLight(center: Vec3(-1, 1, -0.5), radius: 0.5, intensity: 1, temperature: 3000)],
                                               environmentIntensity: 0.1),
                      flash: FlashLight(offset: Vec3(0, 0.01, 0), intensity: 1, bounce: 0.03))
    let pair = renderPair(scene: scene, flashSensor: noiseless(5500), ambientSensor: noiseless(4000, protect: true),
                          width: 96, height: 72)
    #expect(pair.parameters.flashClipped > 0.001, "flash clipped fraction \(pair.parameters.flashClipped)")
    #expect(pair.parameters.ambientClipped == 0)
    #expect(pair.ambient.max()! < 1)
    #expect(pair.flash.filter { $0 >= 1 }.count > 20)
}

@Test func randomPairsClipMoreInFlash() {
    let options = SynthOptions(width: 96, height: 72, noise: 0)
    var flashClips = 0
    for seed in 0..<12 {
        let p = renderPair(seed: UInt64(seed), options: options).parameters
        #expect(p.ambientClipped == 0, "seed \(seed): ambient clipped \(p.ambientClipped)")
        if p.flashClipped > 0 { flashClips += 1 }
    }
    #expect(flashClips >= 3, "\(flashClips) of 12 flash images clip")
}

// MARK: alignment

@Test(arguments: [Float(1), 2.5])
func flatPlaneDiffersBySmoothGainOnly(distance: Float) {
    let scene = Scene(camera: camera(),
                      primitives: [.plane(point: Vec3(0, 0, -distance), normal: Vec3(0, 0, 1), material: 0)],
                      materials: [Material(texture: 0, tileSize: 0.3)],
                      textures: [busyTexture()],
                      ambient: AmbientLighting(lights: [AreaLight(center: Vec3(-1.5, 1, 0), radius: 0.5, intensity: 2, temperature: 2800)],
                                               environmentIntensity: 0.2, environmentTemperature: 3500),
                      flash: FlashLight(offset: Vec3(0.05, 0.05, 0), intensity: 1, temperature: 6500, bounce: 0.05))
    let w = 96, h = 72
    let lin = Renderer(scene: scene, width: w, height: h).render()
    let maxF = lin.flash.max()!, maxA = lin.ambient.max()!
    let pair = renderPair(scene: scene, flashSensor: noiseless(5500, exposure: 0.9 / maxF),
                          ambientSensor: noiseless(3500, exposure: 0.9 / maxA), width: w, height: h)
    let f = linear(pair.flash), a = linear(pair.ambient)
    // Gain field per channel; compare with its local 5×5 mean.
    var worstGain: Float = 0, worstImage: Float = 0, gmin = Float.infinity, gmax: Float = 0
    for c in 0..<3 {
        var g = [Float](repeating: 0, count: w * h)
        for i in 0..<(w * h) { g[i] = f[3 * i + c] / max(a[3 * i + c], 1e-6) }
        for y in 2..<(h - 2) {
            for x in 2..<(w - 2) {
                var mg: Float = 0, mf: Float = 0
                for dy in -2...2 { for dx in -2...2 { mg += g[(y + dy) * w + x + dx]; mf += f[3 * ((y + dy) * w + x + dx) + c] } }
                mg /= 25; mf /= 25
                let i = y * w + x
                worstGain = max(worstGain, abs(g[i] - mg) / mg)
                worstImage = max(worstImage, abs(f[3 * i + c] - mf) / mf)
                gmin = min(gmin, g[i]); gmax = max(gmax, g[i])
            }
        }
    }
    #expect(worstGain < 0.01, "gain field deviates \(worstGain) from its local mean")
    #expect(worstImage > 0.3, "the texture itself is not smooth (\(worstImage))")
    #expect(gmax / gmin > 1.05, "the gain varies across the image (flash falloff vs ambient)")
}

// MARK: colour

@Test func flashIsCoolerThanAmbient() {
    let options = SynthOptions(width: 64, height: 48, noise: 0)
    var cooler = 0
    for seed in 0..<10 {
        let p = renderPair(seed: UInt64(seed), options: options)
        func blueOverRed(_ img: [Float]) -> Float {
            var r: Float = 0, b: Float = 0
            for i in 0..<(img.count / 3) { r += img[3 * i]; b += img[3 * i + 2] }
            return b / max(r, 1e-6)
        }
        if blueOverRed(p.flash) > blueOverRed(p.ambient) { cooler += 1 }
    }
    #expect(cooler >= 8, "flash cooler than ambient in \(cooler) of 10 pairs")
}

@Test func blackBodyIsNeutralAt6500AndWarmBelow() {
    let d65 = ColourSpace.blackBody(kelvin: 6500)
    #expect(abs(d65.x - d65.z) < 0.1)
    let warm = ColourSpace.blackBody(kelvin: 2700)
    #expect(warm.x > 1.5 * warm.z)
    for v: Float in [0, 0.001, 0.01, 0.2, 0.5, 1] { #expect(abs(ColourSpace.decode(ColourSpace.encode(v)) - v) < 1e-5) }
}

@Test func asShotAddsAmbientToFlash() {
    let scene = shadowScene(flashOffset: Vec3(0.15, 0.15, 0))
    let fixed = noiseless(exposure: 1)
    let only = renderPair(scene: scene, flashSensor: fixed, ambientSensor: fixed, ambientInFlash: 0, width: 64, height: 48)
    let shot = renderPair(scene: scene, flashSensor: fixed, ambientSensor: fixed, ambientInFlash: 1, width: 64, height: 48)
    #expect(only.parameters.flashMode == .only && shot.parameters.flashMode == .asShot)
    // In flash shadows the as-shot image shows the ambient light, the flash-only one (nearly) nothing.
    let shadow = (0..<(64 * 48)).filter { only.flashVisibility[$0] == 0 }
    #expect(!shadow.isEmpty)
    let gain = shadow.map { luminance(linear(shot.flash), $0) - luminance(linear(only.flash), $0) }
    #expect(gain.allSatisfy { $0 > 0 })
}

// MARK: bad arguments

@Test(arguments: [
    SynthOptions(width: 0, height: 192),
    SynthOptions(width: 256, height: -3),
    SynthOptions(width: 100_000, height: 10),
    SynthOptions(photoProbability: 1.5),
    SynthOptions(noise: -1),
    SynthOptions(noise: .nan),
    SynthOptions(maxBlur: 50),
    SynthOptions(quality: RenderQuality(shadowSamples: 0)),
])
func invalidOptionsThrow(options: SynthOptions) {
    #expect(throws: SynthError.self) { try options.validate() }
}

@Test func validOptionsPass() throws {
    try SynthOptions().validate()
    try SynthOptions(width: 16, height: 16, flashMode: .asShot, noise: 0, maxBlur: 0).validate()
}

@Test func textureLibraryErrors() throws {
    #expect(throws: SynthError.self) { try TextureLibrary(directory: "/nonexistent/f2a-synth-textures") }
    let empty = FileManager.default.temporaryDirectory.appendingPathComponent("f2a-synth-empty-\(getpid())")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: empty) }
    try "not an image".write(to: empty.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
    #expect(throws: SynthError.self) { try TextureLibrary(directory: empty.path) }
}

@Test func photoTexturesAreUsed() throws {
    // A library from an in-memory photo (no disk needed).
    var px = [Float](repeating: 0, count: 40 * 30 * 3)
    for i in px.indices { px[i] = Float(i % 7) / 7 * 0.8 }
    let lib = TextureLibrary(photos: [.init(name: "stripes.png", width: 40, height: 30, linear: px)])
    let p = renderPair(seed: 5, options: SynthOptions(width: 64, height: 48, textures: lib, photoProbability: 1))
    let kinds = p.parameters.scene?.textureKinds ?? []
    #expect(kinds.contains("photo"))
    #expect(p.parameters.scene?.photos.allSatisfy { $0 == "stripes.png" } == true)
}

@Test func contactSheetLayout() {
    let o = SynthOptions(width: 32, height: 24)
    let pairs = [renderPair(seed: 1, options: o), renderPair(seed: 2, options: o)]
    let sheet = contactSheet(pairs, gap: 2)
    #expect(sheet.width == 2 * 32 + 3 * 2 && sheet.height == 2 * 24 + 3 * 2)
    #expect(sheet.rgb.count == sheet.width * sheet.height * 3)
    // Top-left pixel of the first ambient tile.
    let i = (2 * sheet.width + 2 + 32 + 2) * 3
    #expect(Array(sheet.rgb[i..<(i + 3)]) == Array(pairs[0].ambient[0..<3]))
}

@Test func parametersEncodeAsJSON() throws {
    let p = renderPair(seed: 11, options: SynthOptions(width: 32, height: 24, flashMode: .mix))
    let data = try JSONEncoder().encode(p.parameters)
    let back = try JSONDecoder().decode(SynthParameters.self, from: data)
    #expect(back.seed == 11)
    #expect(back.flashMode == .only || back.flashMode == .asShot)
    #expect(back.flashSensor.exposure != nil)
}
