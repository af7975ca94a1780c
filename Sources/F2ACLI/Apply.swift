import ArgumentParser
import F2AImage
import F2AModel

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the generator to one image.",
        discussion: """
            Reads any format libvips reads (JPEG, PNG, TIFF, WebP, HEIF …), applies the EXIF \
            orientation, runs the model and writes OUT in the format of its suffix, keeping the \
            input's band format (8/16-bit), alpha band and metadata (ICC, EXIF, XMP). OUT is \
            written to a temporary file and renamed, so it is never left half-written.
            """)

    @Argument(help: "Input image.") var input: String
    @Argument(help: "Output image (format from the suffix).") var output: String
    @OptionGroup var model: ModelOptions
    @OptionGroup var apply: ApplyArguments
    @Option(help: "JPEG/WebP quality 1–100 (0 = libvips default).") var quality: Int = 0
    @Flag(help: "Print timing.") var verbose = false

    func validate() throws {
        guard (0...100).contains(quality) else { throw ValidationError("--quality must be in 0...100") }
    }

    func run() throws { try withExitStatus(work) }

    func work() throws {
        let clock = ContinuousClock()
        ImageIO.removeTemporaryOnSignal()
        let start = clock.now
        do {
            try ProtectedInputs([input] + [try? model.path()].compactMap { $0 }).check(output: output)
            _ = try MemoryBudget.configuredLimit()
            try ImageIO.start()   // an invalid $F2A_UNTRUSTED_LOADERS is a refusal like the memory setting
        } catch {
            throw CommandFailure.refused("\(error)")
        }
        let generator = try model.load()
        let image = try DecodedImage(path: input) { width, height in
            try generator.checkMemory(width: width, height: height, options: apply.options, withFloatCopy: true)
        }
        let loaded = clock.now
        // Again with the decoded pixels taken: under ulimit -v they count against what is left.
        try generator.checkMemory(width: image.width, height: image.height, options: apply.options)
        // In place, into the decoded pixels: a second full-size float buffer
        // would cost 12 bytes per pixel (144 MB at 12 MP) for nothing.
        let pixels = image.pixels
        let view = RGBImageView(base: UnsafePointer(pixels.baseAddress!), width: image.width,
                                height: image.height, rowStride: 3 * image.width)
        try generator.apply(view, to: pixels.baseAddress!, outputRowStride: 3 * image.width,
                            options: apply.options)
        let inferred = clock.now
        try image.save(UnsafeBufferPointer(pixels), to: output, quality: quality)
        if verbose {
            let used = apply.options.resolvedMode(width: image.width, height: image.height)
            print("\(image.width)x\(image.height) (\(used.rawValue)): load \(loaded - start), model \(inferred - loaded), save \(clock.now - inferred)")
        }
    }
}
