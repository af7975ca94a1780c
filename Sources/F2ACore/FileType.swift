#if canImport(Glibc)
import Glibc
#endif

/// "a FIFO", "a directory" … for an error message about a path that should be
/// a regular file (weights and images are both refused when they are not:
/// reading a FIFO or a device would block or never end).
public func fileTypeName(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFIFO: return "a FIFO"
    case S_IFCHR: return "a character device"
    case S_IFBLK: return "a block device"
    case S_IFDIR: return "a directory"
    case S_IFSOCK: return "a socket"
    default: return "not a file"
    }
}
