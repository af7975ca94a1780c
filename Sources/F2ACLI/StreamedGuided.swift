import F2AImage
import F2AModel
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Guided mode on a streamed photo, for `f2a apply` and `f2a batch`: pass 1 feeds the rows
/// to a `GuidedPlan`, which area-averages them to working size; the network runs on that
/// copy; pass 2 maps every region of the photo through the plan while the output is encoded.
/// The photo is never held as float: a 12 MP JPEG takes a tenth of the memory of the
/// whole-image path. Where the decoder shrinks on load (JPEG, WebP) pass 1 reads a copy of
/// at least `GuidedPlan.smallestSource` instead of the photo, for a fraction of the decoding
/// time; the output then differs from the whole-image path's by the decoder's scaling (a few
/// 8-bit codes at most). Otherwise the pixels are the same (`GuidedPlan` computes what
/// `Generator.apply` does in guided mode, bit for bit).
enum StreamedGuided {
    /// F2A_NO_STREAM=1 takes the whole-image path in guided mode too: a switch for the tests
    /// (Tests/cli), which check that both give the same output. Not a user setting.
    static let disabled: Bool = getenv("F2A_NO_STREAM").map { String(cString: $0) == "1" } ?? false

    /// Pass 1: the photo's rows into a new plan. `reading` gets the fraction of rows read;
    /// returning false cancels (throws `Cancelled`).
    static func read(_ image: StreamedImage, named name: String, generator: Generator, options: ApplyOptions,
                     reading: ((Double) -> Bool)? = nil) throws -> GuidedPlan {
        let smallest = GuidedPlan.smallestSource(width: image.width, height: image.height, options: options)
        let source = try image.shrinkFirstPass(toAtLeast: smallest, named: name)
        let plan = GuidedPlan(generator: generator, width: image.width, height: image.height, source: source,
                              options: options)
        var read = 0
        try image.readRows(named: name) { rows, stride, count in
            try plan.addRows(rows, rowStride: stride, count: count)
            read += count
            if let reading, !reading(Double(read) / Double(source.height)) { throw Cancelled() }
        }
        return plan
    }

    /// The network on the plan's working-size copy and the guided fit: the plan is then
    /// ready for pass 2 (`GuidedPlan.regionMap`). `progress` returning false cancels.
    static func finish(_ plan: GuidedPlan, progress: ((Double) -> Bool)? = nil) throws {
        do {
            try plan.finish(progress: progress)
        } catch .cancelled {
            throw Cancelled()
        }
    }
}

/// Pixels of pass 2 mapped so far, for its progress: libvips maps regions on its worker
/// threads while the encoder writes, so the count is shared under a lock.
final class MappedPixels: @unchecked Sendable {
    private let lock = NSLock()
    private var done = 0
    private let total: Int
    private let report: @Sendable (Double) -> Void

    /// `report` gets the fraction mapped, from whichever thread mapped the last region.
    init(total: Int, report: @escaping @Sendable (Double) -> Void) {
        self.total = max(total, 1); self.report = report
    }

    func add(_ count: Int) {
        lock.lock(); defer { lock.unlock() }
        done += count
        report(Double(done) / Double(total))
    }
}

extension GuidedPlan {
    /// `regionMap` and `regionMap8`, each region counted into `mapped`.
    func regionMaps(counting mapped: MappedPixels) -> (StreamedImage.RegionMap, StreamedImage.RegionMap8) {
        let float = regionMap, bytes = regionMap8
        return ({ input, inputRowStride, output, outputRowStride, x, y, width, height in
                    try float(input, inputRowStride, output, outputRowStride, x, y, width, height)
                    mapped.add(width * height)
                },
                { input, inputRowStride, output, outputRowStride, x, y, width, height in
                    try bytes(input, inputRowStride, output, outputRowStride, x, y, width, height)
                    mapped.add(width * height)
                })
    }

    /// Pass 2 as a streamed image's region map (any thread, any rectangle).
    var regionMap: StreamedImage.RegionMap {
        { [self] input, inputRowStride, output, outputRowStride, x, y, width, height in
            try apply(input, inputRowStride: inputRowStride, to: output, outputRowStride: outputRowStride,
                      x: x, y: y, width: width, height: height)
        }
    }

    /// `regionMap` on the bytes of an 8-bit photo, converted as the float route would.
    var regionMap8: StreamedImage.RegionMap8 {
        { [self] input, inputRowStride, output, outputRowStride, x, y, width, height in
            try apply(input, inputRowStride: inputRowStride, to: output, outputRowStride: outputRowStride,
                      x: x, y: y, width: width, height: height)
        }
    }
}
