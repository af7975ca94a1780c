import F2AModel
import Testing
@testable import F2ATrain

@Suite("Frozen encoder blocks")
struct FreezeTests {
    static func trained(freeze: Int, encoderScale: Double, steps: Int) throws -> (before: [[Float]], after: [[Float]], names: [String]) {
        var c = tinyConfig(steps: steps, adversarial: false)
        c.freezeEncoderBlocks = freeze
        c.encoderLRScale = encoderScale
        c.lrG = 1e-2
        let pairs = (0..<3).map { syntheticPair("p\($0)", width: 24, height: 20, seed: UInt64($0)) }
        let t = try Trainer(config: c, train: pairs, validation: [], runDir: nil)
        let before = t.generator.params.values
        try t.run(log: { _ in })
        return (before, t.generator.params.values, t.generator.params.names)
    }

    @Test("Frozen blocks stay bit-identical through training; the rest moves")
    func frozenStayIdentical() throws {
        let (before, after, names) = try Self.trained(freeze: 2, encoderScale: 1, steps: 6)
        var frozen = 0, moved = 0
        for (i, name) in names.enumerated() {
            if name.hasPrefix("enc1.") || name.hasPrefix("enc2.") {
                #expect(before[i] == after[i], "\(name) changed while frozen")
                frozen += 1
            } else if before[i] != after[i] {
                moved += 1
            }
        }
        #expect(frozen == 8, "enc1 and enc2: 2 convs each, weight and bias")
        #expect(moved > 0, "the trainable layers must change")
        #expect(after[names.firstIndex(of: "enc3.conv1.weight")!] != before[names.firstIndex(of: "enc3.conv1.weight")!])
    }

    @Test("A smaller encoder learning rate moves the encoder less")
    func encoderScale() throws {
        func change(_ r: (before: [[Float]], after: [[Float]], names: [String]), prefix: String) -> Float {
            var s: Float = 0
            for (i, n) in r.names.enumerated() where n.hasPrefix(prefix) {
                for (a, b) in zip(r.before[i], r.after[i]) { s += abs(a - b) }
            }
            return s
        }
        let full = try Self.trained(freeze: 0, encoderScale: 1, steps: 3)
        let gentle = try Self.trained(freeze: 0, encoderScale: 0.1, steps: 3)
        #expect(change(gentle, prefix: "enc") < 0.3 * change(full, prefix: "enc"))
        #expect(Trainer.learningRateScales(names: ["enc1.conv1.weight", "enc3.conv2.bias", "dec2.up.weight", "final.weight"],
                                           config: { var c = TrainConfig(); c.freezeEncoderBlocks = 1; c.encoderLRScale = 0.25; return c }())
                == [0, 0.25, 1, 1])
    }

    @Test("Freezing more blocks than the encoder has is a configuration error")
    func tooMany() {
        var c = tinyConfig(steps: 1, adversarial: false)
        c.freezeEncoderBlocks = c.levels + 1
        #expect(throws: TrainError.self) { try c.validate() }
    }
}
