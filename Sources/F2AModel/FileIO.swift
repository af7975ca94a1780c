import F2ACore
#if canImport(Glibc)
import Glibc
#endif

/// Largest weights file read (a width-1.0 float32 model is 117 MB): a larger
/// (or sparse) file is refused before its size is allocated, since a failed
/// allocation would abort the host process.
let maxWeightsFileBytes = 1 << 30

/// Memory from malloc, which can fail: a Swift array's allocation failure aborts the
/// process (the host, for the C ABI and the vips operation), so every buffer whose size
/// a weights file decides is taken from here first.
final class FallibleBuffer {
    let base: UnsafeMutableRawPointer
    let count: Int

    init?(count: Int) {
        guard count >= 0, let base = malloc(max(count, 1)) else { return nil }
        self.base = base
        self.count = count
    }

    deinit { free(base) }

    var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
}

/// Random access to the bytes of a weights file without holding them all: an open
/// regular file read piecewise (its size known from fstat before anything is
/// allocated), or bytes already in memory (the fuzzer, the tests).
final class WeightsSource {
    let size: Int
    private let fd: Int32
    private let path: String
    private let memory: [UInt8]?

    init(bytes: [UInt8]) {
        size = bytes.count; fd = -1; path = ""; memory = bytes
    }

    init(path: String) throws(WeightsError) {
        // O_NONBLOCK: opening a FIFO for reading blocks until a writer appears
        // (forever, in a host process); on a regular file the flag does nothing.
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { throw .unreadable(path: path, reason: errnoMessage()) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            let reason = errnoMessage()
            close(fd)
            throw .unreadable(path: path, reason: reason)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw .unreadable(path: path, reason: "not a regular file (\(fileTypeName(st.st_mode)))")
        }
        let size = Int(st.st_size)
        guard size <= maxWeightsFileBytes else {
            close(fd)
            throw .malformed("the file is \(size) bytes, over the limit of \(maxWeightsFileBytes >> 20) MB for a weights file")
        }
        self.fd = fd; self.size = size; self.path = path; memory = nil
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Fills `into` from `offset`; the caller has checked that the range lies within `size`.
    func read(at offset: Int, into: UnsafeMutableRawBufferPointer) throws(WeightsError) {
        if let memory {
            memory.withUnsafeBytes { into.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + into.count)])) }
            return
        }
        var done = 0
        while done < into.count {
            let n = pread(fd, into.baseAddress! + done, into.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw .unreadable(path: path, reason: errnoMessage())
            }
            // The file shrank after fstat: report it as the truncation it is.
            guard n > 0 else {
                throw .truncated(what: "file (changed while read)", needed: UInt64(offset + into.count),
                                 available: UInt64(offset + done))
            }
            done += n
        }
    }

    /// `count` bytes from `offset` in a buffer that may fail to allocate (.outOfMemory).
    func buffer(at offset: Int, count: Int, what: String) throws(WeightsError) -> FallibleBuffer {
        guard let buffer = FallibleBuffer(count: count) else { throw .outOfMemory(what: what, bytes: count) }
        try read(at: offset, into: UnsafeMutableRawBufferPointer(start: buffer.base, count: count))
        return buffer
    }
}

/// Writes `bytes` to a temporary file beside `path`, fsyncs it and renames it
/// over `path`: readers see either the old file or the complete new one.
func writeFileAtomically(path: String, bytes: [UInt8]) throws(WeightsError) {
    let tmp = path + ".tmp-\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw .unwritable(path: tmp, reason: errnoMessage()) }
    var done = 0
    while done < bytes.count {
        let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + done, bytes.count - done) }
        if n < 0 {
            if errno == EINTR { continue }
            let reason = errnoMessage()
            close(fd); unlink(tmp)
            throw .unwritable(path: tmp, reason: reason)
        }
        done += n
    }
    guard fsync(fd) == 0, close(fd) == 0 else {
        let reason = errnoMessage()
        unlink(tmp)
        throw .unwritable(path: tmp, reason: reason)
    }
    guard rename(tmp, path) == 0 else {
        let reason = errnoMessage()
        unlink(tmp)
        throw .unwritable(path: path, reason: "rename: " + reason)
    }
}

func errnoMessage() -> String { String(cString: strerror(errno)) }


