import F2AImage
import Foundation

typealias Colour = (Float, Float, Float)

/// Minimal raster drawing for the run's PNGs (written with F2AImage.saveRGB8); text is
/// rendered by libvips (Pango), so labels are real words, not digits only.
struct Canvas {
    let width: Int, height: Int
    var pixels: [Float]

    enum Align { case start, centre, end }

    init(width: Int, height: Int, background: Colour = (1, 1, 1)) {
        self.width = width; self.height = height
        pixels = [Float](repeating: 0, count: width * height * 3)
        for i in 0..<(width * height) { pixels[3 * i] = background.0; pixels[3 * i + 1] = background.1; pixels[3 * i + 2] = background.2 }
    }

    /// Mixes `c` into the pixel at (x, y) with opacity `alpha`.
    mutating func blend(_ x: Int, _ y: Int, _ c: Colour, _ alpha: Float = 1) {
        guard x >= 0, y >= 0, x < width, y < height, alpha > 0 else { return }
        let k = 3 * (y * width + x), a = min(alpha, 1)
        pixels[k] += a * (c.0 - pixels[k]); pixels[k + 1] += a * (c.1 - pixels[k + 1]); pixels[k + 2] += a * (c.2 - pixels[k + 2])
    }

    mutating func fill(x: Int, y: Int, w: Int, h: Int, _ c: Colour) {
        for yy in y..<(y + h) { for xx in x..<(x + w) { blend(xx, yy, c) } }
    }

    /// A 2-pixel line; `dash` > 0 draws dashes of that length with gaps as long.
    mutating func line(_ x0: Double, _ y0: Double, _ x1: Double, _ y1: Double, _ c: Colour, dash: Double = 0) {
        let length = max(abs(x1 - x0), abs(y1 - y0))
        let n = max(1, Int(length.rounded(.up)))
        for i in 0...n {
            let t = Double(i) / Double(n)
            if dash > 0, Int(t * length / dash) % 2 == 1 { continue }
            let x = Int((x0 + t * (x1 - x0)).rounded()), y = Int((y0 + t * (y1 - y0)).rounded())
            blend(x, y, c); blend(x, y + 1, c)
        }
    }

    /// `text` in `size`-pixel sans, placed relative to (x, y) by `horizontal` and `vertical`
    /// (start = left/top); `rotated` reads bottom to top, as a y-axis label. Returns the width
    /// it took.
    @discardableResult
    mutating func text(_ text: String, x: Int, y: Int, size: Int = 12, _ c: Colour,
                       horizontal: Align = .start, vertical: Align = .start, rotated: Bool = false) throws -> Int {
        let r = try renderText(text, font: "sans \(size)")
        let (w, h) = rotated ? (r.height, r.width) : (r.width, r.height)
        let ox = x - (horizontal == .centre ? w / 2 : horizontal == .end ? w : 0)
        let oy = y - (vertical == .centre ? h / 2 : vertical == .end ? h : 0)
        for ty in 0..<h {
            for tx in 0..<w {
                // Rotated a quarter turn anticlockwise: the text's first column becomes the bottom row.
                let k = rotated ? tx * r.width + (r.width - 1 - ty) : ty * r.width + tx
                blend(ox + tx, oy + ty, c, r.mask[k])
            }
        }
        return w
    }

    /// Pastes an interleaved RGB image, nearest-neighbour scaled to w×h.
    mutating func paste(_ img: [Float], srcWidth: Int, srcHeight: Int, x: Int, y: Int, w: Int, h: Int) {
        for yy in 0..<h {
            let sy = min(srcHeight - 1, yy * srcHeight / h)
            for xx in 0..<w {
                let sx = min(srcWidth - 1, xx * srcWidth / w)
                let k = 3 * (sy * srcWidth + sx)
                blend(x + xx, y + yy, (min(max(img[k], 0), 1), min(max(img[k + 1], 0), 1), min(max(img[k + 2], 0), 1)))
            }
        }
    }
}

/// The curves of a run: what loss-curve.png shows.
struct RunCurves {
    var reconstruction: [(step: Int, value: Double)] = []
    var adversarial: [(step: Int, value: Double)] = []
    var psnr: [(step: Int, value: Double)] = []
    var ea: [(step: Int, value: Double)] = []
    var identityPSNR: Double?
    var identityEA: Double?

    init(reconstruction: [(Int, Double)], psnr: [(Int, Double)], identityPSNR: Double?) {
        self.reconstruction = reconstruction.map { ($0.0, $0.1) }
        self.psnr = psnr.map { ($0.0, $0.1) }
        self.identityPSNR = identityPSNR
    }

    /// Every curve from the run's log.jsonl (train lines: rec, adv; val lines: psnr, ea_psnr
    /// and the identity's); nil when there is none. A resumed run logs again the steps after
    /// its checkpoint: a later point replaces those of the same or later steps.
    init?(log path: String) {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        func append(_ series: inout [(step: Int, value: Double)], _ step: Int, _ value: Any?) {
            while let last = series.last, last.step >= step { series.removeLast() }
            if let v = value as? Double, v.isFinite { series.append((step, v)) }
        }
        for line in text.split(separator: "\n") {
            guard let o = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any],
                  let step = o["step"] as? Int else { continue }
            switch o["type"] as? String {
            case "train":
                append(&reconstruction, step, o["rec"])
                append(&adversarial, step, o["adv"])
            case "val":
                append(&psnr, step, o["psnr"])
                append(&ea, step, o["ea_psnr"])
                if let v = o["identity_psnr"] as? Double, v.isFinite { identityPSNR = v }
                if let v = o["identity_ea_psnr"] as? Double, v.isFinite { identityEA = v }
            default: continue
            }
        }
        // Without a discriminator the adversarial loss is logged as 0: no curve.
        if adversarial.allSatisfy({ $0.value == 0 }) { adversarial = [] }
        if reconstruction.isEmpty && psnr.isEmpty { return nil }
    }
}

enum Plots {
    static let ink: Colour = (0.15, 0.15, 0.15), grid: Colour = (0.88, 0.88, 0.88)
    static let blue: Colour = (0.12, 0.35, 0.85), orange: Colour = (0.93, 0.55, 0.1)
    static let red: Colour = (0.85, 0.15, 0.1), purple: Colour = (0.5, 0.2, 0.7)

    /// Rows of flash | model | ambient (like the seed's README figure), under column labels.
    static func sampleGrid(_ rows: [([Float], [Float], [Float], Int, Int)], to path: String, cellWidth: Int = 240) throws {
        guard !rows.isEmpty else { return }
        let heights = rows.map { max(1, $0.4 * cellWidth / $0.3) }
        let gap = 4, header = 26
        var c = Canvas(width: 3 * cellWidth + 4 * gap, height: header + heights.reduce(0, +) + gap * (rows.count + 1))
        for (j, label) in ["flash", "model", "ambient"].enumerated() {
            try c.text(label, x: gap + j * (cellWidth + gap) + cellWidth / 2, y: header / 2 + gap / 2, size: 15, ink,
                       horizontal: .centre, vertical: .centre)
        }
        var y = header + gap
        for (i, r) in rows.enumerated() {
            for (j, img) in [r.0, r.1, r.2].enumerated() {
                c.paste(img, srcWidth: r.3, srcHeight: r.4, x: gap + j * (cellWidth + gap), y: y, w: cellWidth, h: heights[i])
            }
            y += heights[i] + gap
        }
        try saveRGB8(c.pixels, width: c.width, height: c.height, to: path)
    }

    /// The run's losses (left, log scale) and validation PSNR and EA-PSNR (right, dB, the
    /// identity baseline — the flash image itself — dashed) against the step, with labelled
    /// axes and a legend. The curves come from the run's log.jsonl beside `path` when there
    /// is one (it also holds the adversarial loss and EA-PSNR), else from the arguments.
    static func lossCurve(train: [(Int, Double)], validation: [(Int, Double)], identityPSNR: Double? = nil, to path: String) throws {
        let log = ((path as NSString).deletingLastPathComponent as NSString).appendingPathComponent("log.jsonl")
        let curves = RunCurves(log: log) ?? RunCurves(reconstruction: train, psnr: validation, identityPSNR: identityPSNR)
        try lossCurve(curves, to: path)
    }

    static func lossCurve(_ curves: RunCurves, to path: String) throws {
        let w = 960, h = 540
        let left = 90, right = w - 90, top = 86, bottom = h - 62
        var c = Canvas(width: w, height: h)
        try c.text("Training losses and validation", x: w / 2, y: 10, size: 17, ink, horizontal: .centre)

        // Legend: one row under the title, only the curves there are.
        var legend: [(String, Colour, Double)] = [("reconstruction loss", blue, 0)]
        if !curves.adversarial.isEmpty { legend.append(("adversarial loss", orange, 0)) }
        legend += [("validation PSNR", red, 0), ("validation EA-PSNR", purple, 0)]
        if curves.identityPSNR != nil { legend.append(("identity: the flash image itself", ink, 5)) }
        var lx = left, ly = 50
        for (label, colour, dash) in legend {
            let width = 30 + (try renderText(label, font: "sans 13").width)
            if lx > left && lx + width > w - 20 { lx = left; ly += 20 }
            c.line(Double(lx), Double(ly), Double(lx + 24), Double(ly), colour, dash: dash)
            try c.text(label, x: lx + 30, y: ly, size: 13, ink, vertical: .centre)
            lx += width + 24
        }

        let maxStep = max(1, (curves.reconstruction + curves.adversarial + curves.psnr + curves.ea).map(\.step).max() ?? 1)
        func px(_ step: Int) -> Double { Double(left) + Double(step) / Double(maxStep) * Double(right - left) }

        // Left axis: the losses, log scale.
        let losses = (curves.reconstruction + curves.adversarial).map(\.value).filter { $0 > 0 }
        let logLo = log10(losses.min() ?? 0.01), logHi = log10(losses.max() ?? 1)
        let lossSpan = max(logHi - logLo, 0.1)
        let (lossLo, lossHi) = (logLo - 0.05 * lossSpan, logHi + 0.05 * lossSpan)
        func pyLoss(_ v: Double) -> Double {
            Double(bottom) - (log10(max(v, 1e-12)) - lossLo) / (lossHi - lossLo) * Double(bottom - top)
        }
        for tick in logTicks(lo: lossLo, hi: lossHi) {
            let y = pyLoss(tick)
            c.line(Double(left), y, Double(right), y, grid)
            c.line(Double(left - 5), y, Double(left), y, ink)
            try c.text(String(format: "%.3g", tick), x: left - 8, y: Int(y), size: 12, ink, horizontal: .end, vertical: .centre)
        }
        try c.text("loss (log scale)", x: 16, y: (top + bottom) / 2, size: 14, ink, horizontal: .start, vertical: .centre,
                   rotated: true)

        // Right axis: validation in dB.
        let decibels = (curves.psnr + curves.ea).map(\.value) + [curves.identityPSNR, curves.identityEA].compactMap { $0 }
        let dbMin = decibels.min() ?? 0, dbMax = decibels.max() ?? 1
        let dbPad = max(0.05 * (dbMax - dbMin), 0.25)
        let (dbLo, dbHi) = (dbMin - dbPad, dbMax + dbPad)
        func pyDB(_ v: Double) -> Double { Double(bottom) - (v - dbLo) / (dbHi - dbLo) * Double(bottom - top) }
        for tick in linearTicks(lo: dbLo, hi: dbHi) {
            let y = pyDB(tick)
            c.line(Double(right), y, Double(right + 5), y, ink)
            try c.text(String(format: "%g", tick), x: right + 8, y: Int(y), size: 12, ink, vertical: .centre)
        }
        try c.text("validation PSNR, EA-PSNR (dB)", x: w - 34, y: (top + bottom) / 2, size: 14, ink,
                   horizontal: .start, vertical: .centre, rotated: true)

        // Step axis.
        for tick in linearTicks(lo: 0, hi: Double(maxStep)) where tick >= 0 && tick <= Double(maxStep) {
            let x = px(Int(tick))
            c.line(x, Double(bottom), x, Double(bottom + 5), ink)
            try c.text(String(format: "%g", tick), x: Int(x), y: bottom + 8, size: 12, ink, horizontal: .centre)
        }
        try c.text("step", x: (left + right) / 2, y: bottom + 30, size: 14, ink, horizontal: .centre)

        // The frame, then the curves over the grid.
        c.line(Double(left), Double(top), Double(left), Double(bottom), ink)
        c.line(Double(right), Double(top), Double(right), Double(bottom), ink)
        c.line(Double(left), Double(bottom), Double(right), Double(bottom), ink)
        if let v = curves.identityPSNR { c.line(Double(left), pyDB(v), Double(right), pyDB(v), red, dash: 5) }
        if let v = curves.identityEA { c.line(Double(left), pyDB(v), Double(right), pyDB(v), purple, dash: 5) }
        func series(_ points: [(step: Int, value: Double)], _ colour: Colour, _ py: (Double) -> Double, markers: Bool) {
            for (i, p) in points.enumerated() {
                if i > 0 { c.line(px(points[i - 1].step), py(points[i - 1].value), px(p.step), py(p.value), colour) }
                if markers || points.count == 1 {
                    c.fill(x: Int(px(p.step)) - 2, y: Int(py(p.value)) - 2, w: 5, h: 5, colour)
                }
            }
        }
        series(curves.adversarial, orange, pyLoss, markers: false)
        series(curves.reconstruction, blue, pyLoss, markers: false)
        series(curves.ea, purple, pyDB, markers: true)
        series(curves.psnr, red, pyDB, markers: true)
        try saveRGB8(c.pixels, width: w, height: h, to: path)
    }

    /// Tick values for a log axis spanning 10^lo to 10^hi: the decades inside, or (less than
    /// two decades) 1, 2 and 5 times them, or the ends and their geometric middle.
    static func logTicks(lo: Double, hi: Double) -> [Double] {
        for multiples in [[1.0], [1.0, 2, 5], [1.0, 1.5, 2, 3, 5, 7]] {
            var ticks: [Double] = []
            for decade in Int(floor(lo))...Int(ceil(hi)) {
                for m in multiples {
                    let v = m * pow(10, Double(decade))
                    if log10(v) >= lo && log10(v) <= hi { ticks.append(v) }
                }
            }
            if ticks.count >= 3 { return ticks }
        }
        return [lo, (lo + hi) / 2, hi].map { pow(10, $0) }
    }

    /// About five round tick values (1, 2 or 5 times a power of ten apart) from lo to hi.
    static func linearTicks(lo: Double, hi: Double) -> [Double] {
        let span = max(hi - lo, 1e-9)
        let raw = span / 5, magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        var ticks: [Double] = []
        var v = (lo / step).rounded(.up) * step
        while v <= hi + 1e-9 * span {
            ticks.append(abs(v) < 1e-9 * step ? 0 : v)
            v += step
        }
        return ticks
    }
}
