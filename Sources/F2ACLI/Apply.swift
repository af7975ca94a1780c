import ArgumentParser
import F2AImage
import F2AModel
#if canImport(Glibc)
import Glibc
#endif

struct Apply: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply the generator to one image.",
        discussion: """
            Reads any format libvips reads (JPEG, PNG, TIFF, WebP, HEIF …), applies the EXIF \
            orientation, runs the model and writes OUT in the format of its suffix, keeping the \
            input's band format (8/16-bit), alpha band and metadata (ICC, EXIF, XMP). OUT is \
            written to a temporary file and renamed, so it is never left half-written.

            IN = - reads the image from standard input (all of it, up to the memory limit); \
            OUT = - writes it to standard output, as --format (default jpeg), without a file. \
            A terminal is refused as either. On a terminal a progress line is shown on stderr \
            for runs longer than a quarter of a second (--quiet: none).
            """)

    @Argument(help: "Input image, or - for standard input.") var input: String
    @Argument(help: "Output image (format from the suffix), or - for standard output.") var output: String
    @OptionGroup var model: ModelOptions
    @OptionGroup var apply: ApplyArguments
    @Option(help: "Format written to standard output (OUT = -): jpeg, png, tiff or webp. Default: jpeg.")
    var format: OutputFormat?
    @Option(help: "JPEG/WebP quality 1 to 100 (0 = libvips default).") var quality: Int = 0
    @Flag(name: .shortAndLong, help: "No progress line and no timing; errors are still printed.") var quiet = false
    @Flag(help: "Print timing.") var verbose = false

    static let standardInput = "-", standardOutput = "-"

    var readsStandardInput: Bool { input == Self.standardInput }
    var writesStandardOutput: Bool { output == Self.standardOutput }

    func validate() throws {
        guard (0...100).contains(quality) else { throw ValidationError("--quality must be from 0 to 100") }
        guard !(quiet && verbose) else { throw ValidationError("--quiet and --verbose exclude each other") }
        if let format {
            guard writesStandardOutput else {
                throw ValidationError("--format sets the format written to standard output (OUT = -); "
                                      + "a file's format follows its suffix")
            }
            guard format != .same else { throw ValidationError("--format for standard output: jpeg, png, tiff or webp") }
        }
    }

    func run() throws { try withExitStatus(work) }

    func work() throws {
        let clock = ContinuousClock()
        let progress = ApplyProgress(enabled: !quiet && ApplyProgress.stderrIsTerminal)
        defer { progress.clear() }
        ImageIO.removeTemporaryOnSignal()
        let start = clock.now
        try model.reserveMatrixBuffer()
        do {
            // Image data on a terminal is garbage on the screen; a terminal as input waits for typing.
            if writesStandardOutput && isatty(1) != 0 {
                throw CommandFailure.refused("refusing to write image data to a terminal: redirect standard output "
                                             + "(f2a apply IN - > OUT.jpg) or name an output file")
            }
            if readsStandardInput && isatty(0) != 0 {
                throw CommandFailure.refused("standard input is a terminal: pipe an image into it "
                                             + "(f2a apply - OUT < IN.jpg) or name an input file")
            }
            if !writesStandardOutput {
                let read = (readsStandardInput ? [] : [input]) + [try? model.path()].compactMap { $0 }
                try ProtectedInputs(read).check(output: output)
            }
            _ = try MemoryBudget.configuredLimit()
            try ImageIO.start()   // an invalid $F2A_UNTRUSTED_LOADERS is a refusal like the memory setting
        } catch let failure as CommandFailure {
            throw failure
        } catch {
            throw CommandFailure.refused("\(error)")
        }
        let generator = try model.load()
        let options = apply.options
        let name = readsStandardInput ? "standard input" : "'\(input)'"
        var size = (width: 0, height: 0)
        let loaded: ContinuousClock.Instant, inferred: ContinuousClock.Instant
        // The same size check before either path decodes a pixel.
        let checkSize = { (width: Int, height: Int) throws in
            try generator.checkBeforeDecoding(width: width, height: height, options: options)
        }
        if apply.streams {
            let image = readsStandardInput
                ? try StreamedImage(readingToEndOf: 0, named: "standard input", limit: try MemoryBudget.available(),
                                    beforeDecoding: checkSize)
                : try StreamedImage(path: input, beforeDecoding: checkSize)
            size = (image.width, image.height)
            let plan = try StreamedGuided.read(image, named: name, generator: generator, options: options,
                                               reading: progress.reading)
            loaded = clock.now
            try StreamedGuided.finish(plan, progress: progress.model)
            inferred = clock.now
            let destination = writesStandardOutput ? "to standard output" : output
            let (map, map8) = plan.regionMaps(counting: MappedPixels(total: image.width * image.height,
                                                                     report: progress.writing(to: destination)))
            if writesStandardOutput {
                try image.write(to: 1, named: "standard output", suffix: (format ?? .jpeg).suffixes[0], quality: quality,
                                mapping: map, bytes: map8)
            } else {
                try image.save(to: output, quality: quality, mapping: map, bytes: map8)
            }
        } else {
            let image = readsStandardInput
                ? try DecodedImage(readingToEndOf: 0, named: "standard input", limit: try MemoryBudget.available(),
                                   beforeDecoding: checkSize)
                : try DecodedImage(path: input, beforeDecoding: checkSize)
            size = (image.width, image.height)
            loaded = clock.now
            // Again with the decoded pixels taken: under ulimit -v they count against what is left.
            try generator.checkMemory(width: image.width, height: image.height, options: options)
            // In place, into the decoded pixels: a second full-size float buffer
            // would cost 12 bytes per pixel (144 MB at 12 MP) for nothing.
            let pixels = image.pixels
            let view = RGBImageView(base: UnsafePointer(pixels.baseAddress!), width: image.width,
                                    height: image.height, rowStride: 3 * image.width)
            try generator.apply(view, to: pixels.baseAddress!, outputRowStride: 3 * image.width,
                                options: options, progress: progress.model)
            inferred = clock.now
            if writesStandardOutput {
                progress.show("writing to standard output")
                try image.write(UnsafeBufferPointer(pixels), to: 1, named: "standard output",
                                suffix: (format ?? .jpeg).suffixes[0], quality: quality)
            } else {
                progress.show("writing \(output)")
                try image.save(UnsafeBufferPointer(pixels), to: output, quality: quality)
            }
        }
        progress.clear()
        if verbose {
            let used = options.resolvedMode(width: size.width, height: size.height)
            let line = "\(size.width)x\(size.height) (\(used.rawValue)): load \(Readable.duration(loaded - start)), "
                + "model \(Readable.duration(inferred - loaded)), save \(Readable.duration(clock.now - inferred))"
            // Standard output carries the image then.
            if writesStandardOutput { writeStderr(line + "\n") } else { print(line) }
        }
    }
}
