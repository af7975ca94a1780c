import F2ACore

/// How a whole photograph goes through the network.
public enum ApplyMode: String, Sendable, CaseIterable {
    /// `guided` at every size (the network at `workingSize`, or at the
    /// image's own size when that is smaller).
    /// Why not `full` whenever it fits in memory: the guided filter re-fits
    /// the network's gain as a local affine function of the photo, which
    /// keeps the photo's own detail and drops the network's faint
    /// high-frequency texture. On held-out pairs it measured better than
    /// `full` at both scales, even with the network at the same size
    /// (faid32 validation 720×540: 14.89 dB / 0.721 vs 14.84 / 0.699;
    /// 320×240: 14.96 / 0.696 vs 14.94 / 0.683; synthetic 320×240: 15.19 /
    /// 0.619 vs 15.16 / 0.599), and above the working size it costs less.
    case auto
    /// The whole image through the network (memory grows with the image).
    case full
    /// Overlapping `tileSize` tiles cross-faded over `tileOverlap` pixels:
    /// full-resolution network output with memory bounded by the tile size.
    case tiled
    /// The network at `workingSize` (at most the image's own size), its effect
    /// carried to full resolution by a guided filter (`GuidedFilter`):
    /// fixed network cost per photo.
    case guided
}

/// Options of `Generator.apply(_:to:outputRowStride:options:progress:)`.
///
/// The defaults and allowed ranges below are the only ones: the C ABI
/// (`f2a_default_params`, its argument checks and the header's
/// `F2A_DEFAULT_*` / `F2A_*_MIN` / `F2A_*_MAX` macros, which Tests/capi
/// checks against the library), the CLI and the vips operation take them
/// from here.
public struct ApplyOptions: Sendable {
    /// Long side at which guided mode runs the network by default: the scale
    /// the shipped model was trained at (weights/recipe.json `resize`). On
    /// held-out pairs at their native size it measured better than 512
    /// (MODEL_CARD.md, "Working size"), and it costs a quarter.
    public static let defaultWorkingSize = 256
    public static let workingSizeRange = 16...8192
    public static let defaultTileSize = 512
    public static let tileSizeRange = 256...4096

    public var mode: ApplyMode = .auto
    /// Blend with the input: 0 = input, 1 = generator output.
    public var strength: Float = 1
    /// Long side, in pixels, at which `guided` runs the network.
    public var workingSize: Int = defaultWorkingSize
    /// Tile side of `tiled` mode, pixels (a multiple of the model's size multiple runs fastest).
    public var tileSize: Int = defaultTileSize
    /// Cross-fade width between neighbouring tiles, pixels.
    public var tileOverlap: Int = 128
    public var guided = GuidedFilter()

    public init(mode: ApplyMode = .auto, strength: Float = 1, workingSize: Int = defaultWorkingSize,
                tileSize: Int = defaultTileSize, tileOverlap: Int = 128) {
        self.mode = mode
        self.strength = strength
        self.workingSize = workingSize
        self.tileSize = tileSize
        self.tileOverlap = tileOverlap
    }

    /// The mode actually used for an image of this size.
    public func resolvedMode(width: Int, height: Int) -> ApplyMode {
        modeAtEverySize ?? (width <= tileSize && height <= tileSize ? .full : .tiled)
    }

    /// The mode used whatever the image's size; nil when the size decides (tiled runs an
    /// image that fits in one tile in full).
    public var modeAtEverySize: ApplyMode? {
        switch mode {
        case .auto, .guided: return .guided
        case .full: return .full
        case .tiled: return nil
        }
    }

    /// True when every image goes through guided mode, whose `GuidedPlan` takes the photo
    /// as two passes over its rows: a caller can then stream it from the file instead of
    /// decoding it whole (`f2a apply`, `f2a batch`, the vips operation). Known before the
    /// size is, so before the file is opened.
    public var streams: Bool { modeAtEverySize == .guided }
}

extension Generator {
    /// Applies the generator to a photograph of any size in the chosen mode.
    /// `output` may alias `input` (same stride). Progress runs 0 → 1 once.
    public func apply(_ input: RGBImageView, to output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                      options: ApplyOptions, progress: ((Double) -> Bool)? = nil) throws(Cancelled) {
        switch options.resolvedMode(width: input.width, height: input.height) {
        case .full, .auto:
            try apply(input, to: output, outputRowStride: outputRowStride, strength: options.strength, progress: progress)
        case .guided:
            try applyGuided(input, to: output, outputRowStride: outputRowStride, options: options, progress: progress)
        case .tiled:
            if output == UnsafeMutablePointer(mutating: input.base) {
                // Later tiles read context rows that earlier bands would already have overwritten.
                let copy = (0..<input.height).flatMap { y in Array(UnsafeBufferPointer(start: input.base + y * input.rowStride, count: 3 * input.width)) }
                try copy.withUnsafeBufferPointer { c throws(Cancelled) in
                    try applyTiled(RGBImageView(base: c.baseAddress!, width: input.width, height: input.height, rowStride: 3 * input.width),
                                   to: output, outputRowStride: outputRowStride, options: options, progress: progress)
                }
            } else {
                try applyTiled(input, to: output, outputRowStride: outputRowStride, options: options, progress: progress)
            }
        }
    }
}
