/// Tiled full-resolution mode: the image goes through the network in
/// overlapping tiles whose outputs are cross-faded over the overlap, one
/// band of tile rows at a time, so memory is bounded by the tile size and the
/// image width, not the image area.
struct TileGrid {
    /// Tile origins along one axis: stride `tile - overlap`, the last tile
    /// flush with the end so no tile is ever smaller than the image allows.
    static func origins(length: Int, tile: Int, overlap: Int) -> [Int] {
        guard length > tile else { return [0] }
        var list: [Int] = []
        var o = 0
        while o + tile < length { list.append(o); o += tile - overlap }
        list.append(length - tile)
        return list
    }

    /// Cross-fade weight of position i in a tile of size n, on each side that
    /// has a neighbour: zero over the outer quarter of the overlap (pixels
    /// whose receptive field reaches the tile's artificial edge), then a
    /// linear ramp over the middle half. Neighbours' weights sum to 1.
    @inline(__always)
    static func weight(_ i: Int, _ n: Int, overlap: Int, rampStart: Bool, rampEnd: Bool) -> Float {
        let margin = overlap / 4, ramp = Float(max(1, overlap - 2 * margin))
        var w: Float = 1
        if rampStart { w = min(w, max(0, (Float(i - margin) + 0.5) / ramp)) }
        if rampEnd { w = min(w, max(0, (Float(n - 1 - i - margin) + 0.5) / ramp)) }
        return w
    }
}

extension Generator {
    func applyTiled(_ input: RGBImageView, to output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                    options: ApplyOptions, progress: ((Double) -> Bool)?) throws(Cancelled) {
        let W = input.width, H = input.height
        let tile = options.tileSize, overlap = min(options.tileOverlap, tile / 2)
        let xs = TileGrid.origins(length: W, tile: tile, overlap: overlap)
        let ys = TileGrid.origins(length: H, tile: tile, overlap: overlap)
        let tw = min(tile, W), th = min(tile, H)
        // Output rows of a band stay in these accumulators until no later
        // tile touches them; rows are relative to `top`.
        var acc = [Float](repeating: 0, count: th * W * 3)
        var wsum = [Float](repeating: 0, count: th * W)
        var top = 0
        var tileIn = [Float](repeating: 0, count: th * tw * 3)
        var tileOut = [Float](repeating: 0, count: th * tw * 3)
        let total = Double(xs.count * ys.count)
        var done = 0.0
        for (j, y0) in ys.enumerated() {
            for (i, x0) in xs.enumerated() {
                for y in 0..<th {
                    let src = input.base + (y0 + y) * input.rowStride + 3 * x0
                    for k in 0..<(3 * tw) { tileIn[y * tw * 3 + k] = src[k] }
                }
                let base = done
                try tileIn.withUnsafeBufferPointer { t throws(Cancelled) in
                    try tileOut.withUnsafeMutableBufferPointer { o throws(Cancelled) in
                        try apply(RGBImageView(base: t.baseAddress!, width: tw, height: th, rowStride: 3 * tw),
                                  to: o.baseAddress!, outputRowStride: 3 * tw, strength: 1,
                                  progress: progress.map { p in { p((base + $0) / total) } })
                    }
                }
                done += 1
                for y in 0..<th {
                    let wy = TileGrid.weight(y, th, overlap: overlap, rampStart: j > 0, rampEnd: j < ys.count - 1)
                    let row = y0 + y - top
                    for x in 0..<tw {
                        let wgt = wy * TileGrid.weight(x, tw, overlap: overlap, rampStart: i > 0, rampEnd: i < xs.count - 1)
                        let a = (row * W + x0 + x)
                        wsum[a] += wgt
                        for c in 0..<3 { acc[3 * a + c] += wgt * tileOut[(y * tw + x) * 3 + c] }
                    }
                }
            }
            // Rows above the next band are final.
            let next = j + 1 < ys.count ? ys[j + 1] : H
            for y in top..<next {
                let r = y - top
                let src = input.base + y * input.rowStride, dst = output + y * outputRowStride
                for x in 0..<W {
                    let inv = 1 / wsum[r * W + x]
                    for c in 0..<3 {
                        let f = Generator.sanitize(src[3 * x + c])
                        let g = acc[(r * W + x) * 3 + c] * inv
                        dst[3 * x + c] = min(max(f + options.strength * (g - f), 0), 1)
                    }
                }
            }
            // Shift the still-open rows to the top of the accumulators.
            let keep = top + th - next
            if keep > 0 {
                let shift = next - top
                for k in 0..<(keep * W * 3) { acc[k] = acc[k + shift * W * 3] }
                for k in 0..<(keep * W) { wsum[k] = wsum[k + shift * W] }
            }
            for k in (max(keep, 0) * W * 3)..<acc.count { acc[k] = 0 }
            for k in (max(keep, 0) * W)..<wsum.count { wsum[k] = 0 }
            top = next
        }
    }
}
