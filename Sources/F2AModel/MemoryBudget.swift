#if canImport(Glibc)
import Glibc
#endif

/// How much memory one apply may still take, so that a too-large image is refused with an
/// error instead of an allocation failure (which Swift cannot recover from: the process
/// aborts). The smaller of
///  - $F2A_MAX_MEMORY_MB if set, else half of the physical memory (the C ABI's rule), and
///  - when the address space is limited (`ulimit -v`, RLIMIT_AS), what is left of it now.
public enum MemoryBudget {
    public static let configuredLimit: Int = {
        if let env = getenv("F2A_MAX_MEMORY_MB"), let mb = Int(String(cString: env)), mb > 0 { return mb << 20 }
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        return pages > 0 && size > 0 ? pages * size / 2 : 4 << 30
    }()

    /// RLIMIT_AS minus the current virtual size, or nil when the address space is unlimited.
    public static func addressSpaceHeadroom() -> Int? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max,   // RLIM_INFINITY
              let statm = fopen("/proc/self/statm", "r") else { return nil }
        defer { fclose(statm) }
        var pages = 0
        guard fscanf_long(statm, &pages) else { return nil }
        let used = pages * sysconf(Int32(_SC_PAGESIZE))
        return max(0, Int(clamping: limit.rlim_cur) - used)
    }

    public static func available() -> Int { min(configuredLimit, addressSpaceHeadroom() ?? .max) }

    private static func fscanf_long(_ file: UnsafeMutablePointer<FILE>, _ value: inout Int) -> Bool {
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return false }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let first = text.split(separator: " ").first, let n = Int(first) else { return false }
        value = n
        return true
    }
}

/// An apply refused because it would need more memory than `MemoryBudget.available()`.
public struct MemoryLimitExceeded: Error, CustomStringConvertible {
    public let description: String
}

extension Generator {
    /// Throws when applying to a width x height image with `options` would need more
    /// memory than `MemoryBudget.available()` (checked before anything is allocated).
    public func checkMemory(width: Int, height: Int, options: ApplyOptions) throws(MemoryLimitExceeded) {
        let needed = estimatedPeakBytes(width: width, height: height, options: options)
        let available = MemoryBudget.available()
        guard needed <= available else {
            let mode = options.resolvedMode(width: width, height: height).rawValue
            throw MemoryLimitExceeded(description:
                "a \(width)x\(height) image in \(mode) mode needs about \(needed >> 20) MB more memory, "
                + "only \(available >> 20) MB are available (F2A_MAX_MEMORY_MB, ulimit -v); "
                + "use --mode guided or tiled, or downsize first")
        }
    }
}
