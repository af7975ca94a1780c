import Testing
@testable import F2AModel
import F2ACore

@Suite("Guided filter")
struct GuidedFilterTests {
    /// A textured image: the guided fit needs variation in the guide.
    func texture(_ w: Int, _ h: Int) -> [Float] {
        (0..<(w * h * 3)).map { i in
            let p = i / 3, c = i % 3, x = p % w, y = p / w
            return 0.5 + 0.4 * Float(((x * 7 + y * 13 + c * 5) % 17)) / 17 - 0.2 * Float((x / 3 + y / 5) % 2)
        }
    }

    @Test("A global affine colour transform is recovered exactly")
    func affineRecovered() {
        let w = 24, h = 18
        let guide = texture(w, h)
        let m: [[Float]] = [[0.8, 0.1, 0.0], [0.05, 0.9, 0.05], [0.0, 0.2, 0.6]], t: [Float] = [0.05, -0.02, 0.1]
        var target = [Float](repeating: 0, count: guide.count)
        for p in 0..<(w * h) { for c in 0..<3 {
            target[3 * p + c] = m[c][0] * guide[3 * p] + m[c][1] * guide[3 * p + 1] + m[c][2] * guide[3 * p + 2] + t[c]
        }}
        let coeffs = GuidedFilter(radius: 2, epsilon: 1e-7).coefficients(guide: guide, target: target, width: w, height: h)
        for p in 0..<(w * h) { for c in 0..<3 {
            let out = coeffs[3 * c][p] * guide[3 * p] + coeffs[3 * c + 1][p] * guide[3 * p + 1]
                + coeffs[3 * c + 2][p] * guide[3 * p + 2] + coeffs[9 + c][p]
            #expect(abs(out - target[3 * p + c]) < 2e-3)
        }}
    }

    @Test("Box mean matches a naive clipped window mean")
    func boxMeanNaive() {
        let w = 7, h = 5, r = 2
        let x = (0..<(w * h)).map { Float(($0 * 37) % 11) }
        let fast = boxMean(x, width: w, height: h, radius: r)
        for y in 0..<h { for xi in 0..<w {
            var sum: Float = 0, n: Float = 0
            for yy in max(0, y - r)...min(h - 1, y + r) { for xx in max(0, xi - r)...min(w - 1, xi + r) { sum += x[yy * w + xx]; n += 1 } }
            #expect(abs(fast[y * w + xi] - sum / n) < 1e-5)
        }}
    }

    @Test("Area downscale averages exact footprints", arguments: [(6, 4, 3, 2), (5, 5, 2, 2), (7, 3, 7, 3)])
    func areaDownscaleMeans(_ w: Int, _ h: Int, _ ow: Int, _ oh: Int) {
        let img = texture(w, h)
        let out = img.withUnsafeBufferPointer { areaDownscale(RGBImageView(base: $0.baseAddress!, width: w, height: h, rowStride: 3 * w), width: ow, height: oh) }
        // The mean of the image is preserved by an exact area average.
        for c in 0..<3 {
            let a = stride(from: c, to: img.count, by: 3).map { img[$0] }.reduce(0, +) / Float(w * h)
            let b = stride(from: c, to: out.count, by: 3).map { out[$0] }.reduce(0, +) / Float(ow * oh)
            #expect(abs(a - b) < 1e-5)
        }
    }

    @Test("Guided mode on a large image: output in range, follows the network at low frequencies")
    func guidedVsFull() throws {
        let g = try Generator(file: WeightsFile.randomlyInitialised(GeneratorConfig(width: 0.0625, levels: 3), seed: 5))
        let w = 96, h = 64
        let img = texture(w, h)
        var full = [Float](repeating: 0, count: img.count), guided = full
        try img.withUnsafeBufferPointer { i in
            let view = RGBImageView(base: i.baseAddress!, width: w, height: h, rowStride: 3 * w)
            try full.withUnsafeMutableBufferPointer { try g.apply(view, to: $0.baseAddress!, outputRowStride: 3 * w, options: ApplyOptions(mode: .full)) }
            try guided.withUnsafeMutableBufferPointer {
                try g.apply(view, to: $0.baseAddress!, outputRowStride: 3 * w, options: ApplyOptions(mode: .guided, workingSize: 48))
            }
        }
        #expect(guided.allSatisfy { $0 >= 0 && $0 <= 1 })
        // Means per channel agree closely; pixels differ (the network is not scale-invariant).
        for c in 0..<3 {
            let a = stride(from: c, to: full.count, by: 3).map { full[$0] }.reduce(0, +) / Float(w * h)
            let b = stride(from: c, to: guided.count, by: 3).map { guided[$0] }.reduce(0, +) / Float(w * h)
            #expect(abs(a - b) < 0.1, "channel \(c): full \(a) guided \(b)")
        }
    }

    @Test("Auto is guided at every size; the network never runs above the image's size")
    func modes() {
        let o = ApplyOptions()
        for (w, h) in [(1, 1), (320, 240), (512, 384), (720, 540), (6000, 4000)] {
            #expect(o.resolvedMode(width: w, height: h) == .guided)
        }
        #expect(GuidedPlan.workingSize(width: 720, height: 540, workingSize: 512) == (512, 384))
        #expect(GuidedPlan.workingSize(width: 320, height: 240, workingSize: 512) == (320, 240))
        #expect(GuidedPlan.workingSize(width: 3, height: 2000, workingSize: 512) == (1, 512))
        #expect(ApplyOptions(mode: .full).resolvedMode(width: 5000, height: 3000) == .full)
    }

    @Test("The streamed plan (rows in chunks, rectangles in any order) equals the whole-image guided pass",
          arguments: [(97, 61, 32), (40, 300, 64), (5, 3, 2)])
    func streamedPlanEqualsWhole(_ W: Int, _ H: Int, _ working: Int) throws {
        let g = try Generator(file: WeightsFile.randomlyInitialised(GeneratorConfig(width: 0.0625, levels: 2), seed: 11))
        let img = texture(W, H)
        var options = ApplyOptions(mode: .guided, strength: 0.8, workingSize: working)
        options.guided = GuidedFilter()
        var whole = [Float](repeating: 0, count: img.count)
        try img.withUnsafeBufferPointer { i in
            try whole.withUnsafeMutableBufferPointer { o in
                try g.applyGuided(RGBImageView(base: i.baseAddress!, width: W, height: H, rowStride: 3 * W),
                                  to: o.baseAddress!, outputRowStride: 3 * W, options: options, progress: nil)
            }
        }
        let plan = GuidedPlan(generator: g, width: W, height: H, options: options)
        var parts = [Float](repeating: -1, count: img.count)
        try img.withUnsafeBufferPointer { i in
            var y = 0, n = 1
            while y < H {
                let k = min(n, H - y)
                try plan.addRows(i.baseAddress! + 3 * W * y, rowStride: 3 * W, count: k)
                y += k; n = n % 7 + 2
            }
            #expect(throws: GuidedPlan.StateError.tooManyRows(expected: H, got: H + 1)) {
                try plan.addRows(i.baseAddress!, rowStride: 3 * W, count: 1)
            }
            try plan.finish()
            #expect(throws: GuidedPlanError.state(.alreadyFinished)) { try plan.finish() }
            try parts.withUnsafeMutableBufferPointer { o in
                // Rectangles bottom-up, right to left.
                let step = max(1, W / 3)
                for y0 in stride(from: 0, to: H, by: 2).reversed() {
                    for x0 in stride(from: (W - 1) / step * step, through: 0, by: -step) {
                        let w = min(step, W - x0), h = min(2, H - y0)
                        let off = 3 * (W * y0 + x0)
                        try plan.apply(i.baseAddress! + off, inputRowStride: 3 * W, to: o.baseAddress! + off,
                                       outputRowStride: 3 * W, x: x0, y: y0, width: w, height: h)
                    }
                }
                #expect(throws: GuidedPlan.StateError.outOfBounds) {
                    try plan.apply(i.baseAddress!, inputRowStride: 3 * W, to: o.baseAddress!, outputRowStride: 3 * W,
                                   x: W - 1, y: 0, width: 2, height: 1)
                }
            }
        }
        let mismatches = zip(parts, whole).filter { $0 != $1 }.count
        #expect(mismatches == 0, "\(mismatches) of \(whole.count) values differ")
    }

    @Test("The smallest copy pass 1 may read: twice the working size, at most the photo's")
    func smallestSource() {
        let options = ApplyOptions(mode: .guided, workingSize: 256)
        #expect(GuidedPlan.smallestSource(width: 3024, height: 4032, options: options) == (384, 512))
        #expect(GuidedPlan.smallestSource(width: 540, height: 720, options: options) == (384, 512))
        #expect(GuidedPlan.smallestSource(width: 300, height: 200, options: options) == (300, 200))
        #expect(GuidedPlan.smallestSource(width: 3, height: 2000, options: options) == (2, 512))
    }

    @Test("A plan fed a half-size area average maps the photo as one fed the photo", arguments: [(96, 64, 24), (90, 61, 20)])
    func fedSmallerCopy(_ W: Int, _ H: Int, _ working: Int) throws {
        let g = try Generator(file: WeightsFile.randomlyInitialised(GeneratorConfig(width: 0.0625, levels: 2), seed: 11))
        let img = texture(W, H)
        let options = ApplyOptions(mode: .guided, strength: 0.8, workingSize: working)
        let (sw, sh) = ((W + 1) / 2, (H + 1) / 2)
        let half = img.withUnsafeBufferPointer { i in
            areaDownscale(RGBImageView(base: i.baseAddress!, width: W, height: H, rowStride: 3 * W), width: sw, height: sh)
        }
        var outputs: [[Float]] = []
        for (source, pixels) in [((W, H), img), ((sw, sh), half)] {
            let plan = GuidedPlan(generator: g, width: W, height: H, source: source, options: options)
            #expect(plan.sourceWidth == source.0 && plan.sourceHeight == source.1)
            try pixels.withUnsafeBufferPointer { p in
                #expect(throws: GuidedPlan.StateError.tooManyRows(expected: source.1, got: source.1 + 1)) {
                    try plan.addRows(p.baseAddress!, rowStride: 3 * source.0, count: source.1 + 1)
                }
                try plan.addRows(p.baseAddress!, rowStride: 3 * source.0, count: source.1)
            }
            try plan.finish()
            var out = [Float](repeating: 0, count: img.count)
            try img.withUnsafeBufferPointer { i in
                try out.withUnsafeMutableBufferPointer { o in
                    try plan.apply(i.baseAddress!, inputRowStride: 3 * W, to: o.baseAddress!, outputRowStride: 3 * W,
                                   x: 0, y: 0, width: W, height: H)
                }
            }
            outputs.append(out)
        }
        // Where the halves tile the working pixels exactly (even sizes) only rounding differs.
        let worst = zip(outputs[0], outputs[1]).map { abs($0 - $1) }.max() ?? 0
        #expect(worst < (W % 2 == 0 && H % 2 == 0 ? 1e-4 : 0.05), "largest difference \(worst)")
    }

    @Test("A plan refuses rows after finishing and finishing with rows missing")
    func planStateErrors() throws {
        let g = try Generator(file: WeightsFile.randomlyInitialised(GeneratorConfig(width: 0.0625, levels: 1), seed: 2))
        let plan = GuidedPlan(generator: g, width: 8, height: 6, options: ApplyOptions(mode: .guided, workingSize: 4))
        let img = texture(8, 6)
        try img.withUnsafeBufferPointer { i in
            try plan.addRows(i.baseAddress!, rowStride: 24, count: 5)
            #expect(throws: GuidedPlanError.state(.incomplete(expected: 6, got: 5))) { try plan.finish() }
            var out = [Float](repeating: 0, count: 3)
            #expect(throws: GuidedPlan.StateError.notFinished) {
                try plan.apply(i.baseAddress!, inputRowStride: 24, to: &out, outputRowStride: 3, x: 0, y: 0, width: 1, height: 1)
            }
            try plan.addRows(i.baseAddress! + 120, rowStride: 24, count: 1)
            try plan.finish()
            #expect(throws: GuidedPlan.StateError.alreadyFinished) { try plan.addRows(i.baseAddress!, rowStride: 24, count: 1) }
        }
    }
}

@Suite("Tiled mode")
struct TiledTests {
    @Test("Tile origins cover the axis with the requested overlap, the last tile flush")
    func origins() {
        #expect(TileGrid.origins(length: 300, tile: 512, overlap: 128) == [0])
        #expect(TileGrid.origins(length: 1000, tile: 512, overlap: 128) == [0, 384, 488])
        #expect(TileGrid.origins(length: 512, tile: 512, overlap: 128) == [0])
    }

    @Test("Cross-fade weights of neighbouring tiles sum to a positive value everywhere")
    func weights() {
        let xs = TileGrid.origins(length: 1000, tile: 512, overlap: 128)
        for x in 0..<1000 {
            var sum: Float = 0
            for (i, o) in xs.enumerated() where x >= o && x < o + 512 {
                sum += TileGrid.weight(x - o, 512, overlap: 128, rampStart: i > 0, rampEnd: i < xs.count - 1)
            }
            #expect(sum > 0.0)
        }
    }

    @Test("Tiled output equals full output on a model with a small receptive field, in place too")
    func tiledEqualsFull() throws {
        // One level: three 3x3 convs and a 1x1, receptive field 7 px ≪ the overlap,
        // so any difference would come from the tiling itself.
        let g = try Generator(file: WeightsFile.randomlyInitialised(GeneratorConfig(width: 0.0625, levels: 1), seed: 8))
        let w = 700, h = 530
        var img = (0..<(w * h * 3)).map { Float(($0 * 7919) % 1000) / 1000 }
        var full = [Float](repeating: 0, count: img.count), tiled = full
        try img.withUnsafeBufferPointer { i in
            let view = RGBImageView(base: i.baseAddress!, width: w, height: h, rowStride: 3 * w)
            try full.withUnsafeMutableBufferPointer { try g.apply(view, to: $0.baseAddress!, outputRowStride: 3 * w, options: ApplyOptions(mode: .full)) }
            try tiled.withUnsafeMutableBufferPointer {
                try g.apply(view, to: $0.baseAddress!, outputRowStride: 3 * w, options: ApplyOptions(mode: .tiled, tileSize: 256, tileOverlap: 64))
            }
        }
        let maxDiff = zip(full, tiled).map { abs($0 - $1) }.max()!
        #expect(maxDiff < 1e-5)
        try img.withUnsafeMutableBufferPointer { p in
            try g.apply(RGBImageView(base: p.baseAddress!, width: w, height: h, rowStride: 3 * w), to: p.baseAddress!,
                        outputRowStride: 3 * w, options: ApplyOptions(mode: .tiled, tileSize: 256, tileOverlap: 64))
        }
        #expect(zip(img, tiled).map { abs($0 - $1) }.max()! < 1e-6)
    }
}
