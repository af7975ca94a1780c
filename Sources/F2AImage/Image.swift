import CVipsIO
import F2ACore
#if canImport(Glibc)
import Glibc
#endif

/// Errors from decoding or encoding image files, with libvips's message.
public struct ImageError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Starts libvips once per process; safe to call repeatedly.
public enum ImageIO {
    private static let started: Bool = f2aio_init("f2a") == 0

    public static func start() throws(ImageError) {
        guard started else { throw ImageError("cannot start libvips: " + String(cString: f2aio_take_error())) }
    }

    static func lastError(_ context: String) -> ImageError {
        let message = String(cString: f2aio_take_error())
        return ImageError(message.isEmpty ? context : "\(context): \(message)")
    }
}

/// A decoded photograph: interleaved sRGB float RGB in [0, 1] plus what is
/// needed to write a result back like the source (format, alpha, metadata).
public final class DecodedImage {
    let handle: OpaquePointer

    public let width: Int
    public let height: Int
    public var hasAlpha: Bool { f2aio_has_alpha(handle) != 0 }

    /// Decodes any format libvips reads and applies EXIF orientation. `beforeDecoding` gets
    /// the (upright) width and height from the header and may refuse them, before any pixel
    /// is decoded: a small file can declare gigapixels.
    public convenience init(path: String, beforeDecoding: (_ width: Int, _ height: Int) throws -> Void) throws {
        try ImageIO.start()
        try requireRegularFile(path)
        guard let h = f2aio_open(path) else { throw ImageIO.lastError("cannot read image '\(path)'") }
        try self.init(opened: h, name: "'\(path)'", beforeDecoding: beforeDecoding)
    }

    /// Like `init(path:beforeDecoding:)`, from the encoded image on file descriptor `fd`
    /// (standard input: `f2a apply -`), read to its end. More than `limit` bytes is an
    /// error: the bytes are held in memory while the image is decoded.
    public convenience init(readingToEndOf fd: Int32, named name: String, limit: Int,
                            beforeDecoding: (_ width: Int, _ height: Int) throws -> Void) throws {
        try ImageIO.start()
        let (data, count) = try readToEnd(of: fd, named: name, limit: limit)
        guard let h = f2aio_open_buffer(data, count) else { throw ImageIO.lastError("cannot read \(name)") }
        try self.init(opened: h, name: name, beforeDecoding: beforeDecoding)
    }

    /// Takes over `h` (from f2aio_open or f2aio_open_buffer) and decodes it once
    /// `beforeDecoding` accepts its size.
    private init(opened h: OpaquePointer, name: String, beforeDecoding: (_ width: Int, _ height: Int) throws -> Void) throws {
        let w = Int(f2aio_width(h)), ht = Int(f2aio_height(h))
        do {
            try beforeDecoding(w, ht)
        } catch {
            f2aio_free(h)
            throw error
        }
        guard f2aio_decode(h) == 0 else {
            let error = ImageIO.lastError("cannot read \(name)")
            f2aio_free(h)
            throw error
        }
        handle = h
        width = w
        height = ht
    }

    public convenience init(path: String) throws(ImageError) {
        do {
            try self.init(path: path) { _, _ in }
        } catch let error as ImageError {
            throw error
        } catch {
            throw ImageError("\(error)")
        }
    }

    deinit { f2aio_free(handle) }


    /// The pixels, width*height*3 floats, row-major, owned by this image.
    public var pixels: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: f2aio_pixels(handle), count: width * height * 3)
    }

    /// Writes `rgb` (same size, [0, 1]) like the source: interpretation, band
    /// format, alpha band and metadata. Atomic (temporary file + rename).
    public func save(_ rgb: UnsafeBufferPointer<Float>, to path: String, quality: Int = 0) throws(ImageError) {
        precondition(rgb.count == width * height * 3)
        guard f2aio_save_like(handle, rgb.baseAddress!, path, Int32(quality)) == 0 else {
            throw ImageIO.lastError("cannot write image '\(path)'")
        }
    }

    /// Like `save(_:to:quality:)`, encoded in memory in the format of `suffix` (".jpg",
    /// ".png" …) and written to file descriptor `fd` (standard output: `f2a apply IN -`).
    /// No file is created; `name` names `fd` in errors.
    public func write(_ rgb: UnsafeBufferPointer<Float>, to fd: Int32, named name: String, suffix: String,
                      quality: Int = 0) throws(ImageError) {
        precondition(rgb.count == width * height * 3)
        var data: UnsafeMutableRawPointer?
        var length = 0
        guard f2aio_save_like_buffer(handle, rgb.baseAddress!, suffix, Int32(quality), &data, &length) == 0,
              let data else {
            throw ImageIO.lastError("cannot encode the image for \(name)")
        }
        defer { f2aio_free_buffer(data) }
        try writeAll(data, length: length, to: fd, named: name)
    }
}

// libvips opens whatever it is given: a FIFO or a terminal blocks it forever, /dev/zero
// feeds it without end. Photographs are regular files.
func requireRegularFile(_ path: String) throws(ImageError) {
    var st = stat()
    guard stat(path, &st) == 0 else { throw ImageError("cannot read image '\(path)': \(String(cString: strerror(errno)))") }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        throw ImageError("cannot read image '\(path)': not a regular file (\(fileTypeName(st.st_mode)))")
    }
}

/// The bytes on `fd` up to its end, in memory from malloc (the f2aio_open*_buffer openers
/// take them over). More than `limit` bytes is an error: they are held while the image is
/// decoded.
func readToEnd(of fd: Int32, named name: String, limit: Int) throws(ImageError) -> (UnsafeMutableRawPointer, Int) {
    var capacity = 1 << 20, count = 0
    guard var data = malloc(capacity) else { throw ImageError("cannot read \(name): out of memory") }
    while true {
        if count == capacity {
            guard capacity < limit else {
                free(data)
                throw ImageError("cannot read \(name): it holds more than \(limit >> 20) MB, the memory limit "
                                 + "(F2A_MAX_MEMORY_MB, ulimit -v)")
            }
            capacity = min(2 * capacity, limit)
            guard let grown = realloc(data, capacity) else {
                free(data)
                throw ImageError("cannot read \(name): out of memory")
            }
            data = grown
        }
        let n = read(fd, data + count, capacity - count)
        if n < 0 && errno == EINTR { continue }
        if n < 0 {
            let reason = String(cString: strerror(errno))
            free(data)
            throw ImageError("cannot read \(name): \(reason)")
        }
        if n == 0 { break }
        count += n
    }
    guard count > 0 else {
        free(data)
        throw ImageError("cannot read \(name): it is empty")
    }
    return (data, count)
}

func writeAll(_ data: UnsafeMutableRawPointer, length: Int, to fd: Int32, named name: String) throws(ImageError) {
    var done = 0
    while done < length {
        let n = Glibc.write(fd, data + done, length - done)
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else {
            throw ImageError("cannot write to \(name): \(String(cString: strerror(n < 0 ? errno : EIO)))")
        }
        done += n
    }
}

/// The temporary file the savers write `path` to before renaming it into place (in the same
/// directory, a short name whatever the length of `path`'s); nil when `path` has no suffix.
public func temporaryImagePath(_ path: String, pid: Int32) -> String? {
    guard let c = f2aio_temporary_path(path, pid) else { return nil }
    defer { f2aio_free_string(c) }
    return String(cString: c)
}

/// `text` rendered by libvips (Pango) in `font` ("sans 12": size in pixels): a coverage mask,
/// one value per pixel, 0 for the background and 1 for ink, `width` × `height`, row-major.
public func renderText(_ text: String, font: String = "sans 12") throws(ImageError) -> (mask: [Float], width: Int, height: Int) {
    try ImageIO.start()
    var width: Int32 = 0, height: Int32 = 0
    guard let bytes = f2aio_text(text, font, &width, &height) else { throw ImageIO.lastError("cannot render text") }
    defer { f2aio_free_buffer(bytes) }
    let count = Int(width) * Int(height)
    let mask = (0..<count).map { Float(bytes[$0]) / 255 }
    return (mask, Int(width), Int(height))
}

/// SHA-256 of the file at `path`, as `sha256sum` prints it (64 lowercase hex digits).
public func sha256Hex(ofFile path: String) throws(ImageError) -> String {
    guard let c = f2aio_sha256_file(path) else { throw ImageIO.lastError("cannot checksum '\(path)'") }
    defer { f2aio_free_string(c) }
    return String(cString: c)
}

extension ImageIO {
    /// Returns the heap's free pages to the system: between the files of a batch, so that
    /// memory does not creep up with each (libvips's worker threads free into malloc arenas
    /// of their own, which keep the pages otherwise).
    public static func releaseFreeMemory() { f2aio_release_free_memory() }

    /// From now on a SIGINT, SIGTERM, SIGHUP or SIGXFSZ during a save removes its temporary
    /// file before the process dies of it. For commands that save one file at a time.
    public static func removeTemporaryOnSignal() { f2aio_remove_temporary_on_signal() }
}

/// Writes interleaved RGB float [0, 1] as 8-bit sRGB (format from the suffix).
public func saveRGB8(_ rgb: [Float], width: Int, height: Int, to path: String) throws(ImageError) {
    precondition(rgb.count == width * height * 3)
    try ImageIO.start()
    let status = rgb.withUnsafeBufferPointer { f2aio_save_rgb8($0.baseAddress!, Int32(width), Int32(height), path) }
    guard status == 0 else { throw ImageIO.lastError("cannot write image '\(path)'") }
}
