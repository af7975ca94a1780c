import F2ACore

/// A borrowed interleaved RGB float image: `height` rows of `width` pixels,
/// 3 floats each, rows `rowStride` floats apart.
public struct RGBImageView {
    public var base: UnsafePointer<Float>
    public var width: Int
    public var height: Int
    public var rowStride: Int

    public init(base: UnsafePointer<Float>, width: Int, height: Int, rowStride: Int) {
        self.base = base; self.width = width; self.height = height; self.rowStride = rowStride
    }
}

extension Generator {
    /// Applies the generator to an interleaved RGB image of any size.
    ///
    /// The image is padded by reflection (centred) to a multiple of
    /// `config.sizeMultiple`, run through the network and cropped back, then
    /// blended with the input: out = in + strength · (G(in) − in).
    /// Input values are clamped to [0, 1] (NaN → 0).
    ///
    /// - Parameters:
    ///   - input: source pixels.
    ///   - output: destination, `rowStride` floats between rows; may alias `input`.
    ///   - strength: 0 returns the input, 1 the generator output.
    public func apply(_ input: RGBImageView, to output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                      strength: Float = 1, progress: ((Double) -> Bool)? = nil) throws(Cancelled) {
        // One hold over the layout conversion, the pass and the blend (see f2a_pool_hold).
        try withThreadPoolHeld { () throws(Cancelled) in
            try applyHeld(input, to: output, outputRowStride: outputRowStride, strength: strength, progress: progress)
        }
    }

    private func applyHeld(_ input: RGBImageView, to output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                           strength: Float, progress: ((Double) -> Bool)?) throws(Cancelled) {
        var flash = Generator.padded(input, multiple: config.sizeMultiple)
        var result = try forward(flash.tensor, progress: progress)
        defer { Tensor.recycle(&result); Tensor.recycle(&flash.tensor) }
        blendRGB(input.base, rowStride: input.rowStride, planes: result, top: flash.top, left: flash.left,
                 width: input.width, height: input.height, strength: strength,
                 into: output, outputRowStride: outputRowStride)
    }

    @inline(__always)
    static func sanitize(_ v: Float) -> Float { v.isNaN ? 0 : min(max(v, 0), 1) }

    /// Interleaved image → [1, 3, H', W'] with centred reflect padding.
    static func padded(_ image: RGBImageView, multiple: Int) -> (tensor: Tensor, top: Int, left: Int) {
        let ph = (image.height + multiple - 1) / multiple * multiple
        let pw = (image.width + multiple - 1) / multiple * multiple
        let top = (ph - image.height) / 2, left = (pw - image.width) / 2
        let rows = (0..<ph).map { Int32(reflect($0 - top, image.height)) }
        let columns = (0..<pw).map { Int32(reflect($0 - left, image.width)) }
        return (planarRGB(image.base, rowStride: image.rowStride, rows: rows, columns: columns), top, left)
    }
}

/// Mirror index without repeating the edge sample (numpy/ONNX "reflect"),
/// extended periodically so that any padding amount works; size 1 repeats.
@inline(__always)
public func reflect(_ i: Int, _ n: Int) -> Int {
    if n == 1 { return 0 }
    let period = 2 * (n - 1)
    var j = i % period
    if j < 0 { j += period }
    return j < n ? j : period - j
}

extension Generator {
    /// Upper estimate of the bytes one `apply` with `options` allocates for a width x height
    /// image, besides the caller's buffers, in the mode it resolves to. The library's one
    /// memory rule: the C ABI checks it against $F2A_MAX_MEMORY_MB and hands it out as
    /// f2a_estimate_bytes (the vips operation's limit starts from it), the CLI checks it too.
    public func estimatedPeakBytes(width: Int, height: Int, options: ApplyOptions) -> Int {
        switch options.resolvedMode(width: width, height: height) {
        case .full, .auto:
            return estimatedPeakBytes(width: width, height: height)
        case .tiled:
            let tw = min(options.tileSize, width), th = min(options.tileSize, height)
            // One tile through the network, tile in/out, band accumulators.
            return estimatedPeakBytes(width: tw, height: th) + 4 * (6 * tw * th + 4 * th * width)
        case .guided:
            // One rule for both guided paths (a GuidedPlan either way): the whole image
            // here, the C ABI's streamed f2a_guide_* plan, and so the vips operation.
            let (w, h) = GuidedPlan.workingSize(width: width, height: height, workingSize: options.workingSize)
            // The network at working size; its output, the 21 moment and 12 coefficient
            // planes at working size; the full-resolution photo's sampling tables (per
            // column: bilinear positions and area weights; per row: area weights).
            return estimatedPeakBytes(width: w, height: h) + 4 * 36 * w * h + 40 * width + 64 * height
        }
    }

    /// The estimate plus an interleaved RGB float copy of the whole image (12 bytes per
    /// pixel) that the caller holds besides the apply's own buffers: the C ABI's u8 path
    /// converts into one, the command line decodes into one (and counts one for a photo it
    /// streams too: `checkBeforeDecoding`).
    public func estimatedPeakBytes(width: Int, height: Int, options: ApplyOptions, withFloatCopy: Bool) -> Int {
        estimatedPeakBytes(width: width, height: height, options: options) + (withFloatCopy ? 12 * width * height : 0)
    }

    /// The whole width x height image through the network (full mode): the padded input
    /// and output, every skip tensor, and the widest decoder step (upsampled tensor,
    /// zero-bordered conv input copy and conv output at full resolution), plus the recycled
    /// storage that may be held beside them.
    public func estimatedPeakBytes(width: Int, height: Int) -> Int {
        let m = config.sizeMultiple
        let ph = (height + m - 1) / m * m, pw = (width + m - 1) / m * m
        let pixels = Double(ph) * Double(pw + 32)
        var floats = 12 * pixels                          // input, padded input, output, result
        for b in 1..<config.levels {
            floats += Double(config.encoderChannels(b)) * pixels / Double(1 << (2 * (b - 1)))   // skips
        }
        // Full-size layers at their peak: the widest output, the one before it, and the
        // first decoder conv's upsampled input and scratch beside the skip.
        let widest = config.layers.filter { $0.level == 1 }.map(\.outChannels).max() ?? 3
        floats += Double(2 * widest + 3 * config.decoderChannels(1)) * pixels
        return Int(floats * 4) + Tensor.recycledStorageSlackBytes
    }
}
