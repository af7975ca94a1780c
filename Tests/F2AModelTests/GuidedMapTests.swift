import Testing
@testable import F2AModel
import F2ACore

/// The vectorised map of guided mode's second pass (CKernels' f2a_guided_map, behind
/// `GuidedPlan.apply`) against the plain loop it replaced, on random plans.
@Suite("Guided map kernel")
struct GuidedMapTests {
    /// GuidedPlan.apply as it was in Swift: per row, the 12 planes interpolated
    /// vertically over the columns the rectangle touches, then per pixel horizontally,
    /// the affine transform, the blend, the clamp. The `scale` of each value bounds
    /// what float rounding can change in it (the magnitude of the terms it sums).
    static func reference(_ plan: GuidedPlan, _ input: [Float], inputRowStride: Int, x: Int, y: Int,
                          width rectWidth: Int, height rectHeight: Int) -> (values: [Float], scale: [Float]) {
        let (w, h, W, H) = (plan.workingWidth, plan.workingHeight, plan.width, plan.height)
        let planes = (0..<12).map { k in Array(plan.coefficients[(k * w * h)..<((k + 1) * w * h)]) }
        let xs = (0..<W).map { X -> (Int, Int, Float) in
            let u = min(max((Double(X) + 0.5) * Double(w) / Double(W) - 0.5, 0), Double(w - 1))
            let x0 = Int(u)
            return (x0, min(x0 + 1, w - 1), Float(u - Double(x0)))
        }
        var values = [Float](repeating: 0, count: 3 * rectWidth * rectHeight), scale = values
        let c0 = xs[x].0, c1 = xs[x + rectWidth - 1].1
        let span = c1 - c0 + 1
        var l = [Float](repeating: 0, count: 12 * span)
        for Y in y..<(y + rectHeight) {
            let v = min(max((Double(Y) + 0.5) * Double(h) / Double(H) - 0.5, 0), Double(h - 1))
            let y0 = Int(v), y1 = min(y0 + 1, h - 1), fy = Float(v - Double(y0))
            for k in 0..<12 {
                for i in 0..<span {
                    l[k * span + i] = planes[k][y0 * w + c0 + i] * (1 - fy) + planes[k][y1 * w + c0 + i] * fy
                }
            }
            for X in x..<(x + rectWidth) {
                let (x0, x1, fx) = xs[X]
                let i0 = x0 - c0, i1 = x1 - c0
                func at(_ k: Int) -> Float { l[k * span + i0] * (1 - fx) + l[k * span + i1] * fx }
                let src = (Y - y) * inputRowStride + 3 * (X - x), o = 3 * ((Y - y) * rectWidth + X - x)
                let r = Generator.sanitize(input[src]), g = Generator.sanitize(input[src + 1])
                let b = Generator.sanitize(input[src + 2])
                for c in 0..<3 {
                    let a = at(3 * c) * r + at(3 * c + 1) * g + at(3 * c + 2) * b + at(9 + c)
                    let f = [r, g, b][c]
                    values[o + c] = min(max(f + plan.strength * (a - f), 0), 1)
                    scale[o + c] = abs(at(3 * c) * r) + abs(at(3 * c + 1) * g) + abs(at(3 * c + 2) * b)
                        + abs(at(9 + c)) + f
                }
            }
        }
        return (values, scale)
    }

    static let generator = try! Generator(file: WeightsFile.randomlyInitialised(
        GeneratorConfig(width: 0.0625, levels: 1), seed: 5))

    /// A plan with random coefficients around the identity transform (no network run).
    static func plan(_ W: Int, _ H: Int, working: Int, strength: Float, rng: inout SplitMix64) -> GuidedPlan {
        let plan = GuidedPlan(generator: generator, width: W, height: H,
                              options: ApplyOptions(mode: .guided, strength: strength, workingSize: working))
        let n = plan.workingWidth * plan.workingHeight
        plan.coefficients = (0..<(12 * n)).map { i in
            let k = i / n
            let diagonal: Float = k < 9 && k % 4 == 0 ? 1 : 0
            return diagonal + Float.random(in: k < 9 ? -0.6...0.6 : -0.3...0.3, using: &rng)
        }
        return plan
    }

    /// Random input in [-0.2, 1.2] with NaNs and infinities: clamped, NaN as 0.
    static func input(count: Int, rng: inout SplitMix64) -> [Float] {
        (0..<count).map { _ in
            switch Int.random(in: 0..<50, using: &rng) {
            case 0: .nan
            case 1: .infinity
            case 2: -.infinity
            default: Float.random(in: -0.2...1.2, using: &rng)
            }
        }
    }

    @Test("Vectorised and portable kernels equal the plain loop up to rounding",
          arguments: [(1, 1, 16), (1, 9, 4), (9, 1, 4), (7, 5, 2), (13, 11, 13), (100, 6, 100), (129, 5, 128),
                      (300, 17, 32), (1000, 9, 64), (4000, 3, 256), (37, 290, 20)])
    func matchesReference(_ W: Int, _ H: Int, _ working: Int) throws {
        var rng = SplitMix64(seed: UInt64(W * 7919 + H * 31 + working))
        for strength: Float in [0, 0.6, 1] {
            let plan = Self.plan(W, H, working: working, strength: strength, rng: &rng)
            // The whole photo, then random rectangles: width 1, odd offsets, the right and bottom edges.
            var rects = [(0, 0, W, H), (W - 1, H - 1, 1, 1), (0, H - 1, W, 1), (W - 1, 0, 1, H)]
            for _ in 0..<6 {
                let x = Int.random(in: 0..<W, using: &rng), y = Int.random(in: 0..<H, using: &rng)
                rects.append((x, y, Int.random(in: 1...(W - x), using: &rng), Int.random(in: 1...(H - y), using: &rng)))
            }
            for (x, y, rw, rh) in rects {
                let stride = 3 * rw + Int.random(in: 0...5, using: &rng)
                let input = Self.input(count: stride * rh, rng: &rng)
                let (want, scale) = Self.reference(plan, input, inputRowStride: stride, x: x, y: y, width: rw, height: rh)
                for portable in [false, true] {
                    var got = [Float](repeating: -1, count: stride * rh)
                    input.withUnsafeBufferPointer { i in
                        plan.coefficients.withUnsafeBufferPointer { c in
                            got.withUnsafeMutableBufferPointer { o in
                                guidedMap(coefficients: c.baseAddress!, workingWidth: plan.workingWidth,
                                          workingHeight: plan.workingHeight, columns: plan.columns,
                                          weights: plan.columnWeights, photoHeight: H, strength: strength,
                                          input: i.baseAddress!, inputRowStride: stride, output: o.baseAddress!,
                                          outputRowStride: stride, x: x, y: y, width: rw, height: rh,
                                          portable: portable)
                            }
                        }
                    }
                    var worst: Float = 0, bad = 0
                    for r in 0..<rh {
                        for i in 0..<(3 * rw) {
                            let d = abs(got[r * stride + i] - want[r * 3 * rw + i])
                            worst = max(worst, d / (1 + scale[r * 3 * rw + i]))
                            if !(d <= 1e-6 * (1 + scale[r * 3 * rw + i])) { bad += 1 }
                        }
                        // Past the rectangle's width the output row is not touched.
                        #expect(got[(r * stride + 3 * rw)..<((r + 1) * stride)].allSatisfy { $0 == -1 })
                    }
                    #expect(bad == 0, "\(W)x\(H) working \(working), strength \(strength), rect \(rw)x\(rh) at (\(x), \(y)), portable \(portable): \(bad) values off, worst \(worst)")
                }
            }
        }
    }

    /// libvips's conversions of an 8-bit value to the map's float and back (vips_linear1,
    /// vips_cast), which the byte kernel must reproduce exactly.
    static func toFloat(_ u: UInt8) -> Float { Float(u) * Float(1.0 / 255.0) }
    static func toByte(_ v: Float) -> UInt8 {
        var t = v * 255
        t = t + 0.5
        return t <= 0 ? 0 : (t >= 255 ? 255 : UInt8(t))
    }

    @Test("The byte kernel equals converting, the float kernel, converting back, value for value",
          arguments: [(1, 1, 16), (7, 5, 2), (13, 11, 13), (129, 5, 128), (300, 17, 32), (4266, 2, 192)])
    func bytesEqualFloats(_ W: Int, _ H: Int, _ working: Int) throws {
        var rng = SplitMix64(seed: UInt64(W * 31 + H))
        for strength: Float in [0, 0.6, 1] {
            let plan = Self.plan(W, H, working: working, strength: strength, rng: &rng)
            var rects = [(0, 0, W, H), (W - 1, H - 1, 1, 1)]
            for _ in 0..<4 {
                let x = Int.random(in: 0..<W, using: &rng), y = Int.random(in: 0..<H, using: &rng)
                rects.append((x, y, Int.random(in: 1...(W - x), using: &rng), Int.random(in: 1...(H - y), using: &rng)))
            }
            for (x, y, rw, rh) in rects {
                let stride = 3 * rw + Int.random(in: 0...5, using: &rng)
                let bytes = (0..<(stride * rh)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                var want = [Float](repeating: 0, count: stride * rh)
                try bytes.map(Self.toFloat).withUnsafeBufferPointer { i in
                    try want.withUnsafeMutableBufferPointer { o in
                        try plan.apply(i.baseAddress!, inputRowStride: stride, to: o.baseAddress!, outputRowStride: stride,
                                       x: x, y: y, width: rw, height: rh)
                    }
                }
                var got = [UInt8](repeating: 7, count: stride * rh)
                try bytes.withUnsafeBufferPointer { i in
                    try got.withUnsafeMutableBufferPointer { o in
                        try plan.apply(i.baseAddress!, inputRowStride: stride, to: o.baseAddress!, outputRowStride: stride,
                                       x: x, y: y, width: rw, height: rh)
                    }
                }
                var bad = 0
                for r in 0..<rh {
                    for i in 0..<(3 * rw) where got[r * stride + i] != Self.toByte(want[r * stride + i]) { bad += 1 }
                    #expect(got[(r * stride + 3 * rw)..<((r + 1) * stride)].allSatisfy { $0 == 7 })
                }
                #expect(bad == 0, "\(W)x\(H) working \(working), strength \(strength), rect \(rw)x\(rh) at (\(x), \(y)): \(bad) bytes differ")
            }
        }
    }

    @Test("The portable byte kernel stays within one code of the vectorised one")
    func portableBytes() throws {
        var rng = SplitMix64(seed: 9)
        let (W, H) = (301, 7)
        let plan = Self.plan(W, H, working: 40, strength: 0.6, rng: &rng)
        let bytes = (0..<(3 * W * H)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        var outputs: [[UInt8]] = []
        for portable in [false, true] {
            var out = [UInt8](repeating: 0, count: bytes.count)
            bytes.withUnsafeBufferPointer { i in
                plan.coefficients.withUnsafeBufferPointer { c in
                    out.withUnsafeMutableBufferPointer { o in
                        guidedMap8(coefficients: c.baseAddress!, workingWidth: plan.workingWidth,
                                   workingHeight: plan.workingHeight, columns: plan.columns, weights: plan.columnWeights,
                                   photoHeight: H, strength: 0.6, input: i.baseAddress!, inputRowStride: 3 * W,
                                   output: o.baseAddress!, outputRowStride: 3 * W, x: 0, y: 0, width: W, height: H,
                                   portable: portable)
                    }
                }
            }
            outputs.append(out)
        }
        #expect(zip(outputs[0], outputs[1]).allSatisfy { abs(Int($0) - Int($1)) <= 1 })
    }

    @Test("GuidedPlan.apply runs the kernel, in place too")
    func planApplyInPlace() throws {
        var rng = SplitMix64(seed: 3)
        let (W, H) = (203, 21)
        let plan = Self.plan(W, H, working: 40, strength: 0.6, rng: &rng)
        var image = Self.input(count: 3 * W * H, rng: &rng)
        let (want, scale) = Self.reference(plan, image, inputRowStride: 3 * W, x: 0, y: 0, width: W, height: H)
        try image.withUnsafeMutableBufferPointer { p in
            // Bands of 4 rows, as threads would split the photo.
            for y in stride(from: 0, to: H, by: 4) {
                try plan.apply(p.baseAddress! + 3 * W * y, inputRowStride: 3 * W, to: p.baseAddress! + 3 * W * y,
                               outputRowStride: 3 * W, x: 0, y: y, width: W, height: min(4, H - y))
            }
        }
        let bad = (0..<image.count).filter { !(abs(image[$0] - want[$0]) <= 1e-6 * (1 + scale[$0])) }.count
        #expect(bad == 0)
    }
}
