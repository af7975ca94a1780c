import F2ACore
import F2AImage
import F2AModel
import F2ASynth
import Foundation

/// One flash/ambient pair on disk.
public struct PairFiles: Sendable, Equatable {
    public var name: String
    public var flash: String
    public var ambient: String
}

/// An in-memory pair: interleaved RGB in [0, 1], same size.
public struct ImagePair: Sendable {
    public var name: String
    public var width: Int
    public var height: Int
    public var flash: [Float]
    public var ambient: [Float]
}

public enum PairDiscovery {
    static let extensions: Set<String> = ["png", "jpg", "jpeg", "tif", "tiff", "webp"]

    static func images(in dir: String) throws(TrainError) -> [String] {
        let items: [String]
        do { items = try FileManager.default.contentsOfDirectory(atPath: dir) } catch {
            throw .data("cannot read directory '\(dir)'")
        }
        return items.filter { !$0.hasPrefix(".") && extensions.contains(($0 as NSString).pathExtension.lowercased()) }.sorted()
    }

    /// Finds the pairs of `dir` in either layout: `flash/NAME.ext` +
    /// `ambient/NAME.ext`, or FAID's `NAME_flash.ext` + `NAME_ambient.ext`.
    /// Every image must have its counterpart; an empty directory is an error.
    public static func find(in dir: String) throws(TrainError) -> [PairFiles] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dir, isDirectory: &isDir), isDir.boolValue else {
            throw .data("'\(dir)' is not a directory")
        }
        let fd = (dir as NSString).appendingPathComponent("flash"), ad = (dir as NSString).appendingPathComponent("ambient")
        var pairs: [PairFiles] = []
        if FileManager.default.fileExists(atPath: fd) || FileManager.default.fileExists(atPath: ad) {
            let flashes = try images(in: fd), ambients = try images(in: ad)
            var byStem: [String: String] = [:]
            for a in ambients {
                let stem = (a as NSString).deletingPathExtension
                if byStem[stem] != nil { throw .data("two ambient images named '\(stem)' in '\(ad)'") }
                byStem[stem] = a
            }
            var used = Set<String>()
            for f in flashes {
                let stem = (f as NSString).deletingPathExtension
                guard let a = byStem[stem] else {
                    throw .data("'\((fd as NSString).appendingPathComponent(f))' has no ambient counterpart (expected '\((ad as NSString).appendingPathComponent(stem)).*')")
                }
                guard used.insert(stem).inserted else { throw .data("two flash images named '\(stem)' in '\(fd)'") }
                pairs.append(PairFiles(name: stem, flash: (fd as NSString).appendingPathComponent(f), ambient: (ad as NSString).appendingPathComponent(a)))
            }
            if let orphan = ambients.first(where: { !used.contains(($0 as NSString).deletingPathExtension) }) {
                throw .data("'\((ad as NSString).appendingPathComponent(orphan))' has no flash counterpart (expected '\((fd as NSString).appendingPathComponent((orphan as NSString).deletingPathExtension)).*')")
            }
        } else {
            let files = try images(in: dir)
            var flashes: [String: String] = [:], ambients: [String: String] = [:]
            for f in files {
                let stem = (f as NSString).deletingPathExtension
                if stem.hasSuffix("_flash") { flashes[String(stem.dropLast(6))] = f }
                else if stem.hasSuffix("_ambient") { ambients[String(stem.dropLast(8))] = f }
            }
            for (name, f) in flashes.sorted(by: { $0.key < $1.key }) {
                guard let a = ambients[name] else {
                    throw .data("'\((dir as NSString).appendingPathComponent(f))' has no ambient counterpart (expected '\(name)_ambient.*')")
                }
                pairs.append(PairFiles(name: name, flash: (dir as NSString).appendingPathComponent(f), ambient: (dir as NSString).appendingPathComponent(a)))
            }
            if let (name, a) = ambients.sorted(by: { $0.key < $1.key }).first(where: { flashes[$0.key] == nil }) {
                throw .data("'\((dir as NSString).appendingPathComponent(a))' has no flash counterpart (expected '\(name)_flash.*')")
            }
        }
        guard !pairs.isEmpty else {
            throw .data("no image pairs in '\(dir)' (expected flash/NAME.png + ambient/NAME.png, or NAME_flash.png + NAME_ambient.png)")
        }
        return pairs
    }

    /// Decodes a pair with libvips and optionally resizes it so that its longer
    /// side is `resizeLong` pixels (area averaging when shrinking).
    public static func load(_ files: PairFiles, resizeLong: Int) throws(TrainError) -> ImagePair {
        func decode(_ path: String) throws(TrainError) -> DecodedImage {
            do { return try DecodedImage(path: path) } catch { throw .data(error.description) }
        }
        let f = try decode(files.flash), a = try decode(files.ambient)
        guard f.width == a.width, f.height == a.height else {
            throw .data("'\(files.flash)' is \(f.width)x\(f.height) but '\(files.ambient)' is \(a.width)x\(a.height)")
        }
        var pair = ImagePair(name: files.name, width: f.width, height: f.height, flash: Array(f.pixels), ambient: Array(a.pixels))
        if resizeLong > 0 && max(pair.width, pair.height) != resizeLong {
            let s = Double(resizeLong) / Double(max(pair.width, pair.height))
            let nw = max(1, Int((Double(pair.width) * s).rounded())), nh = max(1, Int((Double(pair.height) * s).rounded()))
            pair.flash = resizeRGB(pair.flash, width: pair.width, height: pair.height, toWidth: nw, toHeight: nh)
            pair.ambient = resizeRGB(pair.ambient, width: pair.width, height: pair.height, toWidth: nw, toHeight: nh)
            pair.width = nw; pair.height = nh
        }
        return pair
    }
}

/// Resampling weights of one axis: area coverage when shrinking, linear
/// interpolation when enlarging.
func axisWeights(from n: Int, to m: Int) -> [[(Int, Float)]] {
    let s = Double(n) / Double(m)
    return (0..<m).map { o in
        if s >= 1 {
            let lo = Double(o) * s, hi = lo + s
            var out: [(Int, Float)] = []
            var i = Int(lo.rounded(.down))
            while Double(i) < hi && i < n {
                let cover = min(hi, Double(i + 1)) - max(lo, Double(i))
                if cover > 1e-9 { out.append((i, Float(cover / s))) }
                i += 1
            }
            return out
        } else {
            let x = (Double(o) + 0.5) * s - 0.5
            let i0 = Int(x.rounded(.down)), t = Float(x - Double(i0))
            let a = min(max(i0, 0), n - 1), b = min(max(i0 + 1, 0), n - 1)
            return [(a, 1 - t), (b, t)]
        }
    }
}

/// Separable resize of interleaved RGB.
public func resizeRGB(_ src: [Float], width: Int, height: Int, toWidth nw: Int, toHeight nh: Int) -> [Float] {
    let wx = axisWeights(from: width, to: nw), wy = axisWeights(from: height, to: nh)
    var tmp = [Float](repeating: 0, count: nw * height * 3)
    for y in 0..<height {
        for x in 0..<nw {
            var r: Float = 0, g: Float = 0, b: Float = 0
            for (i, w) in wx[x] { let k = (y * width + i) * 3; r += w * src[k]; g += w * src[k + 1]; b += w * src[k + 2] }
            let o = (y * nw + x) * 3
            tmp[o] = r; tmp[o + 1] = g; tmp[o + 2] = b
        }
    }
    var out = [Float](repeating: 0, count: nw * nh * 3)
    for y in 0..<nh {
        for (i, w) in wy[y] {
            for x in 0..<(nw * 3) { out[y * nw * 3 + x] += w * tmp[i * nw * 3 + x] }
        }
    }
    return out
}

/// Augmentation settings.
public struct Augmentation: Codable, Sendable, Equatable {
    public var crop: Int
    public var scaleMin: Double
    public var scaleMax: Double
    public var flip: Bool
    /// Half-width, in stops, of a random exposure change applied to both
    /// images of a sample in linear light (a camera metering the same scene
    /// differently); 0: none.
    public var exposureJitter: Double = 0
    /// Half-width, in stops, of a random gain per channel applied to both
    /// images (a different camera white balance); 0: none.
    public var colourJitter: Double = 0

    public init(crop: Int, scaleMin: Double, scaleMax: Double, flip: Bool, exposureJitter: Double = 0, colourJitter: Double = 0) {
        self.crop = crop; self.scaleMin = scaleMin; self.scaleMax = scaleMax; self.flip = flip
        self.exposureJitter = exposureJitter; self.colourJitter = colourJitter
    }

    /// Per-channel linear gains for one sample, or nil when both jitters are
    /// off (then nothing is drawn, so the random stream is as before).
    func photometricGains(_ rng: inout SplitMix64) -> [Float]? {
        guard exposureJitter > 0 || colourJitter > 0 else { return nil }
        let e = exposureJitter > 0 ? Double.random(in: -exposureJitter...exposureJitter, using: &rng) : 0
        return (0..<3).map { _ in
            let c = colourJitter > 0 ? Double.random(in: -colourJitter...colourJitter, using: &rng) : 0
            return Float(pow(2, e + c))
        }
    }
}

/// A training batch: flash and ambient as [B, 3, crop, crop].
public struct Batch: Sendable {
    public var step: Int
    public var flash: Tensor
    public var ambient: Tensor
}

/// Mixes 64-bit values into a seed (SplitMix64 finaliser).
@inline(__always) func mix(_ a: UInt64, _ b: UInt64) -> UInt64 {
    var r = SplitMix64(seed: a ^ (b &* 0xD1B5_4A32_D192_ED03))
    return r.next()
}

/// Deterministic batch construction: batch `step` depends only on the seed,
/// the step and the data, so a resumed run sees exactly the same batches.
public final class BatchSource: @unchecked Sendable {
    public let pairs: [ImagePair]
    public let batchSize: Int
    public let augmentation: Augmentation
    public let seed: UInt64
    /// Fraction of samples drawn from `synthetic` instead of `pairs`.
    public let syntheticRatio: Double
    public let synthetic: (@Sendable (UInt64, Int) -> ImagePair)?

    /// Fraction of real-pair samples whose flash image is composed as shot.
    public let asShotRatio: Double
    public let asShot: AsShotComposition
    /// Whether targets get the input's exposure (`ImagePair.exposureMatched`).
    public let matchExposure: Bool
    /// The pairs as loaded: as-shot composites are made from these.
    let rawPairs: [ImagePair]

    public init(pairs: [ImagePair], batchSize: Int, augmentation: Augmentation, seed: UInt64,
                syntheticRatio: Double = 0, synthetic: (@Sendable (UInt64, Int) -> ImagePair)? = nil,
                matchExposure: Bool = false, asShotRatio: Double = 0, asShot: AsShotComposition = AsShotComposition()) throws(TrainError) {
        guard !pairs.isEmpty || (synthetic != nil && syntheticRatio >= 1) else { throw .data("no training pairs") }
        for p in pairs where min(p.width, p.height) < augmentation.crop {
            throw .data("pair '\(p.name)' is \(p.width)x\(p.height), smaller than the \(augmentation.crop)-pixel crop")
        }
        self.rawPairs = pairs
        self.pairs = matchExposure ? pairs.map { $0.exposureMatched() } : pairs
        self.batchSize = batchSize; self.augmentation = augmentation; self.seed = seed
        self.syntheticRatio = syntheticRatio
        self.synthetic = matchExposure ? synthetic.map { render in { @Sendable seed, size in render(seed, size).exposureMatched() } } : synthetic
        self.matchExposure = matchExposure; self.asShotRatio = asShotRatio; self.asShot = asShot
    }

    /// Epochs completed (fractional) after `steps` steps.
    public func epoch(afterSteps steps: Int) -> Double {
        Double(steps * batchSize) / Double(max(pairs.count, 1))
    }

    private var permutationCache: (Int, [Int])? = nil
    private let lock = NSLock()

    func permutation(epoch: Int) -> [Int] {
        lock.lock(); defer { lock.unlock() }
        if let (e, p) = permutationCache, e == epoch { return p }
        var rng = SplitMix64(seed: mix(seed ^ 0x5045524D, UInt64(epoch)))
        var p = Array(0..<pairs.count)
        p.shuffle(using: &rng)
        permutationCache = (epoch, p)
        return p
    }

    public func batch(step: Int) -> Batch {
        let c = augmentation.crop
        var flash = Tensor(zeros: [batchSize, 3, c, c]), ambient = flash
        for i in 0..<batchSize {
            let g = step * batchSize + i
            var rng = SplitMix64(seed: mix(seed, UInt64(g)))
            let pair: ImagePair
            if let synthetic, syntheticRatio > 0, Double(rng.next() >> 11) / Double(1 << 53) < syntheticRatio {
                pair = synthetic(rng.next(), c)
            } else {
                let n = pairs.count, k = permutation(epoch: g / n)[g % n]
                // Drawn only when enabled, so that runs without as-shot samples
                // see the same random stream as before the option existed.
                if asShotRatio > 0, Double(rng.next() >> 11) / Double(1 << 53) < asShotRatio {
                    let shot = asShot.compose(rawPairs[k], asShot.draw(&rng))
                    pair = matchExposure ? shot.exposureMatched() : shot
                } else {
                    pair = pairs[k]
                }
            }
            sample(pair, rng: &rng, flash: &flash, ambient: &ambient, index: i)
        }
        return Batch(step: step, flash: flash, ambient: ambient)
    }

    /// Random scale, random crop and horizontal flip, bilinear resampling.
    func sample(_ p: ImagePair, rng: inout SplitMix64, flash: inout Tensor, ambient: inout Tensor, index: Int) {
        let c = augmentation.crop
        let lo = max(augmentation.scaleMin, Double(c) / Double(min(p.width, p.height)))
        let hi = max(lo, augmentation.scaleMax)
        let s = lo == hi ? lo : Double.random(in: lo...hi, using: &rng)
        let win = min(Double(c) / s, Double(min(p.width, p.height)))
        let x0 = Double(Int.random(in: 0...max(0, Int((Double(p.width) - win).rounded(.down))), using: &rng))
        let y0 = Double(Int.random(in: 0...max(0, Int((Double(p.height) - win).rounded(.down))), using: &rng))
        let flip = augmentation.flip && Bool.random(using: &rng)
        let step = win / Double(c)
        let plane = c * c
        // Source coordinates of every output column/row.
        func coords(_ origin: Double, _ limit: Int) -> [(Int, Int, Float)] {
            (0..<c).map { j in
                let x = origin + (Double(j) + 0.5) * step - 0.5
                let i0 = Int(x.rounded(.down)), t = Float(x - Double(i0))
                return (min(max(i0, 0), limit - 1), min(max(i0 + 1, 0), limit - 1), t)
            }
        }
        let xs = coords(x0, p.width), ys = coords(y0, p.height)
        let base = index * 3 * plane
        func fill(_ img: [Float], _ dst: inout Tensor) {
            img.withUnsafeBufferPointer { src in
                dst.data.withUnsafeMutableBufferPointer { dst in
                    for oy in 0..<c {
                        let (ya, yb, ty) = ys[oy]
                        for ox in 0..<c {
                            let (xa, xb, tx) = xs[flip ? c - 1 - ox : ox]
                            for ch in 0..<3 {
                                let v00 = src[(ya * p.width + xa) * 3 + ch], v01 = src[(ya * p.width + xb) * 3 + ch]
                                let v10 = src[(yb * p.width + xa) * 3 + ch], v11 = src[(yb * p.width + xb) * 3 + ch]
                                let top = v00 + tx * (v01 - v00), bottom = v10 + tx * (v11 - v10)
                                dst[base + ch * plane + oy * c + ox] = top + ty * (bottom - top)
                            }
                        }
                    }
                }
            }
        }
        fill(p.flash, &flash)
        fill(p.ambient, &ambient)
        // Both images get the same gains, so the flash-to-ambient relation
        // the model learns is unchanged; values pushed above 1 clip, as a
        // sensor would.
        if let gains = augmentation.photometricGains(&rng) {
            for ch in 0..<3 {
                let g = gains[ch], range = (base + ch * plane)..<(base + (ch + 1) * plane)
                for i in range {
                    flash.data[i] = ColourSpace.encode(min(ColourSpace.decode(flash.data[i]) * g, 1))
                    ambient.data[i] = ColourSpace.encode(min(ColourSpace.decode(ambient.data[i]) * g, 1))
                }
            }
        }
    }
}

/// Builds batches on a background thread, a few steps ahead of the trainer.
public final class BackgroundLoader: @unchecked Sendable {
    let source: BatchSource
    let condition = NSCondition()
    var queue: [Batch] = []
    var nextStep: Int
    let endStep: Int
    let depth: Int
    var stopped = false
    var thread: Thread?

    public init(source: BatchSource, from start: Int, to end: Int, depth: Int = 2) {
        self.source = source; nextStep = start; endStep = end; self.depth = depth
        let t = Thread { [self] in self.run() }
        t.name = "f2a-train-loader"
        thread = t
        t.start()
    }

    func run() {
        while true {
            condition.lock()
            while queue.count >= depth && !stopped { condition.wait() }
            if stopped || nextStep >= endStep { condition.unlock(); return }
            let step = nextStep
            nextStep += 1
            condition.unlock()
            let b = source.batch(step: step)
            condition.lock()
            queue.append(b)
            condition.broadcast()
            condition.unlock()
        }
    }

    /// The next batch, in step order (blocks until ready).
    public func next() -> Batch {
        condition.lock()
        while queue.isEmpty { condition.wait() }
        let b = queue.removeFirst()
        condition.broadcast()
        condition.unlock()
        return b
    }

    public func stop() {
        condition.lock(); stopped = true; condition.broadcast(); condition.unlock()
    }
}
