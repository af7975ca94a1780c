/// A batch of small images laid out as one image, so that the 3x3 kernel runs once on
/// all of them instead of once per image.
///
/// Why: `f2a_conv3x3` tiles one image into 4x4 output tiles, 8 tile columns per group.
/// An 8x8 image is 2x2 tiles in a group of 8x2 slots (4x the work), a 16x16 image half
/// a group; and each call pays its own thread-pool round trips for a few dozen tiles.
/// The trainer's deep levels are exactly that: 8 images of 8² to 16² at batch 8, crop 128.
///
/// Layout: a grid of `columns` x `rows` images, image k at row k / columns, column
/// k % columns, one zero row and column between neighbours. A 3x3 convolution with zero
/// padding 1 only reaches one pixel past an image's edge, and there it reads the zero
/// gutter (or the kernel's own padding at the mosaic's edge), so every pixel inside an
/// image comes out exactly as it would alone; the gutters' outputs are discarded.
struct BatchMosaic {
    let images: Int, height: Int, width: Int
    let columns: Int, rows: Int

    /// Size of the mosaic image.
    var mosaicHeight: Int { rows * (height + 1) - 1 }
    var mosaicWidth: Int { columns * (width + 1) - 1 }

    /// Images of at most this many pixels are run as a mosaic (batches of 2 or more).
    /// `f2a-train bench`, crop 128, batch 8, ms per step with limits of none / 16² / 32² /
    /// 64²: width 0.25: 274-277 / 230-240 / 238-242 / 234-246; width 1.0: 2450-2456 / 2138-2185
    /// / 2176-2181 / 2325-2385 (the 64² mosaics of 128-256 channels are copies of 16-33 MB);
    /// the frozen VGG-16 encoder at crop 160, batch 4 (levels 4 and 5 at 20² and 10²): 316 /
    /// - / 251 / 261.
    static let maxImagePixels = 32 * 32

    /// The grid with the fewest tile slots of `f2a_conv3x3` (groups of 8 tile columns),
    /// or nil when the batch should run image by image.
    init?(images n: Int, height h: Int, width w: Int) {
        guard n > 1, h * w <= Self.maxImagePixels else { return nil }
        func slots(_ height: Int, _ width: Int) -> Int { ((width + 3) / 4 + 7) / 8 * 8 * ((height + 3) / 4) }
        var best = (cost: Int.max, columns: 1)
        for c in 1...n {
            let r = (n + c - 1) / c
            let cost = slots(r * (h + 1) - 1, c * (w + 1) - 1)
            if cost < best.cost { best = (cost, c) }
        }
        images = n; height = h; width = w
        columns = best.columns
        rows = (n + best.columns - 1) / best.columns
    }

    /// Offset of image k's pixel (0, 0) in a mosaic plane.
    private func origin(_ k: Int) -> Int { (k / columns) * (height + 1) * mosaicWidth + (k % columns) * (width + 1) }

    /// The channel-concatenation of `sources` ([N, c_i, H, W] each) as the mosaic
    /// [sum c_i, mosaicHeight, mosaicWidth], gutters zero. The channel planes are shared out
    /// on the thread pool; each is zeroed and filled by one thread while it is in cache.
    func pack(_ sources: [Tensor]) -> [Float] {
        let plane = mosaicHeight * mosaicWidth, channels = sources.reduce(0) { $0 + $1.c }
        // Channel c is channel c − firsts[i] of the last source i with firsts[i] <= c.
        var firsts: [Int] = [], total = 0
        for s in sources { firsts.append(total); total += s.c }
        return [Float](unsafeUninitializedCapacity: channels * plane) { o, initialized in
            initialized = channels * plane
            let out = o.baseAddress!
            withBasePointers(sources, image: 0) { bases in
                parallelChunks(channels, work: channels * plane) { range in
                    for c in range {
                        let i = firsts.lastIndex { $0 <= c }!, sc = sources[i].c, sourceChannel = c - firsts[i]
                        let dst = out + c * plane
                        dst.update(repeating: 0, count: plane)
                        for k in 0..<images {
                            let src = bases[i]! + ((k * sc + sourceChannel) * height) * width, at = dst + origin(k)
                            for y in 0..<height { (at + y * mosaicWidth).update(from: src + y * width, count: width) }
                        }
                    }
                }
            }
        }
    }

    /// The images of a mosaic of `channels` planes, as [N, channels, H, W]; where `gate`
    /// (the same shape) is given, y = gate > 0 ? y : 0 on the way (`Activation.reluGate`).
    /// The images' planes are shared out on the thread pool.
    func unpack(_ mosaic: UnsafePointer<Float>, channels: Int, gate: UnsafePointer<Float>? = nil,
                into out: UnsafeMutablePointer<Float>) {
        let plane = mosaicHeight * mosaicWidth
        parallelChunks(images * channels, work: images * channels * height * width) { range in
            for p in range {
                let (k, c) = p.quotientAndRemainder(dividingBy: channels)
                let src = mosaic + c * plane + origin(k), at = p * height * width
                for y in 0..<height {
                    let row = at + y * width
                    (out + row).update(from: src + y * mosaicWidth, count: width)
                    if let gate { Activation.reluGate(out + row, by: gate + row, count: width) }
                }
            }
        }
    }
}
