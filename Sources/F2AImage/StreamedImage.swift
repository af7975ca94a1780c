import CVipsIO
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A photograph read in two passes over its rows, never held whole as float: what guided
/// mode needs (F2AModel's `GuidedPlan`), at a fraction of `DecodedImage`'s memory.
///
/// `readRows` hands the colour to a sink as sRGB float rows, top to bottom; `save` and
/// `write` decode the input again, compute each region of the output with a map on
/// libvips's worker threads as it is encoded, and write it like `DecodedImage.save` does
/// (interpretation, band format, alpha and metadata of the source; temporary file and
/// rename). The loader reads sequentially unless an EXIF orientation reorders the rows.
public final class StreamedImage {
    let handle: OpaquePointer

    public let width: Int
    public let height: Int
    public var hasAlpha: Bool { f2aio_has_alpha(handle) != 0 }
    /// The size of the rows `readRows` delivers: the image's, unless `shrinkFirstPass` shrank them.
    public private(set) var firstPassSize: (width: Int, height: Int)

    /// Rows of interleaved RGB float [0, 1], `firstPassSize.width` pixels each, `rowStride` floats apart.
    public typealias RowSink = (_ rows: UnsafePointer<Float>, _ rowStride: Int, _ count: Int) throws -> Void
    /// Writes the output of the rectangle (x, y, width, height) from the input's pixels
    /// there (interleaved RGB float, rows `inputRowStride` / `outputRowStride` floats apart).
    /// Called from several threads at once, on rectangles in any order.
    public typealias RegionMap = @Sendable (_ input: UnsafePointer<Float>, _ inputRowStride: Int,
                                            _ output: UnsafeMutablePointer<Float>, _ outputRowStride: Int,
                                            _ x: Int, _ y: Int, _ width: Int, _ height: Int) throws -> Void
    /// `RegionMap` on 8-bit pixels (strides in bytes), for 3-band 8-bit sRGB images: the input's
    /// bytes in, the output's out, converted as the float route converts them (value u is
    /// u · Float(1 / 255.0) to a map; UInt8(clamp(v · 255 + 0.5, 0, 255)), truncated, back), so
    /// that either map gives the same output.
    public typealias RegionMap8 = @Sendable (_ input: UnsafePointer<UInt8>, _ inputRowStride: Int,
                                             _ output: UnsafeMutablePointer<UInt8>, _ outputRowStride: Int,
                                             _ x: Int, _ y: Int, _ width: Int, _ height: Int) throws -> Void

    /// Opens any format libvips reads, header only (applying the EXIF orientation to the
    /// size). `beforeDecoding` gets the upright width and height and may refuse them before
    /// any pixel is decoded.
    public convenience init(path: String, beforeDecoding: (_ width: Int, _ height: Int) throws -> Void) throws {
        try ImageIO.start()
        try requireRegularFile(path)
        guard let h = f2aio_open_stream(path) else { throw ImageIO.lastError("cannot read image '\(path)'") }
        try self.init(opened: h, beforeDecoding: beforeDecoding)
    }

    /// Like `init(path:beforeDecoding:)`, from the encoded image on `fd` (standard input),
    /// read to its end and held in memory (at most `limit` bytes): it is decoded twice.
    public convenience init(readingToEndOf fd: Int32, named name: String, limit: Int,
                            beforeDecoding: (_ width: Int, _ height: Int) throws -> Void) throws {
        try ImageIO.start()
        let (data, count) = try readToEnd(of: fd, named: name, limit: limit)
        guard let h = f2aio_open_stream_buffer(data, count) else { throw ImageIO.lastError("cannot read \(name)") }
        try self.init(opened: h, beforeDecoding: beforeDecoding)
    }

    private init(opened h: OpaquePointer, beforeDecoding: (_ width: Int, _ height: Int) throws -> Void) throws {
        let w = Int(f2aio_width(h)), ht = Int(f2aio_height(h))
        do {
            try beforeDecoding(w, ht)
        } catch {
            f2aio_free(h)
            throw error
        }
        handle = h
        width = w
        height = ht
        firstPassSize = (w, ht)
    }

    deinit { f2aio_free(handle) }

    /// Lets pass 1 (`readRows`) read the image shrunk on load where its decoder makes a
    /// smaller copy for a fraction of the cost of the whole (JPEG: DCT scaling by 2, 4 or 8;
    /// WebP), at the largest such factor that keeps it at least `minimum`; other formats
    /// keep their own size. Returns the size `readRows` will deliver (`firstPassSize`).
    /// At most once, before `readRows`; `name` names the input in libvips's errors.
    public func shrinkFirstPass(toAtLeast minimum: (width: Int, height: Int),
                                named name: String) throws -> (width: Int, height: Int) {
        var w: Int32 = 0, h: Int32 = 0
        guard f2aio_stream_shrink(handle, Int32(minimum.width), Int32(minimum.height), &w, &h) == 0 else {
            throw ImageIO.lastError("cannot read \(name)")
        }
        firstPassSize = (Int(w), Int(h))
        return firstPassSize
    }

    /// Pass 1, once: every row to `sink`, top to bottom, one call at a time (on a libvips
    /// thread while this one waits). An error `sink` throws stops the pass and is rethrown
    /// as it is (`Cancelled` stays `Cancelled`); `name` names the input in libvips's errors.
    public func readRows(named name: String, into sink: RowSink) throws {
        // The sink is called only until f2aio_stream_rows returns.
        try withoutActuallyEscaping(sink) { sink in
            let context = Callback(sink)
            let status = withExtendedLifetime(context) {
                f2aio_stream_rows(handle, { user, rows, stride, count in
                    let context = Unmanaged<Callback<RowSink>>.fromOpaque(user!).takeUnretainedValue()
                    return context.call { try context.body(rows!, Int(stride), Int(count)) }
                }, Unmanaged.passUnretained(context).toOpaque())
            }
            try context.check(status, "cannot read \(name)")
        }
    }

    /// Pass 2, once, after `readRows`: the input decoded again, mapped region by region
    /// through `map` (or `map8` where the image is 3-band 8-bit sRGB: no float copy of it then)
    /// and saved to `path` (format from its suffix) like `DecodedImage.save`. Errors thrown by
    /// the map are rethrown as they are; no file is left behind on failure.
    public func save(to path: String, quality: Int = 0, mapping map: @escaping RegionMap,
                     bytes map8: RegionMap8? = nil) throws {
        let context = Callback(Maps(float: map, bytes: map8))
        let status = withExtendedLifetime(context) {
            f2aio_stream_save_like(handle, Self.mapTrampoline, map8 == nil ? nil : Self.map8Trampoline,
                                   Unmanaged.passUnretained(context).toOpaque(), path, Int32(quality))
        }
        try context.check(status, "cannot write image '\(path)'")
    }

    /// Like `save(to:quality:mapping:)`, encoded in memory in the format of `suffix` and
    /// written to `fd` (standard output); `name` names `fd` in errors.
    public func write(to fd: Int32, named name: String, suffix: String, quality: Int = 0,
                      mapping map: @escaping RegionMap, bytes map8: RegionMap8? = nil) throws {
        let context = Callback(Maps(float: map, bytes: map8))
        var data: UnsafeMutableRawPointer?
        var length = 0
        let status = withExtendedLifetime(context) {
            f2aio_stream_save_like_buffer(handle, Self.mapTrampoline, map8 == nil ? nil : Self.map8Trampoline,
                                          Unmanaged.passUnretained(context).toOpaque(), suffix, Int32(quality),
                                          &data, &length)
        }
        defer { if let data { f2aio_free_buffer(data) } }
        try context.check(status, "cannot encode the image for \(name)")
        guard let data else { throw ImageError("cannot encode the image for \(name)") }
        try writeAll(data, length: length, to: fd, named: name)
    }

    private struct Maps {
        let float: RegionMap
        let bytes: RegionMap8?
    }

    private static let mapTrampoline: f2aio_map_fn = { user, input, inStride, output, outStride, x, y, w, h in
        let context = Unmanaged<Callback<Maps>>.fromOpaque(user!).takeUnretainedValue()
        return context.call {
            try context.body.float(input!, Int(inStride), output!, Int(outStride), Int(x), Int(y), Int(w), Int(h))
        }
    }

    private static let map8Trampoline: f2aio_map8_fn = { user, input, inStride, output, outStride, x, y, w, h in
        let context = Unmanaged<Callback<Maps>>.fromOpaque(user!).takeUnretainedValue()
        return context.call {
            try context.body.bytes!(input!, Int(inStride), output!, Int(outStride), Int(x), Int(y), Int(w), Int(h))
        }
    }
}

/// A Swift closure behind a C callback: the first error it throws is kept (the callbacks may
/// run on several threads), libvips gets its message, and the C call then fails.
private final class Callback<Body>: @unchecked Sendable {
    let body: Body
    private let lock = NSLock()
    private var error: Error?

    init(_ body: Body) { self.body = body }

    func call(_ run: () throws -> Void) -> Int32 {
        do {
            try run()
            return 0
        } catch {
            lock.lock()
            if self.error == nil { self.error = error }
            lock.unlock()
            f2aio_set_error(String(describing: error))
            return -1
        }
    }

    /// After the C call: the callback's own error if it threw one, else libvips's.
    func check(_ status: Int32, _ context: String) throws {
        guard status != 0 else { return }
        lock.lock()
        let thrown = error
        lock.unlock()
        if let thrown {
            _ = f2aio_take_error()
            throw thrown
        }
        throw ImageIO.lastError(context)
    }
}
