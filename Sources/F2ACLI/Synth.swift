import ArgumentParser
import F2AImage
import F2ASynth
import Foundation

extension FlashMode: ExpressibleByArgument {}

struct Synth: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Render synthetic, perfectly aligned flash/ambient training pairs.",
        discussion: """
            Writes OUTDIR/flash/NAME.png, OUTDIR/ambient/NAME.png (the trainer's layout) and \
            OUTDIR/params/NAME.json (the pair's scene, lights and camera settings), NAME = 000000, \
            000001, … Pair i is renderPair(seed: pairSeed(base: SEED, index: i)), so the output is \
            deterministic for a seed. --flash-mode: 'only' = the flash light alone (like FAID's \
            _flash images), 'as-shot' = flash photo as taken (flash + ambient), 'mix' = either, per pair. \
            Prints the rendering speed (pairs/s, one thread, without PNG encoding).
            """)

    @Argument(help: "Output directory.") var outdir: String
    @Option(help: "Number of pairs.") var count: Int
    @Option(help: "Image size WIDTHxHEIGHT.") var size: String = "256x192"
    @Option(help: "Base random seed.") var seed: UInt64 = 1
    @Option(help: "Directory of photographs to crop textures from (e.g. ambient images).") var textures: String?
    @Option(name: .customLong("flash-mode"), help: "only, as-shot or mix.") var flashMode: FlashMode = .only
    @Option(help: "Sensor-noise multiplier (0 = none).") var noise: Float = 1
    @Option(help: "Maximum blur sigma in pixels (0 = none).") var blur: Float = 0.7
    @Flag(name: .customLong("no-antialias"), help: "Skip 2x2 supersampling of edge pixels (faster, jaggier).")
    var noAntialias = false
    @Flag(help: "Also write OUTDIR/preview.png: the first pairs (up to 6), flash | ambient.") var preview = false

    func parsedSize() throws -> (Int, Int) {
        let parts = size.lowercased().split(separator: "x")
        guard parts.count == 2, let w = Int(parts[0]), let h = Int(parts[1]) else {
            throw ValidationError("--size must look like 256x192, got '\(size)'")
        }
        return (w, h)
    }

    func options(library: TextureLibrary?) throws -> SynthOptions {
        let (w, h) = try parsedSize()
        let o = SynthOptions(width: w, height: h, flashMode: flashMode, textures: library, noise: noise, maxBlur: blur,
                             quality: RenderQuality(antialias: !noAntialias))
        do { try o.validate() } catch { throw ValidationError(error.description) }
        return o
    }

    func validate() throws {
        guard count >= 1 else { throw ValidationError("--count must be at least 1, got \(count)") }
        guard count <= 10_000_000 else { throw ValidationError("--count must be at most 10000000") }
        _ = try options(library: nil)
        if let t = textures {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: t, isDirectory: &isDir), isDir.boolValue else {
                throw ValidationError("--textures: '\(t)' is not a directory")
            }
        }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: outdir, isDirectory: &isDir), !isDir.boolValue {
            throw ValidationError("'\(outdir)' exists and is not a directory")
        }
    }

    func run() throws { try withExitStatus(work) }

    func work() throws {
        ImageIO.removeTemporaryOnSignal()
        var library: TextureLibrary? = nil
        var inputs = ProtectedInputs()
        if let t = textures {
            for name in (try? FileManager.default.contentsOfDirectory(atPath: t)) ?? [] {
                inputs.add((t as NSString).appendingPathComponent(name))
            }
            do { library = try TextureLibrary(directory: t) } catch { throw CommandFailure.failed("--textures: \(error)") }
            print("textures: \(library!.photos.count) photos from \(t)")
        }
        let opts = try options(library: library)
        let fm = FileManager.default
        let dirs = ["flash", "ambient", "params"].map { (outdir as NSString).appendingPathComponent($0) }
        for d in dirs { try fm.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        var previewPairs: [SynthPair] = []
        var renderSeconds = 0.0, renderCPU = 0.0
        let start = Date()
        let every = max(1, count / 10)
        for i in 0..<count {
            let name = String(format: "%06d", i)
            let t0 = Date(), c0 = threadCPUSeconds()
            let pair = renderPair(seed: pairSeed(base: seed, index: i), options: opts)
            renderSeconds += Date().timeIntervalSince(t0)
            renderCPU += threadCPUSeconds() - c0
            let paths = [dirs[0] + "/" + name + ".png", dirs[1] + "/" + name + ".png", dirs[2] + "/" + name + ".json"]
            for path in paths {
                do { try inputs.check(output: path) } catch { throw CommandFailure.refused(error.description) }
            }
            try saveRGB8(pair.flash, width: pair.width, height: pair.height, to: paths[0])
            try saveRGB8(pair.ambient, width: pair.width, height: pair.height, to: paths[1])
            try encoder.encode(pair.parameters).write(to: URL(fileURLWithPath: paths[2]))
            if preview && previewPairs.count < 6 { previewPairs.append(pair) }
            if (i + 1) % every == 0 || i + 1 == count {
                print(String(format: "%7d/%d  %.1f pairs/s rendering", i + 1, count, Double(i + 1) / renderSeconds))
            }
        }
        let total = Date().timeIntervalSince(start)
        print(String(format: "rendered %d pairs of %dx%d in %.2f s: %.1f pairs/s wall, %.1f pairs/s per CPU-second " +
                     "(one thread, rendering only); %.1f pairs/s wall including writing PNG + JSON",
                     count, opts.width, opts.height, renderSeconds, Double(count) / renderSeconds,
                     Double(count) / renderCPU, Double(count) / total))
        if preview {
            let sheet = contactSheet(previewPairs)
            let path = (outdir as NSString).appendingPathComponent("preview.png")
            do { try inputs.check(output: path) } catch { throw CommandFailure.refused(error.description) }
            try saveRGB8(sheet.rgb, width: sheet.width, height: sheet.height, to: path)
            print("wrote \(path) (\(previewPairs.count) pairs, flash | ambient)")
        }
    }
}

/// CPU time consumed by the calling thread, seconds (unaffected by other
/// processes competing for the cores).
func threadCPUSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
