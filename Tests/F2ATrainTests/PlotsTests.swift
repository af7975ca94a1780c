import F2AImage
import Foundation
import Testing
@testable import F2ATrain

@Suite("Plots")
struct PlotsTests {
    /// Fraction of dark pixels (any channel below 0.5) in a rectangle of an RGB image.
    func ink(_ rgb: [Float], width: Int, x: Int, y: Int, w: Int, h: Int) -> Double {
        var dark = 0
        for yy in y..<(y + h) {
            for xx in x..<(x + w) where (0..<3).contains(where: { rgb[3 * (yy * width + xx) + $0] < 0.5 }) { dark += 1 }
        }
        return Double(dark) / Double(w * h)
    }

    func decode(_ path: String) throws -> DecodedImage { try DecodedImage(path: path) }

    @Test("the run log gives every curve; a resumed run's later lines replace the earlier ones")
    func curvesFromLog() throws {
        let dir = tempDir("plot-log")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lines = [
            #"{"type":"val","step":0,"psnr":15.0,"ea_psnr":17.0,"identity_psnr":14.0,"identity_ea_psnr":16.5}"#,
            #"{"type":"train","step":10,"rec":0.5,"adv":0.7,"d":0.6}"#,
            #"{"type":"train","step":20,"rec":0.4,"adv":0.69,"d":0.6}"#,
            #"{"type":"val","step":20,"psnr":null,"ea_psnr":17.5,"identity_psnr":14.0,"identity_ea_psnr":16.5}"#,
            // Resumed from the checkpoint at step 10: step 20 again.
            #"{"type":"train","step":20,"rec":0.3,"adv":0.68,"d":0.6}"#,
            "not json",
        ]
        try lines.joined(separator: "\n").write(toFile: dir + "/log.jsonl", atomically: true, encoding: .utf8)
        let c = try #require(RunCurves(log: dir + "/log.jsonl"))
        #expect(c.reconstruction.map(\.step) == [10, 20] && c.reconstruction.last?.value == 0.3)
        #expect(c.adversarial.count == 2)
        #expect(c.psnr.map(\.step) == [0])   // null (identical images) is no point
        #expect(c.ea.map(\.step) == [0, 20])
        #expect(c.identityPSNR == 14 && c.identityEA == 16.5)

        let noGAN = #"{"type":"train","step":10,"rec":0.5,"adv":0,"d":0}"#
        try noGAN.write(toFile: dir + "/log.jsonl", atomically: true, encoding: .utf8)
        #expect(RunCurves(log: dir + "/log.jsonl")?.adversarial.isEmpty == true)
        #expect(RunCurves(log: dir + "/missing.jsonl") == nil)
    }

    @Test("loss-curve.png has a title, a legend, axis labels and tick labels in text")
    func lossCurveText() throws {
        let dir = ProcessInfo.processInfo.environment["F2A_PLOT_DIR"] ?? tempDir("plot-curve")
        defer { if ProcessInfo.processInfo.environment["F2A_PLOT_DIR"] == nil { try? FileManager.default.removeItem(atPath: dir) } }
        var lines: [String] = []
        for step in stride(from: 0, through: 1000, by: 250) {
            lines.append(#"{"type":"val","step":\#(step),"psnr":\#(14 + Double(step) / 500),"ea_psnr":\#(16 + Double(step) / 400),"identity_psnr":14.2,"identity_ea_psnr":16.1}"#)
        }
        for step in stride(from: 10, through: 1000, by: 10) {
            lines.append(#"{"type":"train","step":\#(step),"rec":\#(0.3 * exp(-Double(step) / 300) + 0.02),"adv":\#(0.7 - Double(step) / 5000),"d":0.6}"#)
        }
        try lines.joined(separator: "\n").write(toFile: dir + "/log.jsonl", atomically: true, encoding: .utf8)
        try Plots.lossCurve(train: [], validation: [], to: dir + "/loss-curve.png")
        let img = try decode(dir + "/loss-curve.png")
        #expect(img.width == 960 && img.height == 540)
        let px = Array(img.pixels)
        #expect(ink(px, width: 960, x: 330, y: 8, w: 300, h: 24) > 0.03)    // title
        #expect(ink(px, width: 960, x: 120, y: 40, w: 300, h: 20) > 0.03)   // legend
        #expect(ink(px, width: 960, x: 10, y: 200, w: 24, h: 140) > 0.03)   // left axis label, rotated
        #expect(ink(px, width: 960, x: 920, y: 150, w: 30, h: 240) > 0.03)  // right axis label, rotated
        #expect(ink(px, width: 960, x: 440, y: 508, w: 80, h: 24) > 0.02)   // "step"
    }

    @Test("samples.png labels its columns flash, model, ambient")
    func sampleColumns() throws {
        let dir = ProcessInfo.processInfo.environment["F2A_PLOT_DIR"] ?? tempDir("plot-samples")
        defer { if ProcessInfo.processInfo.environment["F2A_PLOT_DIR"] == nil { try? FileManager.default.removeItem(atPath: dir) } }
        let p = syntheticPair("a", width: 40, height: 30, seed: 3)
        try Plots.sampleGrid([(p.flash, p.flash, p.ambient, 40, 30)], to: dir + "/samples.png")
        let img = try decode(dir + "/samples.png")
        #expect(img.width == 3 * 240 + 16 && img.height == 26 + 180 + 8)
        let px = Array(img.pixels)
        for column in 0..<3 {
            #expect(ink(px, width: img.width, x: 4 + column * 244 + 80, y: 4, w: 80, h: 18) > 0.03)
        }
    }

    @Test("ticks are round numbers inside the range")
    func ticks() {
        #expect(Plots.linearTicks(lo: 0, hi: 1000) == [0, 200, 400, 600, 800, 1000])
        #expect(Plots.linearTicks(lo: 13.7, hi: 16.2) == [14, 14.5, 15, 15.5, 16])
        #expect(Plots.logTicks(lo: -3, hi: 0) == [0.001, 0.01, 0.1, 1])
        let narrow = Plots.logTicks(lo: log10(0.02), hi: log10(0.3))
        #expect(narrow.count >= 3 && narrow.allSatisfy { $0 >= 0.02 && $0 <= 0.3 })
    }
}
