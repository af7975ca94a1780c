import F2AImage
import Foundation

/// Minimal raster drawing for the run's PNGs (written with F2AImage.saveRGB8).
struct Canvas {
    let width: Int, height: Int
    var pixels: [Float]

    init(width: Int, height: Int, background: (Float, Float, Float) = (1, 1, 1)) {
        self.width = width; self.height = height
        pixels = [Float](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { pixels[3 * i] = background.0; pixels[3 * i + 1] = background.1; pixels[3 * i + 2] = background.2 }
    }

    mutating func set(_ x: Int, _ y: Int, _ c: (Float, Float, Float)) {
        guard x >= 0, y >= 0, x < width, y < height else { return }
        let k = 3 * (y * width + x)
        pixels[k] = c.0; pixels[k + 1] = c.1; pixels[k + 2] = c.2
    }

    mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ c: (Float, Float, Float)) {
        let n = max(1, Int(max(abs(x1 - x0), abs(y1 - y0)).rounded(.up)))
        for i in 0...n {
            let t = Double(i) / Double(n)
            let x = Int((x0 + t * (x1 - x0)).rounded()), y = Int((y0 + t * (y1 - y0)).rounded())
            set(x, y, c); set(x, y + 1, c)
        }
    }

    /// 3x5 bitmap glyphs for digits, '.', '-', 'k' (rows top to bottom, 3 bits each).
    static let glyphs: [Character: [UInt8]] = [
        "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7], "4": [5, 5, 7, 1, 1],
        "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 1, 1, 1], "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7],
        ".": [0, 0, 0, 0, 2], "-": [0, 0, 7, 0, 0], "k": [4, 5, 6, 5, 5], " ": [0, 0, 0, 0, 0],
    ]

    /// Draws `text` (digits, '.', '-', 'k') with its top-left corner at (x, y), `scale` pixels per dot.
    mutating func text(_ text: String, x: Int, y: Int, scale: Int = 2, _ c: (Float, Float, Float)) {
        var cx = x
        for ch in text {
            if let g = Canvas.glyphs[ch] {
                for (row, bits) in g.enumerated() {
                    for col in 0..<3 where bits & (4 >> col) != 0 {
                        for dy in 0..<scale { for dx in 0..<scale { set(cx + col * scale + dx, y + row * scale + dy, c) } }
                    }
                }
            }
            cx += 4 * scale
        }
    }

    /// Pastes an interleaved RGB image, nearest-neighbour scaled to w×h.
    mutating func paste(_ img: [Float], srcWidth: Int, srcHeight: Int, x: Int, y: Int, w: Int, h: Int) {
        for yy in 0..<h {
            let sy = min(srcHeight - 1, yy * srcHeight / h)
            for xx in 0..<w {
                let sx = min(srcWidth - 1, xx * srcWidth / w)
                let k = 3 * (sy * srcWidth + sx)
                set(x + xx, y + yy, (min(max(img[k], 0), 1), min(max(img[k + 1], 0), 1), min(max(img[k + 2], 0), 1)))
            }
        }
    }
}

enum Plots {
    /// Rows of flash | generated | ambient (like the seed's README figure).
    static func sampleGrid(_ rows: [([Float], [Float], [Float], Int, Int)], to path: String, cellWidth: Int = 240) throws {
        guard !rows.isEmpty else { return }
        let heights = rows.map { max(1, $0.4 * cellWidth / $0.3) }
        let gap = 4
        var c = Canvas(width: 3 * cellWidth + 4 * gap, height: heights.reduce(0, +) + gap * (rows.count + 1))
        var y = gap
        for (i, r) in rows.enumerated() {
            for (j, img) in [r.0, r.1, r.2].enumerated() {
                c.paste(img, srcWidth: r.3, srcHeight: r.4, x: gap + j * (cellWidth + gap), y: y, w: cellWidth, h: heights[i])
            }
            y += heights[i] + gap
        }
        try saveRGB8(c.pixels, width: c.width, height: c.height, to: path)
    }

    /// Training reconstruction loss (blue, log scale) and validation PSNR
    /// (red, linear; the identity baseline dashed) against the step. The
    /// extremes of each axis are printed in the series' colour (loss on the
    /// left, PSNR in dB on the right, last step bottom right).
    static func lossCurve(train: [(Int, Double)], validation: [(Int, Double)], identityPSNR: Double? = nil, to path: String) throws {
        let w = 800, h = 400, m = 40
        var c = Canvas(width: w, height: h)
        let axis: (Float, Float, Float) = (0.3, 0.3, 0.3)
        let blue: (Float, Float, Float) = (0.1, 0.3, 0.9), red: (Float, Float, Float) = (0.9, 0.15, 0.1)
        c.line(Double(m), Double(m), Double(m), Double(h - m), axis)
        c.line(Double(m), Double(h - m), Double(w - m), Double(h - m), axis)
        c.line(Double(w - m), Double(m), Double(w - m), Double(h - m), axis)
        let maxStep = max(train.last?.0 ?? 1, validation.last?.0 ?? 1, 1)
        c.text("\(maxStep)", x: w / 2, y: h - m + 8, axis)
        func px(_ s: Int) -> Double { Double(m) + Double(s) / Double(maxStep) * Double(w - 2 * m) }
        func series(_ pts: [(Int, Double)], _ colour: (Float, Float, Float), log: Bool, extra: [Double], labelX: Int, digits: Int) {
            let f: (Double) -> Double = { log ? Foundation.log10(max($0, 1e-8)) : $0 }
            let vals = (pts.map(\.1) + extra).filter { $0.isFinite }.map(f)
            guard !pts.isEmpty, let lo = vals.min(), let hi = vals.max() else { return }
            let span = max(hi - lo, 1e-9)
            func py(_ v: Double) -> Double { Double(h - m) - (f(v) - lo) / span * Double(h - 2 * m) }
            for (i, p) in pts.enumerated() where i > 0 {
                let a = pts[i - 1]
                guard a.1.isFinite, p.1.isFinite else { continue }
                c.line(px(a.0), py(a.1), px(p.0), py(p.1), colour)
            }
            if pts.count == 1, pts[0].1.isFinite { c.line(px(pts[0].0) - 3, py(pts[0].1), px(pts[0].0) + 3, py(pts[0].1), colour) }
            for e in extra where e.isFinite {
                var x = Double(m)
                while x < Double(w - m) { c.line(x, py(e), min(x + 6, Double(w - m)), py(e), colour); x += 12 }
            }
            let top = log ? pow(10, hi) : hi, bottom = log ? pow(10, lo) : lo
            c.text(String(format: "%.\(digits)f", top), x: labelX, y: m - 14, colour)
            c.text(String(format: "%.\(digits)f", bottom), x: labelX, y: h - m + 22, colour)
        }
        series(train, blue, log: true, extra: [], labelX: 2, digits: 4)
        series(validation, red, log: false, extra: identityPSNR.map { [$0] } ?? [], labelX: w - m - 20, digits: 2)
        try saveRGB8(c.pixels, width: w, height: h, to: path)
    }
}
