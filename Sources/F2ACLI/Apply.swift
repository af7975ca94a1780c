import ArgumentParser
import F2AImage
import F2AModel

extension ApplyMode: ExpressibleByArgument {}

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
    @Option(help: "Blend with the input: 0 = input, 1 = full effect.") var strength: Float = 1
    @Option(help: "auto (full up to 1024 px on the long side, else guided), full, tiled or guided.")
    var mode: ApplyMode = .auto
    @Option(help: "Long side in pixels at which guided mode runs the network.") var workingSize: Int = 512
    @Option(help: "Tile side in pixels for tiled mode.") var tileSize: Int = 512
    @Option(help: "JPEG/WebP quality 1–100 (0 = libvips default).") var quality: Int = 0
    @Flag(help: "Print timing.") var verbose = false

    func validate() throws {
        guard strength.isFinite, (0...1).contains(strength) else { throw ValidationError("--strength must be in [0, 1]") }
        guard (16...8192).contains(workingSize) else { throw ValidationError("--working-size must be in 16...8192") }
        guard (256...4096).contains(tileSize) else { throw ValidationError("--tile-size must be in 256...4096") }
        guard (0...100).contains(quality) else { throw ValidationError("--quality must be in 0...100") }
        guard input != output else { throw ValidationError("refusing to overwrite the input with the output") }
    }

    func run() throws {
        let clock = ContinuousClock()
        let start = clock.now
        let generator = try model.load()
        let image = try DecodedImage(path: input)
        let loaded = clock.now
        // In place, into the decoded pixels: a second full-size float buffer
        // would cost 12 bytes per pixel (144 MB at 12 MP) for nothing.
        let pixels = image.pixels
        let view = RGBImageView(base: UnsafePointer(pixels.baseAddress!), width: image.width,
                                height: image.height, rowStride: 3 * image.width)
        try generator.apply(view, to: pixels.baseAddress!, outputRowStride: 3 * image.width,
                            options: ApplyOptions(mode: mode, strength: strength, workingSize: workingSize, tileSize: tileSize))
        let inferred = clock.now
        try image.save(UnsafeBufferPointer(pixels), to: output, quality: quality)
        if verbose {
            let used = ApplyOptions(mode: mode, workingSize: workingSize, tileSize: tileSize).resolvedMode(width: image.width, height: image.height)
            print("\(image.width)x\(image.height) (\(used.rawValue)): load \(loaded - start), model \(inferred - loaded), save \(clock.now - inferred)")
        }
    }
}
