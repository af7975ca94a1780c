#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import F2AImage
import Foundation

/// A square, power-of-two, tileable albedo texture in linear RGB with a full
/// mip pyramid, sampled trilinearly with wrap-around (one tile = [0, 1)²).
public struct TextureImage: Sendable {
    /// Side of level 0 in texels (a power of two).
    public let size: Int
    /// All levels, level k being (size >> k)² texels of interleaved RGB.
    let texels: [Float]
    let offsets: [Int]

    /// `linearRGB`: size*size*3 values, interleaved, row-major, linear albedo in [0, 1].
    public init(size: Int, linearRGB: [Float]) {
        precondition(size > 0 && size & (size - 1) == 0, "texture size must be a power of two")
        precondition(linearRGB.count == size * size * 3)
        var all = linearRGB
        var offsets = [0]
        var s = size, prev = 0
        while s > 1 {
            let h = s / 2
            let start = all.count
            offsets.append(start)
            all.reserveCapacity(start + h * h * 3)
            for y in 0..<h {
                for x in 0..<h {
                    for c in 0..<3 {
                        let a = all[prev + ((2 * y) * s + 2 * x) * 3 + c]
                        let b = all[prev + ((2 * y) * s + 2 * x + 1) * 3 + c]
                        let d = all[prev + ((2 * y + 1) * s + 2 * x) * 3 + c]
                        let e = all[prev + ((2 * y + 1) * s + 2 * x + 1) * 3 + c]
                        all.append(0.25 * (a + b + d + e))
                    }
                }
            }
            prev = start
            s = h
        }
        self.size = size
        self.texels = all
        self.offsets = offsets
    }

    /// A single-colour texture.
    public init(colour: Vec3) {
        self.init(size: 1, linearRGB: [colour.x, colour.y, colour.z])
    }

    /// Mean albedo (the 1×1 level).
    public var mean: Vec3 {
        let o = offsets[offsets.count - 1]
        return Vec3(texels[o], texels[o + 1], texels[o + 2])
    }

    /// Trilinear sample at (u, v) in tiles; `footprint` is the pixel's size in
    /// tiles (selects the mip level, which is the anti-aliasing).
    @inline(__always) func sample(u: Float, v: Float, footprint: Float) -> Vec3 {
        let levels = offsets.count
        let lod = clamp(log2f(max(footprint * Float(size), 1e-6)), 0, Float(levels - 1))
        let l0 = Int(lod)
        let t = lod - Float(l0)
        let a = bilinear(level: l0, u: u, v: v)
        if t < 0.01 || l0 + 1 >= levels { return a }
        return mix(a, bilinear(level: l0 + 1, u: u, v: v), t)
    }

    @inline(__always) private func bilinear(level: Int, u: Float, v: Float) -> Vec3 {
        texels.withUnsafeBufferPointer { bilinearWrapped($0, offset: offsets[level], size: size >> level, u: u, v: v) }
    }
}

/// Bilinear sample of one square RGB mip level that repeats every tile: `size`² texels (a power of
/// two, so wrapping is a mask) stored row-major from `offset`; (u, v) in tiles.
@inline(__always) func bilinearWrapped(_ p: UnsafeBufferPointer<Float>, offset o: Int, size s: Int,
                                       u: Float, v: Float) -> Vec3 {
    let mask = s - 1
    let fx = (u - floorf(u)) * Float(s) - 0.5, fy = (v - floorf(v)) * Float(s) - 0.5
    let x0f = floorf(fx), y0f = floorf(fy)
    let tx = fx - x0f, ty = fy - y0f
    let x0 = Int(x0f) & mask, y0 = Int(y0f) & mask
    let x1 = (x0 + 1) & mask, y1 = (y0 + 1) & mask
    let i00 = o + (y0 * s + x0) * 3, i10 = o + (y0 * s + x1) * 3
    let i01 = o + (y1 * s + x0) * 3, i11 = o + (y1 * s + x1) * 3
    let w00 = (1 - tx) * (1 - ty), w10 = tx * (1 - ty), w01 = (1 - tx) * ty, w11 = tx * ty
    return Vec3(p[i00] * w00 + p[i10] * w10 + p[i01] * w01 + p[i11] * w11,
                p[i00 + 1] * w00 + p[i10 + 1] * w10 + p[i01 + 1] * w01 + p[i11 + 1] * w11,
                p[i00 + 2] * w00 + p[i10 + 2] * w10 + p[i01 + 2] * w01 + p[i11 + 2] * w11)
}

/// Photographs to crop albedo textures from (e.g. the ambient images of the
/// training split), decoded once, downscaled and stored in linear light.
/// Immutable after loading, so one library can be shared by concurrent renders.
public final class TextureLibrary: Sendable {
    public struct Photo: Sendable {
        public let name: String
        public let width: Int
        public let height: Int
        /// width*height*3 linear RGB values, interleaved, row-major.
        public let linear: [Float]
        public init(name: String, width: Int, height: Int, linear: [Float]) {
            precondition(linear.count == width * height * 3 && width > 0 && height > 0)
            self.name = name; self.width = width; self.height = height; self.linear = linear
        }
    }

    public let photos: [Photo]
    /// The photos at half size (2×2 box), for minified crops.
    let halves: [Photo]

    public init(photos: [Photo]) {
        self.photos = photos
        halves = photos.map { p in
            let w = max(1, p.width / 2), h = max(1, p.height / 2)
            var out = [Float](repeating: 0, count: w * h * 3)
            for y in 0..<h {
                for x in 0..<w {
                    let x1 = min(2 * x + 1, p.width - 1), y1 = min(2 * y + 1, p.height - 1)
                    for c in 0..<3 {
                        out[(y * w + x) * 3 + c] = 0.25 * (p.linear[(2 * y * p.width + 2 * x) * 3 + c] + p.linear[(2 * y * p.width + x1) * 3 + c]
                            + p.linear[(y1 * p.width + 2 * x) * 3 + c] + p.linear[(y1 * p.width + x1) * 3 + c])
                    }
                }
            }
            return Photo(name: p.name, width: w, height: h, linear: out)
        }
    }

    /// Loads every image file (png, jpg, jpeg, tif, tiff, webp) in `directory`
    /// (not recursive) through libvips, box-downscaled by an integer factor to
    /// at most `maxSide` pixels. Throws if the directory cannot be read or
    /// holds no decodable image.
    public convenience init(directory: String, maxSide: Int = 384) throws {
        let exts: Set<String> = ["png", "jpg", "jpeg", "tif", "tiff", "webp"]
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { !$0.hasPrefix(".") && exts.contains(($0 as NSString).pathExtension.lowercased()) }
                .sorted()
        } catch {
            throw SynthError("cannot read texture directory '\(directory)'")
        }
        guard !names.isEmpty else { throw SynthError("no images (png, jpg, tif, webp) in texture directory '\(directory)'") }
        var photos: [Photo] = []
        for name in names {
            let image = try DecodedImage(path: (directory as NSString).appendingPathComponent(name))
            let w = image.width, h = image.height
            let f = max(1, (max(w, h) + maxSide - 1) / maxSide)
            let ow = w / f, oh = h / f
            guard ow >= 16, oh >= 16 else { continue }
            var out = [Float](repeating: 0, count: ow * oh * 3)
            let px = image.pixels
            let norm = 1 / Float(f * f)
            for y in 0..<oh {
                for x in 0..<ow {
                    for c in 0..<3 {
                        var s: Float = 0
                        for dy in 0..<f { for dx in 0..<f { s += ColourSpace.decode(px[((y * f + dy) * w + x * f + dx) * 3 + c]) } }
                        out[(y * ow + x) * 3 + c] = s * norm
                    }
                }
            }
            photos.append(Photo(name: name, width: ow, height: oh, linear: out))
        }
        guard !photos.isEmpty else { throw SynthError("no usable images (at least 16x16 after downscaling) in '\(directory)'") }
        self.init(photos: photos)
    }
}

/// The kinds of albedo texture the scene generator makes.
public enum TextureKind: String, Sendable, Codable, CaseIterable {
    case solid, noise, stripes, checks, gradient, wood, photo
}

/// Tileable fBm fields (64×64 texels, values about [0, 1]) for every
/// (base period 2/4/8/16, octaves 1–4) in 4 variants, computed once per
/// process; immutable, so safe to share between threads. Textures view
/// them through a random wrap offset and transpose (`NoiseView`).
enum NoiseBank {
    static let size = 64
    static let variants = 4
    static let bases = [2, 4, 8, 16]
    static let fields: [Float] = {
        var out = [Float](repeating: 0, count: bases.count * 4 * variants * size * size)
        var k = 0
        for b in bases {
            for octaves in 1...4 {
                for v in 0..<variants {
                    let seed = UInt32(k &* 7919 &+ 17)
                    for y in 0..<size {
                        for x in 0..<size {
                            out[k * size * size + y * size + x] =
                                TextureFactory.fbm(x, y, size: size, base: b, octaves: octaves, seed: seed &+ UInt32(v))
                        }
                    }
                    k += 1
                }
            }
        }
        return out
    }()

    /// A random view of a field with the given base period and octaves, for a texture `size` texels wide.
    static func view(base: Int, octaves: Int, size: Int, _ rng: inout SynthRandom) -> NoiseView {
        let bi = bases.firstIndex(of: base) ?? 2
        let field = (bi * 4 + min(max(octaves, 1), 4) - 1) * variants + rng.int(0, variants - 1)
        return NoiseView(start: field * NoiseBank.size * NoiseBank.size, ox: rng.int(0, NoiseBank.size - 1),
                         oy: rng.int(0, NoiseBank.size - 1), step: max(1, NoiseBank.size / size), transpose: rng.chance(0.5))
    }
}

struct NoiseView {
    let start: Int, ox: Int, oy: Int, step: Int, transpose: Bool
    @inline(__always) func at(_ x: Int, _ y: Int) -> Float {
        let m = NoiseBank.size - 1
        var xx = (x * step + ox) & m, yy = (y * step + oy) & m
        if transpose { swap(&xx, &yy) }
        return NoiseBank.fields[start + yy * NoiseBank.size + xx]
    }
}

/// Procedural texture synthesis (tileable) and photo crops.
enum TextureFactory {
    /// A plausible albedo colour (linear): mostly muted, sometimes vivid,
    /// lightness from dark to near white.
    static func albedoColour(_ rng: inout SynthRandom) -> Vec3 {
        let h = rng.unit()
        let s = rng.chance(0.25) ? rng.uniform(0.4, 0.9) : rng.uniform(0.0, 0.35)
        let v = rng.chance(0.15) ? rng.uniform(0.1, 0.3) : rng.uniform(0.3, 0.95)
        let c = hsv(h, s, v)
        return Vec3(ColourSpace.decode(c.x), ColourSpace.decode(c.y), ColourSpace.decode(c.z)) * 0.9
    }

    static func hsv(_ h: Float, _ s: Float, _ v: Float) -> Vec3 {
        let h6 = (h - floorf(h)) * 6
        let i = Int(h6) % 6, f = h6 - floorf(h6)
        let p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f))
        switch i {
        case 0: return Vec3(v, t, p)
        case 1: return Vec3(q, v, p)
        case 2: return Vec3(p, v, t)
        case 3: return Vec3(p, q, v)
        case 4: return Vec3(t, p, v)
        default: return Vec3(v, p, q)
        }
    }

    /// Tileable value noise in [0, 1] with integer lattice period `period` (a power of two).
    @inline(__always) static func valueNoise(_ x: Float, _ y: Float, period: Int, seed: UInt32) -> Float {
        let xf = floorf(x), yf = floorf(y)
        let tx = x - xf, ty = y - yf
        let sx = tx * tx * (3 - 2 * tx), sy = ty * ty * (3 - 2 * ty)
        let m = period - 1 // period is a power of two
        let x0 = UInt32(Int(xf) & m), y0 = UInt32(Int(yf) & m)
        let x1 = UInt32((Int(xf) + 1) & m), y1 = UInt32((Int(yf) + 1) & m)
        @inline(__always) func r(_ a: UInt32, _ b: UInt32) -> Float { Float(hash32(a, b, seed) >> 8) * (1.0 / 16_777_216.0) }
        return mix(mix(r(x0, y0), r(x1, y0), sx), mix(r(x0, y1), r(x1, y1), sx), sy)
    }

    /// Tileable fractal noise in about [0, 1] over a tile of `size` texels.
    static func fbm(_ x: Int, _ y: Int, size: Int, base: Int, octaves: Int, seed: UInt32) -> Float {
        var sum: Float = 0, amp: Float = 0.5, norm: Float = 0
        var period = base
        for o in 0..<octaves {
            let scale = Float(period) / Float(size)
            sum += amp * valueNoise(Float(x) * scale, Float(y) * scale, period: period, seed: seed &+ UInt32(o) &* 977)
            norm += amp
            amp *= 0.5
            period *= 2
        }
        return sum / norm
    }

    /// Bakes a procedural texture of `kind` (not `.photo`).
    static func procedural(_ kind: TextureKind, size: Int, _ rng: inout SynthRandom) -> TextureImage {
        let a = albedoColour(&rng)
        var b = albedoColour(&rng)
        if rng.chance(0.5) { b = a * rng.uniform(0.4, 0.85) } // tone-on-tone
        var px = [Float](repeating: 0, count: size * size * 3)
        let grain = rng.uniform(0.02, 0.15) // fine noise on every texture
        let n = Float(size)
        px.withUnsafeMutableBufferPointer { buf in
            switch kind {
            case .solid:
                let nv = NoiseBank.view(base: 8, octaves: 1, size: size, &rng)
                for y in 0..<size { for x in 0..<size {
                    let g = 1 + grain * (nv.at(x, y) - 0.5)
                    put(buf, size, x, y, a * g)
                } }
            case .noise:
                let base = rng.pick([2, 4, 8]), oct = rng.int(2, 4)
                let contrast = rng.uniform(1, 3)
                let nv = NoiseBank.view(base: base, octaves: oct, size: size, &rng)
                for y in 0..<size { for x in 0..<size {
                    let t = clamp((nv.at(x, y) - 0.5) * contrast + 0.5, 0, 1)
                    put(buf, size, x, y, mix(a, b, t))
                } }
            case .stripes, .wood:
                let count = Float(rng.pick([1, 2, 3, 4, 6, 8]))
                let duty = rng.uniform(0.2, 0.8)
                let soft = rng.uniform(0.01, 0.1)
                let warp = kind == .wood ? rng.uniform(0.3, 1.2) : 0
                let c = rng.chance(0.4) ? albedoColour(&rng) : b
                let nw = NoiseBank.view(base: 2, octaves: 3, size: size, &rng)
                let ng = NoiseBank.view(base: 16, octaves: 1, size: size, &rng)
                for y in 0..<size { for x in 0..<size {
                    let w = warp * (nw.at(x, y) - 0.5)
                    var s = (Float(x) / n + w) * count
                    s -= floorf(s)
                    let t = smoothstep(duty - soft, duty + soft, s) - smoothstep(1 - soft, 1, s)
                    var col = mix(a, c, t)
                    if kind == .wood {
                        let ring = 0.5 + 0.5 * sinf(2 * Float.pi * (Float(x) / n + w * 0.5) * count * 4)
                        col = mix(a, b, ring * 0.6)
                    }
                    let g = 1 + grain * (ng.at(x, y) - 0.5)
                    put(buf, size, x, y, col * g)
                } }
            case .checks:
                let count = rng.pick([1, 2, 4])
                let grout = rng.chance(0.5) ? rng.uniform(0.02, 0.06) : 0
                let gc = albedoColour(&rng)
                let cell = n / Float(count)
                let ng = NoiseBank.view(base: 8, octaves: 2, size: size, &rng)
                for y in 0..<size { for x in 0..<size {
                    let cx = Int(Float(x) / cell), cy = Int(Float(y) / cell)
                    var col = (cx + cy) % 2 == 0 ? a : b
                    let fx = Float(x) / cell - Float(cx), fy = Float(y) / cell - Float(cy)
                    if min(min(fx, 1 - fx), min(fy, 1 - fy)) < grout { col = gc }
                    let g = 1 + grain * (ng.at(x, y) - 0.5)
                    put(buf, size, x, y, col * g)
                } }
            case .gradient:
                let angle = rng.uniform(0, 2 * Float.pi)
                let dx = cosf(angle), dy = sinf(angle)
                let ng = NoiseBank.view(base: 8, octaves: 2, size: size, &rng)
                for y in 0..<size { for x in 0..<size {
                    // Periodic (triangle) ramp so the tile still wraps.
                    var s = (Float(x) * dx + Float(y) * dy) / n
                    s = abs(s - 2 * floorf(s / 2) - 1)
                    let g = 1 + grain * (ng.at(x, y) - 0.5)
                    put(buf, size, x, y, mix(a, b, s) * g)
                } }
            case .photo:
                preconditionFailure("photo textures come from photoCrop")
            }
        }
        return TextureImage(size: size, linearRGB: px)
    }

    @inline(__always) static func put(_ px: UnsafeMutableBufferPointer<Float>, _ size: Int, _ x: Int, _ y: Int, _ c: Vec3) {
        let i = (y * size + x) * 3
        px[i] = clamp(c.x, 0, 0.95); px[i + 1] = clamp(c.y, 0, 0.95); px[i + 2] = clamp(c.z, 0, 0.95)
    }

    /// A random square crop of a library photo resampled to `size`², with its
    /// albedo scaled into [0, 0.9]. Returns the texture and the photo's name.
    static func photoCrop(_ library: TextureLibrary, size: Int, _ rng: inout SynthRandom) -> (TextureImage, String) {
        let index = rng.int(0, library.photos.count - 1)
        let photo = library.photos[index]
        let side = Float(min(photo.width, photo.height)) * rng.uniform(0.25, 1)
        let x0 = rng.uniform(0, Float(photo.width) - side), y0 = rng.uniform(0, Float(photo.height) - side)
        let flip = rng.chance(0.5), transpose = rng.chance(0.3)
        let tint = rng.chance(0.3) ? albedoColour(&rng) / max(albedoColour(&rng).maxComponent, 0.2) : Vec3.one
        let gain = rng.uniform(0.6, 1.1)
        var px = [Float](repeating: 0, count: size * size * 3)
        var step = side / Float(size)
        // Sample the half-size copy when minifying (cheap anti-aliasing), bilinearly.
        let useHalf = step > 1.5
        let src = useHalf ? library.halves[index] : photo
        let scale: Float = useHalf ? 0.5 : 1
        step *= scale
        let ox = x0 * scale, oy = y0 * scale
        let k = tint * (gain * 0.9)
        src.linear.withUnsafeBufferPointer { p in
            px.withUnsafeMutableBufferPointer { out in
                for y in 0..<size {
                    for x in 0..<size {
                        var sx = Float(flip ? size - 1 - x : x), sy = Float(y)
                        if transpose { swap(&sx, &sy) }
                        let fx = clamp(ox + (sx + 0.5) * step - 0.5, 0, Float(src.width - 1))
                        let fy = clamp(oy + (sy + 0.5) * step - 0.5, 0, Float(src.height - 1))
                        let ix = Int(fx), iy = Int(fy)
                        let ix1 = min(ix + 1, src.width - 1), iy1 = min(iy + 1, src.height - 1)
                        let tx = fx - Float(ix), ty = fy - Float(iy)
                        let i00 = (iy * src.width + ix) * 3, i10 = (iy * src.width + ix1) * 3
                        let i01 = (iy1 * src.width + ix) * 3, i11 = (iy1 * src.width + ix1) * 3
                        let w00 = (1 - tx) * (1 - ty), w10 = tx * (1 - ty), w01 = (1 - tx) * ty, w11 = tx * ty
                        let o = (y * size + x) * 3
                        for c in 0..<3 {
                            let v = p[i00 + c] * w00 + p[i10 + c] * w10 + p[i01 + c] * w01 + p[i11 + c] * w11
                            out[o + c] = clamp(v * (c == 0 ? k.x : c == 1 ? k.y : k.z), 0, 0.95)
                        }
                    }
                }
            }
        }
        return (TextureImage(size: size, linearRGB: px), photo.name)
    }
}
