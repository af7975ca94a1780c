#if canImport(Glibc)
import Glibc
#endif

/// Largest weights file read (a width-1.0 float32 model is 117 MB): a larger
/// (or sparse) file is refused before its size is allocated, since a failed
/// allocation would abort the host process.
let maxWeightsFileBytes = 1 << 30

/// Whole-file read without Foundation (the C library links the Swift runtime
/// statically and keeps Foundation out of it).
func readFileBytes(path: String) throws(WeightsError) -> [UInt8] {
    // O_NONBLOCK: opening a FIFO for reading blocks until a writer appears
    // (forever, in a host process); on a regular file the flag does nothing.
    let fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
    guard fd >= 0 else { throw .unreadable(path: path, reason: errnoMessage()) }
    defer { close(fd) }
    var st = stat()
    guard fstat(fd, &st) == 0 else { throw .unreadable(path: path, reason: errnoMessage()) }
    guard (st.st_mode & S_IFMT) == S_IFREG else {
        throw .unreadable(path: path, reason: "not a regular file (\(fileTypeName(st.st_mode)))")
    }
    let size = Int(st.st_size)
    guard size <= maxWeightsFileBytes else {
        throw .malformed("the file is \(size) bytes, over the limit of \(maxWeightsFileBytes >> 20) MB for a weights file")
    }
    var bytes = [UInt8](repeating: 0, count: size)
    var done = 0
    while done < size {
        let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, size - done) }
        if n < 0 {
            if errno == EINTR { continue }
            throw .unreadable(path: path, reason: errnoMessage())
        }
        if n == 0 { break }
        done += n
    }
    if done < size { bytes.removeLast(size - done) }
    return bytes
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

/// "a FIFO", "a directory" … for an error message about a file that should be regular.
func fileTypeName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFIFO: return "a FIFO"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFDIR: return "a directory"
    case S_IFSOCK: return "a socket"
    default: return "not a file"
    }
}
