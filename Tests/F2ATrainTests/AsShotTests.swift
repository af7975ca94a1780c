import F2AModel
import F2ASynth
@testable import F2ATrain
import Foundation
import Testing

@Suite("As-shot composition")
struct AsShotTests {
    static func pair(flash: [Float], ambient: [Float], width: Int) -> ImagePair {
        ImagePair(name: "t", width: width, height: flash.count / 3 / width, flash: flash, ambient: ambient)
    }

    static func linear(_ v: [Float]) -> [Double] { v.map { Double(ColourSpace.decode($0)) } }

    static func luminance(_ lin: [Double]) -> Double { meanLuminance(count: lin.count) { lin[$0] } }

    @Test("Known values: ambient share and exposure as drawn, in linear light")
    func knownValues() {
        var c = AsShotComposition()
        c.readNoise = 0; c.shotNoise = 0
        // Two grey pixels of flash-only light (one bright, one dark: falloff)
        // and an even ambient image.
        let p = Self.pair(flash: [0.8, 0.8, 0.8, 0.1, 0.1, 0.1], ambient: [0.4, 0.4, 0.4, 0.4, 0.4, 0.4], width: 2)
        let shot = c.compose(p, .init(share: 0.25, exposure: 0.1, noiseSeed: 0))
        let f = Self.linear(p.flash), a = Self.linear(p.ambient)
        let lf = (f[0] + f[3]) / 2, la = (a[0] + a[3]) / 2
        // share = w·la / (lf + w·la) = 0.25  ⇒  w = lf / (3 la); k = 0.1 / (lf + w la)
        let w = lf / (3 * la), k = 0.1 / (lf + w * la)
        let got = Self.linear(shot.flash)
        for i in 0..<6 {
            #expect(abs(got[i] - k * (f[i] + w * a[i])) < 2e-4, "sample \(i): \(got[i]) vs \(k * (f[i] + w * a[i]))")
        }
        #expect(abs(Self.luminance(got) - 0.1) < 2e-4)
        #expect(shot.ambient == p.ambient, "the target is unchanged")
        // The dark pixel gained relative to the bright one: ambient fills the falloff.
        #expect(got[3] / got[0] > f[3] / f[0])
    }

    @Test("The sensor clips: a bright exposure saturates at 1")
    func clipping() {
        var c = AsShotComposition()
        c.readNoise = 0; c.shotNoise = 0
        let p = Self.pair(flash: [1, 1, 1, 0.05, 0.05, 0.05], ambient: [0.5, 0.5, 0.5, 0.5, 0.5, 0.5], width: 2)
        let shot = c.compose(p, .init(share: 0.1, exposure: 0.9, noiseSeed: 0))
        #expect(Array(shot.flash[0..<3]) == [1, 1, 1])
        #expect(shot.flash[3] < 1)
    }

    @Test("Noise has the configured spread and no bias")
    func noise() {
        var c = AsShotComposition()
        c.readNoise = 0.01; c.shotNoise = 0
        let n = 64 * 64 * 3
        let p = Self.pair(flash: [Float](repeating: 0.5, count: n), ambient: [Float](repeating: 0.5, count: n), width: 64)
        let clean: ImagePair = {
            var q = c; q.readNoise = 0
            return q.compose(p, .init(share: 0.5, exposure: 0.2, noiseSeed: 7))
        }()
        let noisy = c.compose(p, .init(share: 0.5, exposure: 0.2, noiseSeed: 7))
        let d = zip(Self.linear(noisy.flash), Self.linear(clean.flash)).map { $0 - $1 }
        let mean = d.reduce(0, +) / Double(n)
        let sd = (d.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(n)).squareRoot()
        #expect(abs(mean) < 0.001, "mean \(mean)")
        #expect(abs(sd - 0.01) < 0.001, "sd \(sd)")
        // Deterministic in the draw.
        #expect(c.compose(p, .init(share: 0.5, exposure: 0.2, noiseSeed: 7)).flash == noisy.flash)
    }

    @Test("Batches with as-shot samples: targets keep the composite's exposure; ratio 0 leaves batches unchanged")
    func batches() throws {
        let w = 32, n = w * w * 3
        var flash = [Float](repeating: 0, count: n), ambient = flash
        for i in 0..<n { flash[i] = Float(i % 97) / 120 + 0.1; ambient[i] = 0.3 + Float(i % 13) / 60 }
        let p = ImagePair(name: "p", width: w, height: w, flash: flash, ambient: ambient)
        let aug = Augmentation(crop: 32, scaleMin: 1, scaleMax: 1, flip: false)
        let plain = try BatchSource(pairs: [p], batchSize: 2, augmentation: aug, seed: 3, matchExposure: true)
        let none = try BatchSource(pairs: [p], batchSize: 2, augmentation: aug, seed: 3, matchExposure: true, asShotRatio: 0)
        #expect(plain.batch(step: 5).flash.data == none.batch(step: 5).flash.data)
        let all = try BatchSource(pairs: [p], batchSize: 2, augmentation: aug, seed: 3, matchExposure: true, asShotRatio: 1)
        let b = all.batch(step: 0)
        #expect(b.flash.data != plain.batch(step: 0).flash.data)
        // Planar [B, 3, H, W] → mean luminance of sample 0, input and target.
        func lum(_ t: [Float]) -> Double {
            let plane = w * w
            var s = 0.0
            for i in 0..<plane {
                s += 0.2126 * Double(ColourSpace.decode(t[i])) + 0.7152 * Double(ColourSpace.decode(t[plane + i]))
                    + 0.0722 * Double(ColourSpace.decode(t[2 * plane + i]))
            }
            return s / Double(plane)
        }
        let li = lum(Array(b.flash.data[0..<(3 * w * w)])), lt = lum(Array(b.ambient.data[0..<(3 * w * w)]))
        #expect(abs(li - lt) / li < 0.02, "input \(li) target \(lt)")
    }
}
