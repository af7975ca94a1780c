import Testing
@testable import F2AModel
import F2ACore

@Suite("Generator")
struct GeneratorTests {
    static let configs: [GeneratorConfig] = [
        GeneratorConfig(width: 0.0625, levels: 3),
        GeneratorConfig(width: 0.0625, levels: 3, upsample: .unpool),
        GeneratorConfig(width: 0.05, levels: 5, upsample: .unpool, activation: .tanh, formulation: .ratioLog),
        GeneratorConfig(width: 0.03, levels: 1),
    ]

    @Test("Any image size works and the output is in [0, 1]", arguments: [(1, 1), (3, 5), (17, 16), (33, 20)])
    func sizes(_ w: Int, _ h: Int) throws {
        for config in GeneratorTests.configs {
            let g = try Generator(file: WeightsFile.randomlyInitialised(config, seed: 3))
            var input = [Float](repeating: 0, count: w * h * 3)
            for i in input.indices { input[i] = Float((i * 37) % 101) / 100 }
            var out = [Float](repeating: -1, count: input.count)
            try input.withUnsafeBufferPointer { inp in
                try out.withUnsafeMutableBufferPointer { o in
                    try g.apply(RGBImageView(base: inp.baseAddress!, width: w, height: h, rowStride: 3 * w),
                                to: o.baseAddress!, outputRowStride: 3 * w)
                }
            }
            #expect(out.allSatisfy { $0 >= 0 && $0 <= 1 }, "\(config.summary) \(w)x\(h)")
        }
    }

    @Test("Strength 0 returns the (clamped) input; in-place application works")
    func strength() throws {
        let g = try Generator(file: WeightsFile.randomlyInitialised(GeneratorConfig(width: 0.0625, levels: 2), seed: 1))
        var image: [Float] = [0.1, 0.5, 0.9, 1.5, -0.2, .nan, 0.3, 0.3, 0.3, 0, 1, 0.5]
        try image.withUnsafeMutableBufferPointer { p in
            try g.apply(RGBImageView(base: p.baseAddress!, width: 2, height: 2, rowStride: 6),
                        to: p.baseAddress!, outputRowStride: 6, strength: 0)
        }
        #expect(image == [0.1, 0.5, 0.9, 1, 0, 0, 0.3, 0.3, 0.3, 0, 1, 0.5])
    }

    @Test("Padding is reflection, centred, and periodic for large pads")
    func padding() {
        #expect((-3...5).map { reflect($0, 3) } == [1, 2, 1, 0, 1, 2, 1, 0, 1])
        #expect(reflect(7, 1) == 0)
        var pixels: [Float] = []
        for v in 0..<3 { pixels += [Float(v) / 2, Float(v) / 2, Float(v) / 2] }   // a 3x1 ramp 0 ½ 1
        let padded = pixels.withUnsafeBufferPointer {
            Generator.padded(RGBImageView(base: $0.baseAddress!, width: 3, height: 1, rowStride: 9), multiple: 8)
        }
        #expect(padded.left == 2 && padded.top == 3)
        #expect(Array(padded.tensor.data[0..<8]) == [1, 0.5, 0, 0.5, 1, 0.5, 0, 0.5])
    }

    @Test("Ratio-log decode inverts encode", arguments: [0, 0.2, 0.7, 1] as [Float])
    func ratioLog(_ flash: Float) {
        for a: Float in [0, 0.1, 0.5, 0.93, 1] {
            let r = RatioLog.encode(ambient: a, flash: flash)
            #expect(r >= 0 && r <= 1)
            #expect(abs(RatioLog.decode(ratio: r, flash: flash) - a) < 1e-6)
        }
    }

    @Test("Progress is reported monotonically and cancelling stops the pass")
    func progress() throws {
        let g = try Generator(file: WeightsFile.randomlyInitialised(GeneratorConfig(width: 0.0625, levels: 3), seed: 2))
        let x = Tensor(zeros: [1, 3, 8, 8])
        var seen: [Double] = []
        _ = try g.forward(x) { seen.append($0); return true }
        #expect(seen.count == g.layerCount && seen == seen.sorted() && seen.last == 1)
        var calls = 0
        #expect(throws: Cancelled.self) { _ = try g.forward(x) { _ in calls += 1; return calls < 3 } }
        #expect(calls == 3)
    }

    @Test("Configuration: parameter count of VGG-16 width 1 encoder matches torchvision")
    func vggParameterCount() {
        // torchvision vgg16().features has 14,714,688 parameters.
        let c = GeneratorConfig(width: 1, levels: 5)
        let encoder = c.parameterShapes.filter { $0.name.hasPrefix("enc") }.reduce(0) { $0 + $1.shape.reduce(1, *) }
        #expect(encoder == 14_714_688)
        #expect(abs(c.flops(height: 256, width: 256) / 1e9 - 111.5) < 1)
    }

    @Test("Configuration: a VGG-16 encoder with a narrow decoder")
    func asymmetricWidths() throws {
        let c = GeneratorConfig(width: 1, decoderWidth: 0.125, levels: 5, formulation: .ratioLog)
        let shapes = Dictionary(uniqueKeysWithValues: c.parameterShapes.map { ($0.name, $0.shape) })
        #expect(shapes["enc5.conv3.weight"] == [512, 512, 3, 3])
        #expect(shapes["dec4.up.weight"] == [512, 64, 2, 2])          // bottom (512) → 64
        #expect(shapes["dec4.conv1.weight"] == [64, 64 + 512, 3, 3])  // [upsampled, skip]
        #expect(shapes["dec1.conv1.weight"] == [8, 8 + 64, 3, 3])
        #expect(shapes["final.weight"] == [3, 8, 1, 1])
        // FLOPs by hand: VGG-16's 13 convs, then the decoder level by level.
        let h = 64.0, w = 48.0
        var expected = 0.0
        var cin = 3.0
        for (b, (ch, n)) in GeneratorConfig.vggBlocks.enumerated() {
            let px = h * w / Double(1 << (2 * b))
            for _ in 0..<n { expected += 2 * 9 * cin * Double(ch) * px; cin = Double(ch) }
        }
        for b in stride(from: 4, through: 1, by: -1) {
            let px = h * w / Double(1 << (2 * (b - 1))), d = Double(GeneratorConfig.vggBlocks[b - 1].channels) / 8
            expected += 2 * cin * d * px
            cin = d + Double(GeneratorConfig.vggBlocks[b - 1].channels)
            for _ in 0..<GeneratorConfig.vggBlocks[b - 1].convs { expected += 2 * 9 * cin * d * px; cin = d }
        }
        expected += 2 * cin * 3 * h * w
        #expect(abs(c.flops(height: Int(h), width: Int(w)) - expected) < 1)
        // Stored and read back, and the generator runs.
        let file = try WeightsFile.parse(WeightsFile.randomlyInitialised(c, seed: 3).serialized())
        let loaded = try GeneratorConfig(file: file)
        #expect(loaded.width == 1 && loaded.decoderWidth == 0.125)
        let y = try Generator(file: file).forward(Tensor(shape: [1, 3, 16, 16], data: (0..<768).map { Float($0 % 7) / 7 }))
        #expect(y.shape == [1, 3, 16, 16] && y.data.allSatisfy { $0 >= 0 && $0 <= 1 })
    }

    @Test("Configuration: unpooling with a decoder narrower than the encoder is refused")
    func unpoolNeedsSymmetricWidths() throws {
        let c = GeneratorConfig(width: 0.125, decoderWidth: 0.0625, levels: 3, upsample: .unpool)
        #expect(c.inconsistency?.key == "decoder_width")
        #expect(GeneratorConfig(width: 0.125, decoderWidth: 0.0625, levels: 3, upsample: .transpose).inconsistency == nil)
        let bytes = WeightsFile.randomlyInitialised(c, seed: 2).serialized()
        #expect {
            _ = try Generator(file: WeightsFile.parse(bytes))
        } throws: { error in
            guard case WeightsError.badConfig(key: "decoder_width", _) = error else { return false }
            return true
        }
    }

    @Test("Configuration: a file without decoder_width is the symmetric network")
    func symmetricWithoutDecoderWidth() throws {
        var w = WeightsFile.randomlyInitialised(GeneratorConfig(width: 0.0625, levels: 2), seed: 1)
        w.config.removeAll { $0.key == "decoder_width" }
        let c = try GeneratorConfig(file: WeightsFile.parse(w.serialized()))
        #expect(c.decoderWidth == 0.0625)
        #expect(c.parameterShapes.map(\.shape) == GeneratorConfig(width: 0.0625, levels: 2).parameterShapes.map(\.shape))
    }
}
