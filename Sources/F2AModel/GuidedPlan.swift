import F2ACore

/// Guided mode split into its two passes, so that a caller never needs the
/// whole photograph in memory at once (the libvips operation streams it):
///
/// 1. `addRows` receives the image top to bottom and area-averages it into a
///    working-size copy (`workingWidth` × `workingHeight`, long side
///    `ApplyOptions.workingSize`, or the photo's own size if smaller). The
///    image may be a smaller copy of the photo (`sourceWidth` ×
///    `sourceHeight`, at least `smallestSource`): a decoder that shrinks on
///    load makes it for a fraction of the cost of decoding the photo;
/// 2. `finish` runs the network on that copy and fits the guided filter's
///    per-pixel affine colour transform (12 planes at working size);
/// 3. `apply` maps any rectangle of the full-resolution image through the
///    bilinearly upsampled transform. It only reads the plan, so any number of
///    threads may call it at once, on any rectangles in any order.
///
/// Memory: 3 floats per working-size pixel while collecting, then 12; the
/// full-resolution image is never held.
public final class GuidedPlan: @unchecked Sendable {
    public let width: Int, height: Int
    /// The size of the image pass 1 is fed (`addRows`): the photo's, or a smaller copy's.
    public let sourceWidth: Int, sourceHeight: Int
    public let workingWidth: Int, workingHeight: Int
    public let strength: Float
    let generator: Generator
    let guided: GuidedFilter
    let downscaler: AreaDownscaler
    private(set) var rowsAdded = 0
    /// 12 planes of workingWidth × workingHeight after `finish`, one after the other:
    /// A (3×3, row-major by output channel), then b. Set by the tests too.
    var coefficients: [Float] = []
    /// Horizontal sampling positions of the photo's columns (`bilinearPositions`), shared by all rows.
    let columns: [Int32], columnWeights: [Float]

    public enum StateError: Error, Equatable {
        case tooManyRows(expected: Int, got: Int)
        case incomplete(expected: Int, got: Int)
        case notFinished
        case alreadyFinished
        case outOfBounds
    }

    /// Working size for a width × height photo: long side `workingSize`,
    /// aspect kept, at least 1 pixel, never larger than the photo (a smaller
    /// photo runs the network at its own size and only gets the guided fit).
    public static func workingSize(width: Int, height: Int, workingSize: Int) -> (Int, Int) {
        let scale = min(1, Double(workingSize) / Double(max(width, height)))
        return (max(1, Int((Double(width) * scale).rounded())), max(1, Int((Double(height) * scale).rounded())))
    }

    /// The smallest copy of a width × height photo that pass 1 may be fed instead
    /// of the photo: twice the working size on both axes, or the photo's own
    /// size if that is smaller. Twice, so that each working-size pixel still
    /// averages several pixels of the copy: a copy shrunk on load differs from
    /// the photo by how the decoder scaled it (JPEG: the low frequencies of
    /// each DCT block), and the average over 2 × 2 or more of its pixels all
    /// but hides that.
    public static func smallestSource(width: Int, height: Int, options: ApplyOptions) -> (width: Int, height: Int) {
        let (w, h) = workingSize(width: width, height: height, workingSize: options.workingSize)
        return (min(width, 2 * w), min(height, 2 * h))
    }

    /// A plan for a width × height photo, pass 1 fed the photo itself or, with
    /// `source`, a copy of that size (from `smallestSource` up to the photo's).
    public init(generator: Generator, width: Int, height: Int, source: (width: Int, height: Int)? = nil,
                options: ApplyOptions) {
        precondition(width >= 1 && height >= 1)
        self.generator = generator
        self.width = width; self.height = height
        (workingWidth, workingHeight) = GuidedPlan.workingSize(width: width, height: height, workingSize: options.workingSize)
        (sourceWidth, sourceHeight) = source ?? (width, height)
        let smallest = GuidedPlan.smallestSource(width: width, height: height, options: options)
        precondition(sourceWidth >= smallest.width && sourceWidth <= width
                     && sourceHeight >= smallest.height && sourceHeight <= height,
                     "pass 1's image \(sourceWidth)x\(sourceHeight) is not between \(smallest.width)x\(smallest.height) and the photo's \(width)x\(height)")
        strength = options.strength
        guided = options.guided
        downscaler = AreaDownscaler(width: sourceWidth, height: sourceHeight, toWidth: workingWidth, toHeight: workingHeight)
        (columns, columnWeights) = bilinearPositions(samples: workingWidth, count: width)
    }

    /// Feeds the next `count` rows of pass 1's image (3 floats per pixel,
    /// `sourceWidth` pixels per row, rows `rowStride` floats apart).
    public func addRows(_ rows: UnsafePointer<Float>, rowStride: Int, count: Int) throws(StateError) {
        guard coefficients.isEmpty else { throw .alreadyFinished }
        guard rowsAdded + count <= sourceHeight else {
            throw .tooManyRows(expected: sourceHeight, got: rowsAdded + count)
        }
        for r in 0..<count { downscaler.add(row: rows + r * rowStride, index: rowsAdded + r) }
        rowsAdded += count
    }

    /// Runs the network on the working-size copy and fits the transform.
    /// Progress runs 0 → 1; returning false cancels.
    public func finish(progress: ((Double) -> Bool)? = nil) throws(GuidedPlanError) {
        guard coefficients.isEmpty else { throw .state(.alreadyFinished) }
        guard rowsAdded == sourceHeight else { throw .state(.incomplete(expected: sourceHeight, got: rowsAdded)) }
        let (w, h) = (workingWidth, workingHeight)
        let small = downscaler.output
        var network = [Float](repeating: 0, count: w * h * 3)
        do {
            try small.withUnsafeBufferPointer { s throws(Cancelled) in
                try network.withUnsafeMutableBufferPointer { o throws(Cancelled) in
                    try generator.apply(RGBImageView(base: s.baseAddress!, width: w, height: h, rowStride: 3 * w),
                                        to: o.baseAddress!, outputRowStride: 3 * w, strength: 1,
                                        progress: progress.map { p in { p(0.95 * $0) } })
                }
            }
        } catch { throw .cancelled }
        coefficients = Array(guided.coefficients(guide: small, target: network, width: w, height: h).joined())
        downscaler.release()
        if let progress, !progress(1) { throw .cancelled }
    }

    /// Output for the rectangle (x, y, rectWidth, rectHeight) of the photo:
    /// `input` points at the rectangle's first input pixel, `output` at where
    /// its first output pixel goes; both may be the same memory (same stride).
    /// Single-threaded: callers parallelise over rectangles.
    public func apply(_ input: UnsafePointer<Float>, inputRowStride: Int,
                      to output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                      x: Int, y: Int, width rectWidth: Int, height rectHeight: Int) throws(StateError) {
        guard try isNonEmptyRectangle(x: x, y: y, width: rectWidth, height: rectHeight) else { return }
        withTables { c, cols, weights in
            guidedMap(coefficients: c, workingWidth: workingWidth, workingHeight: workingHeight,
                      columns: cols, weights: weights, photoHeight: height, strength: strength,
                      input: input, inputRowStride: inputRowStride, output: output, outputRowStride: outputRowStride,
                      x: x, y: y, width: rectWidth, height: rectHeight)
        }
    }

    /// `apply` on 8-bit pixels (strides in bytes): each value u is mapped as u · Float(1 / 255.0)
    /// and comes back as UInt8(clamp(v · 255 + 0.5, 0, 255)), truncated; the conversions libvips
    /// makes (`vips_linear1`, `vips_cast`), so an 8-bit photo's output equals the float path's
    /// through them, with no float copy of the photo.
    public func apply(_ input: UnsafePointer<UInt8>, inputRowStride: Int,
                      to output: UnsafeMutablePointer<UInt8>, outputRowStride: Int,
                      x: Int, y: Int, width rectWidth: Int, height rectHeight: Int) throws(StateError) {
        guard try isNonEmptyRectangle(x: x, y: y, width: rectWidth, height: rectHeight) else { return }
        withTables { c, cols, weights in
            guidedMap8(coefficients: c, workingWidth: workingWidth, workingHeight: workingHeight,
                       columns: cols, weights: weights, photoHeight: height, strength: strength,
                       input: input, inputRowStride: inputRowStride, output: output, outputRowStride: outputRowStride,
                       x: x, y: y, width: rectWidth, height: rectHeight)
        }
    }

    /// Both `apply`s' preconditions: the plan is finished and the rectangle lies in the photo;
    /// false for an empty one (nothing to map).
    private func isNonEmptyRectangle(x: Int, y: Int, width rectWidth: Int, height rectHeight: Int) throws(StateError) -> Bool {
        guard !coefficients.isEmpty else { throw .notFinished }
        guard x >= 0, y >= 0, rectWidth >= 0, rectHeight >= 0, x + rectWidth <= width, y + rectHeight <= height else {
            throw .outOfBounds
        }
        return rectWidth > 0 && rectHeight > 0
    }

    private func withTables(_ body: (UnsafePointer<Float>, UnsafePointer<Int32>, UnsafePointer<Float>) -> Void) {
        coefficients.withUnsafeBufferPointer { c in
            columns.withUnsafeBufferPointer { cols in
                columnWeights.withUnsafeBufferPointer { weights in
                    body(c.baseAddress!, cols.baseAddress!, weights.baseAddress!)
                }
            }
        }
    }
}

public enum GuidedPlanError: Error, Equatable {
    case state(GuidedPlan.StateError)
    case cancelled
}

/// Exact area-average downscale fed one source row at a time (each output
/// pixel is the mean of its footprint). Sums in the same order as a
/// whole-image pass would, so streaming changes no bit of the result.
final class AreaDownscaler {
    let sourceWidth: Int, sourceHeight: Int, width: Int, height: Int
    private let wx: [[(Int, Float)]]
    /// For each source row: the output rows it contributes to, with weights.
    private let rowTargets: [[(Int, Float)]]
    private(set) var output: [Float]
    private var horizontal: [Float]

    init(width W: Int, height H: Int, toWidth w: Int, toHeight h: Int) {
        sourceWidth = W; sourceHeight = H; width = w; height = h
        wx = AreaDownscaler.weights(W, w)
        var targets = [[(Int, Float)]](repeating: [], count: H)
        for (o, list) in AreaDownscaler.weights(H, h).enumerated() {
            for (j, weight) in list { targets[j].append((o, weight)) }
        }
        rowTargets = targets
        output = [Float](repeating: 0, count: w * h * 3)
        horizontal = [Float](repeating: 0, count: w * 3)
    }

    static func weights(_ n: Int, _ m: Int) -> [[(Int, Float)]] {
        let scale = Double(n) / Double(m)
        return (0..<m).map { o in
            let lo = Double(o) * scale, hi = Double(o + 1) * scale
            var list: [(Int, Float)] = []
            var i = Int(lo)
            while Double(i) < hi && i < n {
                let cover = min(hi, Double(i + 1)) - max(lo, Double(i))
                if cover > 0 { list.append((i, Float(cover / scale))) }
                i += 1
            }
            return list
        }
    }

    /// Adds source row `index`; rows must arrive in increasing order.
    func add(row src: UnsafePointer<Float>, index: Int) {
        for x in 0..<width {
            var acc: (Float, Float, Float) = (0, 0, 0)
            for (i, wgt) in wx[x] {
                acc.0 += wgt * Generator.sanitize(src[3 * i])
                acc.1 += wgt * Generator.sanitize(src[3 * i + 1])
                acc.2 += wgt * Generator.sanitize(src[3 * i + 2])
            }
            horizontal[3 * x] = acc.0; horizontal[3 * x + 1] = acc.1; horizontal[3 * x + 2] = acc.2
        }
        let n = 3 * width
        output.withUnsafeMutableBufferPointer { out in
            horizontal.withUnsafeBufferPointer { hz in
                for (o, wgt) in rowTargets[index] {
                    for k in 0..<n { out[o * n + k] += wgt * hz[k] }
                }
            }
        }
    }

    func release() { output = []; horizontal = [] }
}

/// Whole-image area downscale (tests and callers with the image in memory).
func areaDownscale(_ image: RGBImageView, width ow: Int, height oh: Int) -> [Float] {
    let d = AreaDownscaler(width: image.width, height: image.height, toWidth: ow, toHeight: oh)
    for y in 0..<image.height { d.add(row: image.base + y * image.rowStride, index: y) }
    return d.output
}

extension Generator {
    /// Guided mode on an image in memory: the plan's two passes, the second
    /// split over threads by row bands.
    func applyGuided(_ input: RGBImageView, to output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                     options: ApplyOptions, progress: ((Double) -> Bool)?) throws(Cancelled) {
        let plan = GuidedPlan(generator: self, width: input.width, height: input.height, options: options)
        try! plan.addRows(input.base, rowStride: input.rowStride, count: input.height)
        do { try plan.finish(progress: progress.map { p in { p(0.95 * $0) } }) } catch { throw Cancelled() }
        // Raw addresses cross into the worker threads; each writes disjoint rows.
        let inBase = Int(bitPattern: input.base), inStride = input.rowStride, outBase = Int(bitPattern: output)
        let W = input.width
        parallelFor(input.height) { rows in
            guard !rows.isEmpty else { return }
            let src = UnsafePointer<Float>(bitPattern: inBase)! + rows.lowerBound * inStride
            let dst = UnsafeMutablePointer<Float>(bitPattern: outBase)! + rows.lowerBound * outputRowStride
            try! plan.apply(src, inputRowStride: inStride, to: dst, outputRowStride: outputRowStride,
                            x: 0, y: rows.lowerBound, width: W, height: rows.count)
        }
        if let progress, !progress(1) { throw Cancelled() }
    }
}
