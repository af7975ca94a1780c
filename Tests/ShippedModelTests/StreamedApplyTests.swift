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
@Suite("Streamed guided mode")
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

    /// The streamed path through the plan's two passes.
    static func streamed(_ image: StreamedImage, generator: Generator, options: ApplyOptions) throws -> GuidedPlan {
        let plan = GuidedPlan(generator: generator, width: image.width, height: image.height, options: options)
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
        let x = try DecodedImage(path: a), y = try DecodedImage(path: b)
        #expect(x.width == y.width && x.height == y.height)
        return zip(x.pixels, y.pixels).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    @Test("Streamed output equals the whole-image path's (JPEG and PNG out, default and custom options)",
          arguments: [(".jpg", ApplyOptions()), (".png", ApplyOptions()),
                      (".png", ApplyOptions(mode: .guided, strength: 0.6, workingSize: 97))])
    func equalsWholeImage(suffix: String, options: ApplyOptions) throws {
        try ImageIO.start()
        let generator = try Self.generator()
        try Self.inDirectory { dir in
            try Self.whole(Self.flash, to: "\(dir)/whole\(suffix)", generator: generator, options: options)
            let image = try StreamedImage(path: Self.flash) { _, _ in }
            let plan = try Self.streamed(image, generator: generator, options: options)
            try image.save(to: "\(dir)/streamed\(suffix)", mapping: Self.map(plan))
            // The same float pixels through the same conversions: equal, not merely close.
            #expect(try Self.maxDifference("\(dir)/whole\(suffix)", "\(dir)/streamed\(suffix)") == 0)
            #expect(Self.files(in: dir) == ["streamed\(suffix)", "whole\(suffix)"])
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
