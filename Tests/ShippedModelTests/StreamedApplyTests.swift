import Foundation
import Testing
import F2ACore
import F2AImage
import F2AModel
#if canImport(Glibc)
import Glibc
#endif

/// Guided mode streamed from the file (`StreamedImage` + `GuidedPlan`, what `f2a apply` and
/// `f2a batch` run by default) against the whole-image path (`DecodedImage` +
/// `Generator.apply`), on the bundled example with the shipped model. Tests/cli checks the
/// command line's two paths on more kinds of input (16-bit, alpha, CMYK, grey, EXIF rotation).
// Serialized: libvips keeps one error buffer for the whole process, so a test that takes its
// error (the callback's) could take another's libvips reason running beside it.
@Suite("Streamed guided mode", .serialized)
struct StreamedApplyTests {
    static let root = ShippedModelTests.root
    static let flash = "\(root)/examples/flash.jpg"

    static func generator() throws -> Generator {
        try Generator(file: WeightsFile.read(path: "\(root)/weights/default.f2aw"))
    }

    /// A fresh directory, removed with everything in it after `body`.
    static func inDirectory(_ body: (String) throws -> Void) throws {
        var template = Array("/tmp/f2a-stream-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        let dir = String(cString: try #require(made))
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try body(dir)
    }

    static func files(in dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted()
    }

    /// The whole-image path: decode, guided mode in place, save like the source.
    static func whole(_ input: String, to output: String, generator: Generator, options: ApplyOptions) throws {
        let image = try DecodedImage(path: input)
        let pixels = image.pixels
        try generator.apply(RGBImageView(base: UnsafePointer(pixels.baseAddress!), width: image.width,
                                         height: image.height, rowStride: 3 * image.width),
                            to: pixels.baseAddress!, outputRowStride: 3 * image.width, options: options)
        try image.save(UnsafeBufferPointer(pixels), to: output)
    }

    /// The streamed path through the plan's two passes, as `f2a apply` runs it: pass 1 shrunk
    /// on load where the format allows (`GuidedPlan.smallestSource`).
    static func streamed(_ image: StreamedImage, generator: Generator, options: ApplyOptions) throws -> GuidedPlan {
        let smallest = GuidedPlan.smallestSource(width: image.width, height: image.height, options: options)
        let source = try image.shrinkFirstPass(toAtLeast: smallest, named: "the test image")
        let plan = GuidedPlan(generator: generator, width: image.width, height: image.height, source: source,
                              options: options)
        try image.readRows(named: "the test image") { rows, stride, count in
            try plan.addRows(rows, rowStride: stride, count: count)
        }
        try plan.finish()
        return plan
    }

    static func map(_ plan: GuidedPlan) -> StreamedImage.RegionMap {
        { input, inStride, output, outStride, x, y, width, height in
            try plan.apply(input, inputRowStride: inStride, to: output, outputRowStride: outStride,
                           x: x, y: y, width: width, height: height)
        }
    }

    static func maxDifference(_ a: String, _ b: String) throws -> Float {
        try difference(a, b).max
    }

    /// Largest and mean absolute difference of two images' values, in [0, 1] units.
    static func difference(_ a: String, _ b: String) throws -> (max: Float, mean: Float) {
        let x = try DecodedImage(path: a), y = try DecodedImage(path: b)
        #expect(x.width == y.width && x.height == y.height)
        var largest: Float = 0, sum: Double = 0
        for (u, v) in zip(x.pixels, y.pixels) {
            largest = max(largest, abs(u - v))
            sum += Double(abs(u - v))
        }
        return (largest, Float(sum / Double(x.pixels.count)))
    }

    /// `source` copied to `dir` as PNG (no shrink on load) or as a JPEG scaled by `scale`.
    static func copy(_ source: String, to path: String, scale: Double = 1) throws {
        let image = try DecodedImage(path: source)
        if scale == 1 {
            try image.save(UnsafeBufferPointer(image.pixels), to: path)
            return
        }
        let (w, h) = (Int((Double(image.width) * scale).rounded()), Int((Double(image.height) * scale).rounded()))
        var pixels = [Float](repeating: 0, count: 3 * w * h)
        for y in 0..<h {
            for x in 0..<w {
                let sx = min(image.width - 1, Int(Double(x) / scale)), sy = min(image.height - 1, Int(Double(y) / scale))
                for c in 0..<3 { pixels[3 * (y * w + x) + c] = image.pixels[3 * (sy * image.width + sx) + c] }
            }
        }
        try saveRGB8(pixels, width: w, height: h, to: path)
    }

    @Test("Streamed output equals the whole-image path's where nothing shrinks on load (JPEG and PNG out, default and custom options)",
          arguments: [("flash.jpg", ".jpg", ApplyOptions()), ("flash.jpg", ".png", ApplyOptions()),
                      ("flash.png", ".png", ApplyOptions(mode: .guided, strength: 0.6, workingSize: 97))])
    func equalsWholeImage(input: String, suffix: String, options: ApplyOptions) throws {
        try ImageIO.start()
        let generator = try Self.generator()
        try Self.inDirectory { dir in
            let source = input == "flash.png" ? "\(dir)/flash.png" : Self.flash
            if input == "flash.png" { try Self.copy(Self.flash, to: source) }
            try Self.whole(source, to: "\(dir)/whole\(suffix)", generator: generator, options: options)
            let image = try StreamedImage(path: source) { _, _ in }
            let plan = try Self.streamed(image, generator: generator, options: options)
            #expect(image.firstPassSize == (image.width, image.height))
            try image.save(to: "\(dir)/streamed\(suffix)", mapping: Self.map(plan))
            // The same float pixels through the same conversions: equal, not merely close.
            #expect(try Self.maxDifference("\(dir)/whole\(suffix)", "\(dir)/streamed\(suffix)") == 0)
            #expect(Self.files(in: dir).filter { $0 != "flash.png" } == ["streamed\(suffix)", "whole\(suffix)"])
        }
    }

    /// Shrunk on load, the network sees a copy that differs from the full decode's average by
    /// the decoder's scaling; measured at most 10/255 on single pixels and 0.06–0.33/255 on
    /// average (12 and 24 MP JPEGs, the faid32 validation flash images as JPEGs).
    static let shrunkTolerance: (max: Float, mean: Float) = (16 / 255, 0.5 / 255)

    @Test("Where the JPEG or WebP decoder shrinks on load, pass 1 reads the largest shrink that keeps twice the working size, and the output stays close to the whole-image path's",
          arguments: [("flash.jpg", 1.0, 97, (270, 360)), ("flash.jpg", 1.0, 64, (135, 180)),
                      ("big.jpg", 2.0, 256, (540, 720)), ("big.webp", 2.0, 256, (540, 720))])
    func shrunkOnLoad(input: String, scale: Double, working: Int, firstPass: (Int, Int)) throws {
        try ImageIO.start()
        let generator = try Self.generator()
        let options = ApplyOptions(mode: .guided, workingSize: working)
        try Self.inDirectory { dir in
            let source = scale == 1 ? Self.flash : "\(dir)/\(input)"
            if scale != 1 { try Self.copy(Self.flash, to: source, scale: scale) }
            try Self.whole(source, to: "\(dir)/whole.png", generator: generator, options: options)
            let image = try StreamedImage(path: source) { _, _ in }
            let plan = try Self.streamed(image, generator: generator, options: options)
            #expect(image.firstPassSize == firstPass)
            #expect(plan.sourceWidth == firstPass.0 && plan.sourceHeight == firstPass.1)
            let smallest = GuidedPlan.smallestSource(width: image.width, height: image.height, options: options)
            #expect(firstPass.0 >= smallest.width && firstPass.1 >= smallest.height)
            #expect(firstPass.0 / 2 < smallest.width || firstPass.1 / 2 < smallest.height)
            try image.save(to: "\(dir)/streamed.png", mapping: Self.map(plan))
            let d = try Self.difference("\(dir)/whole.png", "\(dir)/streamed.png")
            #expect(d.max <= Self.shrunkTolerance.max && d.mean <= Self.shrunkTolerance.mean,
                    "max \(d.max * 255)/255, mean \(d.mean * 255)/255")
        }
    }

    @Test("From a file descriptor (standard input) into memory (standard output): the same image")
    func fromDescriptor() throws {
        try ImageIO.start()
        let generator = try Self.generator()
        try Self.inDirectory { dir in
            try Self.whole(Self.flash, to: "\(dir)/whole.png", generator: generator, options: ApplyOptions())
            let input = open(Self.flash, O_RDONLY)
            try #require(input >= 0)
            let image = try StreamedImage(readingToEndOf: input, named: "the input", limit: 1 << 30) { _, _ in }
            close(input)
            let plan = try Self.streamed(image, generator: generator, options: ApplyOptions())
            let output = open("\(dir)/streamed.png", O_WRONLY | O_CREAT | O_EXCL, 0o644)
            try #require(output >= 0)
            try image.write(to: output, named: "the output", suffix: ".png", mapping: Self.map(plan))
            close(output)
            #expect(try Self.maxDifference("\(dir)/whole.png", "\(dir)/streamed.png") == 0)
        }
    }

    @Test("A JPEG truncated half-way fails in pass 1 with libvips's reason, before anything is written")
    func truncated() throws {
        try ImageIO.start()
        let generator = try Self.generator()
        try Self.inDirectory { dir in
            let bytes = try Data(contentsOf: URL(fileURLWithPath: Self.flash))
            try bytes.prefix(bytes.count / 2).write(to: URL(fileURLWithPath: "\(dir)/half.jpg"))
            // The header is whole: opening succeeds, decoding does not.
            let image = try StreamedImage(path: "\(dir)/half.jpg") { _, _ in }
            let error = #expect(throws: ImageError.self) {
                _ = try Self.streamed(image, generator: generator, options: ApplyOptions())
            }
            #expect(error?.description.hasPrefix("cannot read the test image: ") == true, "\(String(describing: error))")
            #expect(Self.files(in: dir) == ["half.jpg"])
        }
    }

    struct Refused: Error {}

    @Test("A callback's error comes back as it is; a failed pass 2 leaves no output and no temporary file")
    func callbackErrors() throws {
        try ImageIO.start()
        let generator = try Self.generator()
        try Self.inDirectory { dir in
            let early = try StreamedImage(path: Self.flash) { _, _ in }
            #expect(throws: Cancelled.self) {
                try early.readRows(named: "flash") { _, _, _ in throw Cancelled() }
            }
            let image = try StreamedImage(path: Self.flash) { _, _ in }
            let plan = try Self.streamed(image, generator: generator, options: ApplyOptions())
            let half = image.height / 2
            #expect(throws: Refused.self) {
                try image.save(to: "\(dir)/out.jpg") { input, inStride, output, outStride, x, y, width, height in
                    if y > half { throw Refused() }
                    try plan.apply(input, inputRowStride: inStride, to: output, outputRowStride: outStride,
                                   x: x, y: y, width: width, height: height)
                }
            }
            #expect(Self.files(in: dir).isEmpty)
        }
    }

    @Test("beforeDecoding sees the size and may refuse it")
    func refusesBeforeDecoding() throws {
        try ImageIO.start()
        var seen: (Int, Int)?
        #expect(throws: Refused.self) {
            _ = try StreamedImage(path: Self.flash) { width, height in
                seen = (width, height)
                throw Refused()
            }
        }
        #expect(seen?.0 == 540 && seen?.1 == 720)
    }
}
