import F2ACore
import F2AImage
import F2AModel
import F2ASynth
import Foundation
import Testing
@testable import F2ATrain

func writePNG(_ path: String, width: Int = 20, height: Int = 16, value: Float = 0.5) throws {
    var px = [Float](repeating: value, count: width * height * 3)
    for i in stride(from: 0, to: px.count, by: 7) { px[i] = Float(i % 255) / 255 }
    try saveRGB8(px, width: width, height: height, to: path)
}

func mkdir(_ p: String) { try! FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true) }

func expectDataError(_ contains: String, _ body: () throws -> Void) {
    do { try body(); Issue.record("expected an error mentioning \(contains)") } catch {
        #expect("\(error)".contains(contains), "\(error)")
    }
}

/// Whether `crop` (a size×size red plane) is a window of `pair`'s flash image.
func isWindow(_ crop: [Float], of pair: ImagePair, size: Int) -> Bool {
    for y0 in 0...(pair.height - size) {
        for x0 in 0...(pair.width - size) {
            var same = true
            for k in 0..<(size * size) {
                let v: Float = pair.flash[((y0 + k / size) * pair.width + x0 + k % size) * 3]
                if v != crop[k] { same = false; break }
            }
            if same { return true }
        }
    }
    return false
}

@Suite("Data pipeline")
struct DataTests {
    @Test("both directory layouts are discovered and decoded")
    func layouts() throws {
        let root = tempDir("layouts")
        defer { try? FileManager.default.removeItem(atPath: root) }
        mkdir(root + "/a/flash"); mkdir(root + "/a/ambient"); mkdir(root + "/b")
        for n in ["x", "y"] {
            try writePNG(root + "/a/flash/\(n).png"); try writePNG(root + "/a/ambient/\(n).png", value: 0.2)
            try writePNG(root + "/b/\(n)_flash.png"); try writePNG(root + "/b/\(n)_ambient.png", value: 0.2)
        }
        let a = try PairDiscovery.find(in: root + "/a"), b = try PairDiscovery.find(in: root + "/b")
        #expect(a.map(\.name) == ["x", "y"] && b.map(\.name) == ["x", "y"])
        #expect(b[0].flash.hasSuffix("x_flash.png") && b[0].ambient.hasSuffix("x_ambient.png"))
        let p = try PairDiscovery.load(a[0], resizeLong: 0)
        #expect(p.width == 20 && p.height == 16 && p.flash.count == 20 * 16 * 3)
        #expect(abs(p.ambient[1] - 0.2) < 0.003)
        let r = try PairDiscovery.load(a[0], resizeLong: 10)
        #expect(r.width == 10 && r.height == 8)
        // Validation split by name.
        var c = TrainConfig()
        c.data = [root + "/a", root + "/b"]; c.valNames = ["y"]; c.resize = 0
        let (train, val) = try Trainer.loadData(c, log: { _ in })
        #expect(train.map(\.name) == ["x", "x"] && val.map(\.name) == ["y", "y"])
    }

    @Test("empty or mismatched data directories are clear errors naming the file")
    func badDirectories() throws {
        let root = tempDir("bad")
        defer { try? FileManager.default.removeItem(atPath: root) }
        mkdir(root + "/empty")
        expectDataError("no image pairs in '\(root)/empty'") { _ = try PairDiscovery.find(in: root + "/empty") }
        expectDataError("'\(root)/nope' is not a directory") { _ = try PairDiscovery.find(in: root + "/nope") }
        mkdir(root + "/m/flash"); mkdir(root + "/m/ambient")
        try writePNG(root + "/m/flash/one.png")
        expectDataError("'\(root)/m/flash/one.png' has no ambient counterpart") { _ = try PairDiscovery.find(in: root + "/m") }
        try writePNG(root + "/m/ambient/one.png"); try writePNG(root + "/m/ambient/two.png")
        expectDataError("'\(root)/m/ambient/two.png' has no flash counterpart") { _ = try PairDiscovery.find(in: root + "/m") }
        mkdir(root + "/f")
        try writePNG(root + "/f/s_flash.png")
        expectDataError("'\(root)/f/s_flash.png' has no ambient counterpart") { _ = try PairDiscovery.find(in: root + "/f") }
        try writePNG(root + "/f/s_ambient.png", width: 10)
        let pairs = try PairDiscovery.find(in: root + "/f")
        expectDataError("'\(root)/f/s_flash.png' is 20x16 but '\(root)/f/s_ambient.png' is 10x16") { _ = try PairDiscovery.load(pairs[0], resizeLong: 0) }
        FileManager.default.createFile(atPath: root + "/g_flash.png", contents: Data("not a png".utf8))
        FileManager.default.createFile(atPath: root + "/g_ambient.png", contents: Data("not a png".utf8))
        mkdir(root + "/g"); try FileManager.default.moveItem(atPath: root + "/g_flash.png", toPath: root + "/g/g_flash.png")
        try FileManager.default.moveItem(atPath: root + "/g_ambient.png", toPath: root + "/g/g_ambient.png")
        let gp = try PairDiscovery.find(in: root + "/g")
        expectDataError("\(root)/g/g_flash.png") { _ = try PairDiscovery.load(gp[0], resizeLong: 0) }
        var c = TrainConfig()
        c.data = []
        expectDataError("no data directory") { _ = try Trainer.loadData(c, log: { _ in }) }
    }

    @Test("photometric jitter: both images get the same gain per channel, within the range; off draws nothing")
    func photometricJitter() throws {
        let pairs = (0..<2).map { syntheticPair("p\($0)", width: 40, height: 30, seed: UInt64($0)) }
        let plain = try BatchSource(pairs: pairs, batchSize: 3, augmentation: Augmentation(crop: 16, scaleMin: 1, scaleMax: 1.2, flip: true), seed: 9)
        let off = try BatchSource(pairs: pairs, batchSize: 3, augmentation: Augmentation(crop: 16, scaleMin: 1, scaleMax: 1.2, flip: true,
                                                                                          exposureJitter: 0, colourJitter: 0), seed: 9)
        #expect(plain.batch(step: 4).flash == off.batch(step: 4).flash)
        let jittered = try BatchSource(pairs: pairs, batchSize: 3, augmentation: Augmentation(crop: 16, scaleMin: 1, scaleMax: 1.2, flip: true,
                                                                                               exposureJitter: 1, colourJitter: 0.25), seed: 9)
        let a = plain.batch(step: 4), b = jittered.batch(step: 4)
        #expect(a.flash != b.flash)
        let plane = 16 * 16
        var gains: Set<Int> = []
        for s in 0..<3 {
            for ch in 0..<3 {
                // The same crop (gains are drawn after it), scaled in linear light: one gain per
                // channel and sample, shared by flash and ambient, wherever nothing clipped.
                var ratios: [Double] = []
                for i in 0..<plane {
                    let k = (s * 3 + ch) * plane + i
                    for (x, y) in [(a.flash.data[k], b.flash.data[k]), (a.ambient.data[k], b.ambient.data[k])]
                    where x > 0.05 && y < 0.99 {
                        ratios.append(Double(ColourSpace.decode(y) / ColourSpace.decode(x)))
                    }
                }
                #expect(ratios.count > plane / 2)
                let g = ratios.reduce(0, +) / Double(ratios.count)
                #expect(ratios.allSatisfy { abs($0 / g - 1) < 1e-3 })
                #expect(g >= pow(2, -1.25) * 0.999 && g <= pow(2, 1.25) * 1.001, "gain \(g)")
                gains.insert(Int((log2(g) * 1000).rounded()))
            }
        }
        #expect(gains.count == 9)
    }

    @Test("batches are deterministic per step; crops without scaling copy pixels exactly")
    func batches() throws {
        let pairs = (0..<3).map { syntheticPair("p\($0)", width: 40, height: 30, seed: UInt64($0)) }
        let aug = Augmentation(crop: 16, scaleMin: 1, scaleMax: 1, flip: false)
        let s = try BatchSource(pairs: pairs, batchSize: 4, augmentation: aug, seed: 5)
        let b1 = s.batch(step: 7), b2 = s.batch(step: 7), b3 = s.batch(step: 8)
        #expect(b1.flash == b2.flash && b1.ambient == b2.ambient && b1.flash != b3.flash)
        // Every crop is an exact window of one of the flash images.
        for i in 0..<4 {
            let crop = Array(b1.flash.data[(i * 3 * 256)..<(i * 3 * 256 + 256)]) // red plane
            var found = false
            for p in pairs where !found {
                for y0 in 0...(30 - 16) where !found {
                    for x0 in 0...(40 - 16) where !found {
                        found = (0..<256).allSatisfy { k in p.flash[((y0 + k / 16) * 40 + x0 + k % 16) * 3] == crop[k] }
                    }
                }
            }
            #expect(found)
        }
        // An epoch visits every pair once.
        let one = try BatchSource(pairs: pairs, batchSize: 1, augmentation: aug, seed: 5)
        #expect(Set(one.permutation(epoch: 0)) == Set(0..<3))
        // The background loader delivers the same batches in order.
        let loader = BackgroundLoader(source: s, from: 5, to: 9)
        for step in 5..<9 {
            let b = loader.next()
            #expect(b.step == step && b.flash == s.batch(step: step).flash)
        }
        loader.stop()
        // Crops larger than the images are refused.
        expectDataError("smaller than the 64-pixel crop") {
            _ = try BatchSource(pairs: pairs, batchSize: 1, augmentation: Augmentation(crop: 64, scaleMin: 1, scaleMax: 1, flip: false), seed: 1)
        }
    }

    @Test("synthetic pairs from F2ASynth are mixed in at the configured ratio")
    func synthetic() throws {
        var c = TrainConfig()
        c.crop = 16; c.levels = 3; c.synthRatio = 0.5; c.synthPool = 2
        let provider = try #require(try SynthSupport.provider(c))
        let p = provider(7, 16)
        #expect(p.width == 26 && p.height == 20 && p.flash.count == 26 * 20 * 3 && p.ambient.count == p.flash.count)
        #expect(provider(9, 16).flash == p.flash) // same pool slot (9 % 2 == 7 % 2), cached
        let real = syntheticPair("real", width: 20, height: 20, seed: 1)
        let s = try BatchSource(pairs: [real], batchSize: 16, augmentation: Augmentation(crop: 16, scaleMin: 1, scaleMax: 1, flip: false),
                                seed: 3, syntheticRatio: 0.5, synthetic: provider)
        let b = s.batch(step: 0)
        // Count samples that are a window of the real pair (its 5x5 possible offsets).
        var realCount = 0
        for i in 0..<16 {
            let crop = Array(b.flash.data[(i * 768)..<(i * 768 + 256)])
            if isWindow(crop, of: real, size: 16) { realCount += 1 }
        }
        #expect(realCount > 2 && realCount < 14, "\(realCount) of 16 real")
        c.synthFlashMode = "sometimes"
        expectDataError("synthFlashMode 'sometimes'") { _ = try SynthSupport.provider(c) }
    }

    @Test("configuration files: known keys override defaults, unknown keys are errors")
    func configFile() throws {
        let c = try TrainConfig.merging(TrainConfig(), jsonObject: "{\"width\": 0.5, \"crop\": 64, \"data\": [\"x\"]}", source: "f.json")
        #expect(c.width == 0.5 && c.crop == 64 && c.data == ["x"] && c.batch == TrainConfig().batch)
        expectDataError("unknown key 'widht'") { _ = try TrainConfig.merging(TrainConfig(), jsonObject: "{\"widht\": 1}", source: "f.json") }
        // A value of the wrong kind is named by its key, in words, not as a Swift DecodingError.
        for (json, message) in [("{\"crop\": \"abc\"}", "f.json: crop: expected a whole number, found \"abc\""),
                                ("{\"crop\": 1.5}", "f.json: crop: expected a whole number, found 1.5"),
                                ("{\"initG\": \"zzz\"}", "f.json: initG: expected normal or he, found \"zzz\""),
                                ("{\"flip\": 2, \"width\": 0.5}", "f.json: flip: expected true or false, found 2")] {
            expectDataError(message) { _ = try TrainConfig.merging(TrainConfig(), jsonObject: json, source: "f.json") }
        }
        #expect(try TrainConfig.fromJSON(c.json) == c)
        var bad = TrainConfig(); bad.crop = 100
        expectDataError("crop 100") { try bad.validate() }
        #expect(LRSchedule(base: 1, decayStart: 10, total: 20).rate(at: 5) == 1)
        #expect(LRSchedule(base: 1, decayStart: 10, total: 20).rate(at: 15) == 0.5)
        #expect(LRSchedule(base: 1, decayStart: 10, total: 20).rate(at: 20) == 0)
    }

    @Test("Adam matches the reference update with bias correction")
    func adam() {
        let p = ParameterSet(shapes: [("w", [2])])
        p.values[0] = [1, -1]
        var opt = Adam(for: p, beta1: 0.5, beta2: 0.999)
        p.grads[0] = [0.5, -2]
        opt.step(p, lr: 0.1)
        // First step: m̂ = g, v̂ = g², update = lr·g/|g| = ±lr.
        #expect(abs(p.values[0][0] - 0.9) < 1e-6 && abs(p.values[0][1] + 0.9) < 1e-6)
        p.grads[0] = [0.5, 0]
        opt.step(p, lr: 0.1)
        let m = 0.5 * 0.25 + 0.5 * 0.5, v = 0.999 * 0.00025 + 0.001 * 0.25
        let expected = 0.9 - 0.1 * (m / (1 - 0.25)) / ((v / (1 - 0.999 * 0.999)).squareRoot() + 1e-8)
        #expect(abs(Double(p.values[0][0]) - expected) < 1e-6)
    }

    /// The update runs in element chunks on the thread pool: over a parameter of many
    /// chunks (and one after it), every element must get the update of the plain loop,
    /// bit for bit, and `zeroGrads` must clear every chunk.
    @Test("Adam over many element chunks: each element as the plain loop's, gradients zeroed")
    func adamChunks() {
        let n = 5 * 4096 * 4 + 123
        let p = ParameterSet(shapes: [("big", [n]), ("small", [7])])
        var rng = SplitMix64(seed: 9)
        for i in 0..<2 { for j in p.values[i].indices { p.values[i][j] = rng.normal(); p.grads[i][j] = rng.normal() } }
        var expected = p.values
        var m = p.values.map { [Float](repeating: 0, count: $0.count) }, v = m
        var opt = Adam(for: p, beta1: 0.5, beta2: 0.999)
        for t in 1...2 {
            let b2: Float = 0.999  // Adam raises the Float β2 to the power t in Double
            let c1 = 1 - Float(pow(0.5, Double(t))), invSqrtC2 = 1 / (1 - Float(pow(Double(b2), Double(t)))).squareRoot()
            for i in 0..<2 {
                for j in expected[i].indices {
                    let g = p.grads[i][j]
                    m[i][j] = 0.5 * m[i][j] + (1 - 0.5) * g
                    v[i][j] = b2 * v[i][j] + (1 - b2) * g * g
                    expected[i][j] -= (2e-4 / c1) * m[i][j] / (v[i][j].squareRoot() * invSqrtC2 + 1e-8)
                }
            }
            opt.step(p, lr: 2e-4)
        }
        #expect(zip(p.values, expected).allSatisfy { zip($0, $1).allSatisfy { $0.bitPattern == $1.bitPattern } })
        p.zeroGrads()
        #expect(p.grads.allSatisfy { $0.allSatisfy { $0 == 0 } })
    }
}
