import Foundation
import Testing
@testable import F2ATrain

@Suite("Per-layer step times (f2a-train bench --layers)")
struct LayerTimesTests {
    /// An adversarial step, recorded: every generator layer's forward and backward pass, with
    /// a 3x3 convolution's weight and input gradients inside its backward pass (the first
    /// layer's input gradient is never computed); the discriminator's layers in its update
    /// (the fake and the real batch together: twice the images) and in the generator's
    /// adversarial term (the batch), forward and backward. Unrecorded, a step adds nothing.
    @Test("A step records every layer of both networks in each pass, and nothing when off")
    func recordsEveryLayer() throws {
        var c = tinyConfig(steps: 2, adversarial: true)
        c.batch = 3
        let pairs = (0..<3).map { syntheticPair("p\($0)", width: 24, height: 20, seed: UInt64($0)) }
        let t = try Trainer(config: c, train: pairs, validation: [], runDir: nil)
        let d = try #require(t.discriminator)
        LayerTimes.reset()
        LayerTimes.startRecording()
        _ = t.trainStep(t.source.batch(step: 0))
        LayerTimes.stopRecording()
        func entries(_ network: String, _ images: Int) -> [Int: LayerTimes.Entry] {
            Dictionary(LayerTimes.entries.filter { $0.key.network == network && $0.key.images == images }.map { ($0.key.index, $0) },
                       uniquingKeysWith: { a, _ in a })
        }

        let g = entries("G", 3), layers = t.generator.layers
        #expect(g.keys.sorted() == Array(layers.indices))
        for (i, layer) in layers.enumerated() {
            let s = try #require(g[i]).seconds
            let (forward, backward, weights, input) = (s[0], s[1], s[2], s[3])
            #expect(forward > 0 && backward > 0, "\(layer.name): \(s)")
            #expect(weights + input <= backward, "\(layer.name): the parts of its backward pass exceed it: \(s)")
            if layer.kind == .conv3x3 {
                #expect(weights > 0, "\(layer.name): \(s)")
                #expect((input > 0) == (i > 0), "\(layer.name): \(s)")
            } else {
                #expect(weights == 0 && input == 0, "\(layer.name): \(s)")
            }
            #expect(g[i]!.description.hasPrefix("\(layer.name) \(layer.inChannels) → \(layer.outChannels) at "))
            // The FLOPs behind the GFLOP/s: the layer's forward pass over the batch at the crop.
            #expect(g[i]!.flops[0] == 3 * t.generator.config.flops(of: layer, height: c.crop, width: c.crop))
        }
        for images in [6, 3] {
            let e = entries("D", images)
            #expect(e.keys.sorted() == Array(d.layers.indices), "discriminator on \(images) images")
            #expect(e.values.allSatisfy { $0.seconds[0] > 0 && $0.seconds[1] > 0 }, "discriminator on \(images) images")
            // Its first layer's FLOPs, forward and (weights, or the image channels' input gradient) backward.
            let first = try #require(e[0])
            let g0 = d.layers[0].geometry
            #expect(first.flops[0] == g0.flops(images: images, height: c.crop, width: c.crop))
            #expect(first.flops[1] == (images == 6 ? 1 : 0.5) * first.flops[0])
        }

        let table = LayerTimes.table(steps: 1)
        for e in g.values { #expect(table.contains("| \(e.description) | G |")) }
        #expect(table.contains("| **all layers** | G |") && table.contains("| **all layers** | D ×6 |")
                && table.contains("| **all layers** | D ×3 |"))

        LayerTimes.reset()
        _ = t.trainStep(t.source.batch(step: 1))
        #expect(LayerTimes.entries.isEmpty)

        // Recording is the recording thread's: a step on another thread (another test's
        // trainer) adds nothing to it.
        LayerTimes.startRecording()
        let done = DispatchSemaphore(value: 0)
        Thread { _ = t.trainStep(t.source.batch(step: 2)); done.signal() }.start()
        done.wait()
        LayerTimes.stopRecording()
        #expect(LayerTimes.entries.isEmpty)
    }
}
