#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Synthetic flash/ambient pairs (issue 5): the public entry points.
//
//   let library = try TextureLibrary(directory: "data/train/ambient")      // optional, once
//   let options = SynthOptions(width: 256, height: 192, flashMode: .mix, textures: library)
//   try options.validate()
//   let pair = renderPair(seed: 42, options: options)
//   // pair.flash, pair.ambient: [Float], width*height*3, interleaved RGB, row-major,
//   // sRGB-encoded in [0, 1] — the layout of F2AImage.DecodedImage.pixels.
//
// Deterministic: the same (seed, options) gives bit-identical pairs on a given
// machine/build. Thread-safe: renderPair keeps all state local (the texture
// library is immutable), so data-loader threads can call it concurrently.
// Cost: about 50 ms of one core per 256x192 pair (see `f2a synth`), linear in
// the pixel count.
//
// Pipeline, one file per concept:
//   SceneGenerator  random room (floor, walls, ceiling), table, 4–11 objects (boxes,
//                   spheres, cylinders, quads) near to far, textures, lights, camera
//   Textures        procedural albedo (noise, stripes, checks, gradient, wood) and
//                   crops of library photos, mip-mapped
//   Lights          spherical area lights + environment (ambient), point flash
//   Camera          pinhole camera
//   Renderer        ray caster: linear radiance under the flash and under the ambient light
//   Sensor          white balance, blur, exposure, noise, clipping, sRGB encoding
//   ColourSpace     sRGB transfer, black-body colours

/// Invalid synthesis arguments or unreadable texture directories.
public struct SynthError: Error, CustomStringConvertible, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// What the flash image contains.
public enum FlashMode: String, Sendable, Codable, CaseIterable {
    /// The flash light alone, like FAID's `_flash` images (flash photo minus ambient photo).
    case only
    /// The flash photograph as shot: flash light plus some ambient light
    /// (in linear light, the ambient weight drawn per pair).
    case asShot = "as-shot"
    /// Per pair, `only` or `asShot` with equal probability (for training on both).
    case mix
}

/// Options for `renderPair`. Defaults are the training defaults.
public struct SynthOptions: Sendable {
    /// Image size in pixels (both images).
    public var width: Int = 256
    public var height: Int = 192
    public var flashMode: FlashMode = .only
    /// Photographs to crop textures from; nil = procedural textures only.
    public var textures: TextureLibrary? = nil
    /// Probability that a surface gets a photo texture (when `textures` is set).
    public var photoProbability: Float = 0.5
    /// Sensor-noise multiplier (0 = noiseless, 1 = realistic phone noise).
    public var noise: Float = 1
    /// Maximum Gaussian blur sigma in pixels (drawn per image; 0 = sharp).
    public var maxBlur: Float = 0.7
    /// Ray-caster quality knobs.
    public var quality = RenderQuality()

    public init(width: Int = 256, height: Int = 192, flashMode: FlashMode = .only, textures: TextureLibrary? = nil,
                photoProbability: Float = 0.5, noise: Float = 1, maxBlur: Float = 0.7,
                quality: RenderQuality = RenderQuality()) {
        self.width = width; self.height = height; self.flashMode = flashMode; self.textures = textures
        self.photoProbability = photoProbability; self.noise = noise; self.maxBlur = maxBlur; self.quality = quality
    }

    /// Throws a `SynthError` naming the first invalid option.
    public func validate() throws(SynthError) {
        guard (16...8192).contains(width), (16...8192).contains(height) else {
            throw SynthError("image size must be between 16 and 8192 pixels per side, got \(width)x\(height)")
        }
        guard photoProbability.isFinite, (0...1).contains(photoProbability) else {
            throw SynthError("photo texture probability must be in [0, 1], got \(photoProbability)")
        }
        guard noise.isFinite, (0...10).contains(noise) else { throw SynthError("noise must be in [0, 10], got \(noise)") }
        guard maxBlur.isFinite, (0...5).contains(maxBlur) else { throw SynthError("blur must be in [0, 5] pixels, got \(maxBlur)") }
        guard (1...64).contains(quality.shadowSamples), (1...64).contains(quality.occlusionSamples) else {
            throw SynthError("shadow and occlusion samples must be from 1 to 64")
        }
    }
}

/// Everything needed to reproduce or describe a pair (written as JSON by `f2a synth`).
public struct SynthParameters: Sendable, Codable {
    public var seed: UInt64
    public var width: Int
    public var height: Int
    /// The resolved convention of this pair's flash image: "only" or "as-shot".
    public var flashMode: FlashMode
    /// Weight of the ambient radiance added to the flash radiance in the flash
    /// image (0 for flash-only).
    public var ambientInFlash: Float
    /// Random-scene description (nil for hand-built scenes).
    public var scene: SceneSummary?
    public var flash: FlashLight
    public var ambient: AmbientLighting
    /// Camera settings with the exposure actually used filled in.
    public var flashSensor: SensorSettings
    public var ambientSensor: SensorSettings
    /// Fraction of pixels in flash shadow (surfaces the flash cannot see).
    public var flashShadowFraction: Float
    /// Fraction of channel values clipped (≥ 1) in each image.
    public var flashClipped: Float
    public var ambientClipped: Float
}

/// An aligned flash/ambient pair. Images are interleaved RGB, row-major,
/// `width*height*3` sRGB-encoded values in [0, 1] (the layout of
/// `F2AImage.DecodedImage.pixels` and `saveRGB8`).
public struct SynthPair: Sendable {
    /// The flash image (flash-only or as shot, see `parameters.flashMode`).
    public var flash: [Float]
    /// The ambient-light image of the same view.
    public var ambient: [Float]
    public let width: Int
    public let height: Int
    /// Per pixel (`width*height`): 1 where the flash lights the surface,
    /// 0 in flash shadows and on surfaces facing away; fractional on edges.
    public var flashVisibility: [Float]
    public var parameters: SynthParameters
}

/// Renders a random pair, deterministic for (`seed`, `options`). Thread-safe:
/// no shared mutable state, so concurrent calls (e.g. one per data-loader
/// thread) are fine. `options` must be valid (`options.validate()`).
public func renderPair(seed: UInt64, options: SynthOptions) -> SynthPair {
    precondition((try? options.validate()) != nil, "invalid SynthOptions")
    let root = SynthRandom(seed: seed)
    var sceneRNG = root.fork(1)
    var cameraRNG = root.fork(2)
    let (scene, summary) = SceneGenerator.make(&sceneRNG, width: options.width, height: options.height,
                                               library: options.textures, photoProbability: options.photoProbability)
    // Camera settings (see SceneGenerator for the lights they respond to).
    let flashSensor = SensorSettings(whiteBalance: cameraRNG.uniform(5000, 6000), exposure: nil,
                                     meteringKey: cameraRNG.uniform(0.12, 0.3), protectHighlights: false,
                                     gain: cameraRNG.uniform(1, 3), noise: options.noise,
                                     blur: cameraRNG.chance(0.5) ? options.maxBlur * cameraRNG.uniform(0.4, 0.7) : 0)
    let lights = scene.ambient.lights
    let total = lights.reduce(Float(0)) { $0 + $1.intensity }
    let lightMired = lights.reduce(Float(0)) { $0 + ColourSpace.mired($1.temperature) * $1.intensity } / max(total, 1e-12)
    let correction = cameraRNG.uniform(0.2, 0.7) // partial auto white balance: ambient stays warm
    let wbMired = lightMired + (ColourSpace.mired(5500) - lightMired) * correction
    let ambientGain = clamp(cameraRNG.uniform(3, 12) * sqrtf(0.2 / max(summary.ambientToFlash, 1e-3)), 2, 24)
    let ambientSensor = SensorSettings(whiteBalance: 1e6 / wbMired, exposure: nil,
                                       meteringKey: cameraRNG.uniform(0.1, 0.22), protectHighlights: true,
                                       gain: ambientGain, noise: options.noise,
                                       blur: cameraRNG.chance(0.6) ? options.maxBlur * cameraRNG.uniform(0.4, 1) : 0)
    let mode: FlashMode = options.flashMode == .mix ? (cameraRNG.chance(0.5) ? .only : .asShot) : options.flashMode
    let ambientInFlash: Float = mode == .asShot ? cameraRNG.logUniform(0.3, 2) : 0
    var pair = renderPair(scene: scene, flashSensor: flashSensor, ambientSensor: ambientSensor,
                          ambientInFlash: ambientInFlash, width: options.width, height: options.height,
                          quality: options.quality, seed: root.fork(3).state)
    pair.parameters.seed = seed
    pair.parameters.scene = summary
    return pair
}

/// Renders a given scene (e.g. hand-built for a controlled experiment) and
/// develops both images. `ambientInFlash` is the weight of the ambient
/// radiance added to the flash radiance (0 = flash-only). `seed` drives the
/// sensor noise only.
public func renderPair(scene: Scene, flashSensor: SensorSettings, ambientSensor: SensorSettings,
                       ambientInFlash: Float = 0, width: Int, height: Int,
                       quality: RenderQuality = RenderQuality(), seed: UInt64 = 0) -> SynthPair {
    let linear = Renderer(scene: scene, width: width, height: height, quality: quality).render()
    var noiseRNG = SynthRandom(seed: seed)
    var flashLinear = linear.flash
    if ambientInFlash > 0 {
        for i in flashLinear.indices { flashLinear[i] += ambientInFlash * linear.ambient[i] }
    }
    var flashRNG = noiseRNG.fork(1), ambientRNG = noiseRNG.fork(2)
    _ = noiseRNG.next()
    let (f, fe) = flashSensor.develop(flashLinear, width: width, height: height, rng: &flashRNG)
    let (a, ae) = ambientSensor.develop(linear.ambient, width: width, height: height, rng: &ambientRNG)
    var fs = flashSensor, as_ = ambientSensor
    fs.exposure = fe; as_.exposure = ae
    let shadow = linear.flashVisibility.indices.reduce(0) { linear.primitive[$1] >= 0 && linear.flashVisibility[$1] < 0.5 ? $0 + 1 : $0 }
    let params = SynthParameters(
        seed: seed, width: width, height: height, flashMode: ambientInFlash > 0 ? .asShot : .only,
        ambientInFlash: ambientInFlash, scene: nil, flash: scene.flash, ambient: scene.ambient,
        flashSensor: fs, ambientSensor: as_,
        flashShadowFraction: Float(shadow) / Float(width * height),
        flashClipped: Float(f.reduce(0) { $1 >= 1 ? $0 + 1 : $0 }) / Float(f.count),
        ambientClipped: Float(a.reduce(0) { $1 >= 1 ? $0 + 1 : $0 }) / Float(a.count))
    return SynthPair(flash: f, ambient: a, width: width, height: height, flashVisibility: linear.flashVisibility,
                     parameters: params)
}

/// A contact sheet: one row per pair, flash | ambient side by side, with a
/// `gap`-pixel dark-grey border. Returns interleaved RGB in [0, 1].
public func contactSheet(_ pairs: [SynthPair], gap: Int = 4) -> (rgb: [Float], width: Int, height: Int) {
    precondition(!pairs.isEmpty)
    let w = pairs[0].width, h = pairs[0].height
    precondition(pairs.allSatisfy { $0.width == w && $0.height == h })
    let sw = 2 * w + 3 * gap, sh = pairs.count * h + (pairs.count + 1) * gap
    var out = [Float](repeating: 0.15, count: sw * sh * 3)
    for (r, pair) in pairs.enumerated() {
        for (c, img) in [pair.flash, pair.ambient].enumerated() {
            let ox = gap + c * (w + gap), oy = gap + r * (h + gap)
            for y in 0..<h {
                let src = y * w * 3, dst = ((oy + y) * sw + ox) * 3
                for k in 0..<(w * 3) { out[dst + k] = img[src + k] }
            }
        }
    }
    return (out, sw, sh)
}

/// The seed of pair `index` in a set generated from `base` (what `f2a synth
/// --seed base` uses), so a trainer can regenerate any written pair.
public func pairSeed(base: UInt64, index: Int) -> UInt64 {
    var r = SynthRandom(seed: base).fork(UInt64(index) &+ 0x5EED)
    return r.next()
}
