import ArgumentParser
import F2AImage
import F2AModel
import Foundation

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate a model on flash/ambient pairs.",
        discussion: """
            DIR holds flash/NAME.png and ambient/NAME.png. Writes OUTDIR/NAME.png for every pair \
            and prints PSNR (8-bit RGB), SSIM (grayscale, scikit-image defaults) and EA-PSNR \
            (exposure-aligned PSNR: the PSNR after the one global gain in linear light that best \
            matches the ambient image, since a flash image does not tell the ambient exposure) of \
            the output and of the identity baseline (the flash image itself) against the ambient \
            image, and on how many pairs the output beats the identity in PSNR and in EA-PSNR.

            --names A,B scores only those pairs (NAME without its suffix); --split validation \
            scores the fixed faid32 validation split (data/faid32-split.md, the pairs f2a-train \
            never trains on), --split training every other pair of DIR.
            """)

    /// The two sides of the fixed faid32 split (DataSplit).
    enum Split: String, ExpressibleByArgument, CaseIterable {
        case validation, training
    }

    @Option(help: "Directory with flash/ and ambient/ subdirectories.") var pairs: String
    @Option(help: "Directory for the generated images.") var out: String
    @Option(help: "Only these pairs: comma-separated names (NAME of flash/NAME.png).") var names: String?
    @Option(help: "Only one side of the fixed faid32 split: validation or training.") var split: Split?
    @Flag(name: .shortAndLong, help: "Only the mean and the comparison with the identity, no row per pair.")
    var quiet = false
    @OptionGroup var model: ModelOptions
    @OptionGroup var apply: ApplyArguments

    var requestedNames: [String]? {
        names.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }

    func validate() throws {
        guard names == nil || split == nil else { throw ValidationError("--names and --split exclude each other") }
        if let requestedNames, requestedNames.isEmpty { throw ValidationError("--names needs at least one name") }
    }

    func run() throws { try withExitStatus(work) }

    /// The files of flash/ to score (sorted), as `--names` or `--split` select them.
    func selected(from files: [String], in flashDir: String) throws -> [String] {
        let stem = { (file: String) in (file as NSString).deletingPathExtension }
        if let wanted = requestedNames {
            let present = Set(files.map(stem))
            let missing = wanted.filter { !present.contains($0) }
            guard missing.isEmpty else {
                throw CommandFailure.failed("no pair named \(missing.joined(separator: ", ")) in \(flashDir)")
            }
            let set = Set(wanted)
            return files.filter { set.contains(stem($0)) }
        }
        guard let split else { return files }
        let validation = Set(DataSplit.faid32Validation)
        let chosen = files.filter { validation.contains(stem($0)) == (split == .validation) }
        if split == .validation {
            let missing = DataSplit.faid32Validation.filter { name in !files.contains { stem($0) == name } }
            if !missing.isEmpty && !chosen.isEmpty {
                writeStderr("warning: validation pairs not in \(flashDir): \(missing.joined(separator: ", "))\n")
            }
        }
        guard !chosen.isEmpty else {
            throw CommandFailure.failed("no pair of the \(split.rawValue) split in \(flashDir) "
                                        + "(the validation split: \(DataSplit.faid32Validation.joined(separator: ", ")))")
        }
        return chosen
    }

    func work() throws {
        ImageIO.removeTemporaryOnSignal()
        try model.reserveMatrixBuffer()
        do {
            _ = try MemoryBudget.configuredLimit()
            try ImageIO.start()
        } catch {
            throw CommandFailure.refused("\(error)")
        }
        let generator = try model.load()
        let fm = FileManager.default
        let flashDir = (pairs as NSString).appendingPathComponent("flash")
        let ambientDir = (pairs as NSString).appendingPathComponent("ambient")
        guard let files = try? fm.contentsOfDirectory(atPath: flashDir).filter({ !$0.hasPrefix(".") }).sorted(),
              !files.isEmpty else {
            throw CommandFailure.failed("no images in \(flashDir)")
        }
        let names = try selected(from: files, in: flashDir)
        var inputs = ProtectedInputs([try? model.path()].compactMap { $0 })
        for name in names {
            inputs.add((flashDir as NSString).appendingPathComponent(name))
            inputs.add((ambientDir as NSString).appendingPathComponent(name))
        }
        for name in names {
            do { try inputs.check(output: outputPath(name)) } catch { throw CommandFailure.refused(error.description) }
        }
        do { try fm.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            throw CommandFailure.failed("cannot create the output directory \(out): \(errorReason(error))")
        }
        print("name                      psnr   ssim     ea | identity psnr   ssim     ea")
        var sums = [Double](repeating: 0, count: 6)
        var improved = (psnr: 0, ea: 0)
        for name in names {
            let ambientPath = (ambientDir as NSString).appendingPathComponent(name)
            guard fm.fileExists(atPath: ambientPath) else { throw CommandFailure.failed("missing ambient image \(ambientPath)") }
            // Both images are checked from their headers before decoding, like apply's input.
            let check = { (width: Int, height: Int) throws in
                try generator.checkBeforeDecoding(width: width, height: height, options: apply.options)
            }
            let flash = try DecodedImage(path: (flashDir as NSString).appendingPathComponent(name), beforeDecoding: check)
            let ambient = try DecodedImage(path: ambientPath, beforeDecoding: check)
            guard flash.width == ambient.width, flash.height == ambient.height else {
                throw CommandFailure.failed("\(name): flash is \(flash.width)x\(flash.height), ambient \(ambient.width)x\(ambient.height)")
            }
            let w = flash.width, h = flash.height
            var result = [Float](repeating: 0, count: w * h * 3)
            let view = RGBImageView(base: UnsafePointer(flash.pixels.baseAddress!), width: w, height: h, rowStride: 3 * w)
            try result.withUnsafeMutableBufferPointer { try generator.apply(view, to: $0.baseAddress!, outputRowStride: 3 * w,
                                                                             options: apply.options) }
            let stem = (name as NSString).deletingPathExtension
            try saveRGB8(result, width: w, height: h, to: outputPath(name))
            let a = Array(ambient.pixels), f = Array(flash.pixels)
            let m = [Metrics.psnr(result, a), Metrics.ssimGray(result, a, width: w, height: h),
                     Metrics.exposureAlignedPSNR(result, a).psnr,
                     Metrics.psnr(f, a), Metrics.ssimGray(f, a, width: w, height: h),
                     Metrics.exposureAlignedPSNR(f, a).psnr]
            for i in m.indices { sums[i] += m[i] }
            if m[0] > m[3] { improved.psnr += 1 }
            if m[2] > m[5] { improved.ea += 1 }
            if !quiet { print(row(stem, m)) }
        }
        print(row("mean (\(names.count) pairs)", sums.map { $0 / Double(names.count) }))
        print("better than the identity on \(improved.psnr) of \(names.count) pairs (PSNR), \(improved.ea) of \(names.count) (EA-PSNR)")
    }

    func outputPath(_ name: String) -> String {
        (out as NSString).appendingPathComponent((name as NSString).deletingPathExtension + ".png")
    }

    func row(_ name: String, _ m: [Double]) -> String {
        let padded = name.count >= 24 ? String(name.prefix(24)) : name + String(repeating: " ", count: 24 - name.count)
        return padded + String(format: " %6.2f %6.4f %6.2f |       %6.2f %6.4f %6.2f", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}
