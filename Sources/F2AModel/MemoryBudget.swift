import F2ACore
#if canImport(Glibc)
import Glibc
#endif

/// A memory setting that is not a number of megabytes: an error, never ignored, since a
/// typo would otherwise silently leave a server without the limit its operator set.
public struct InvalidSetting: Error, CustomStringConvertible, Equatable, Sendable {
    public let description: String
}

/// How much memory one apply may still take, so that a too-large image is refused with an
/// error instead of an allocation failure (which Swift cannot recover from: the process
/// aborts). The smaller of
///  - $F2A_MAX_MEMORY_MB if set, else half of the physical memory (the C ABI's rule), and
///  - when the address space is limited (`ulimit -v`, RLIMIT_AS), what is left of it now.
public enum MemoryBudget {
    /// Largest setting accepted, in MB (1 PiB): keeps every byte count far from overflow.
    public static let maxMegabytes = 1 << 30

    /// The one parser of the memory settings: $F2A_MAX_MEMORY_MB here, $F2A_VIPS_MAX_MB in the
    /// libvips operation (through f2a_memory_limit_parse). Unset (nil) or empty: half the
    /// physical memory. Otherwise decimal digits only, 1...maxMegabytes, in MB (MiB); "abc",
    /// "-5", "1e3", "0", "512M" are errors naming the setting and the value.
    public static func limit(setting name: String, value: String?) throws(InvalidSetting) -> Int {
        guard let value, !value.isEmpty else {
            let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
            return pages > 0 && size > 0 ? pages * size / 2 : 4 << 30
        }
        // Int("+5") accepts a sign; only plain digits are a number of megabytes here.
        guard value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }),
              let mb = Int(value), (1...maxMegabytes).contains(mb) else {
            throw InvalidSetting(description: "\(name)='\(value)' is not a memory limit: give a whole number of "
                                 + "megabytes from 1 to \(maxMegabytes), or unset it for half the physical memory")
        }
        return mb << 20
    }

    /// Read once: the limit cannot change under a running process.
    private static let configured: Result<Int, InvalidSetting> = {
        let value = getenv("F2A_MAX_MEMORY_MB").map { String(cString: $0) }
        do throws(InvalidSetting) {
            return .success(try limit(setting: "F2A_MAX_MEMORY_MB", value: value))
        } catch {
            return .failure(error)
        }
    }()

    /// $F2A_MAX_MEMORY_MB in bytes, or half the physical memory.
    public static func configuredLimit() throws(InvalidSetting) -> Int { try configured.get() }

    /// RLIMIT_AS minus the current virtual size, or nil when the address space is unlimited.
    public static func addressSpaceHeadroom() -> Int? { AddressSpace.headroom() }

    public static func available() throws(InvalidSetting) -> Int {
        min(try configuredLimit(), addressSpaceHeadroom() ?? .max)
    }
}

/// An apply refused because it would need more memory than `MemoryBudget.available()`.
public struct MemoryLimitExceeded: Error, CustomStringConvertible {
    public let description: String
}

extension Generator {
    /// Throws when applying to a width x height image with `options` (and, with
    /// `withFloatCopy`, first decoding it to floats) would need more memory than
    /// `MemoryBudget.available()` (checked before anything is allocated).
    /// An invalid $F2A_MAX_MEMORY_MB throws InvalidSetting.
    public func checkMemory(width: Int, height: Int, options: ApplyOptions, withFloatCopy: Bool = false) throws {
        let needed = estimatedPeakBytes(width: width, height: height, options: options, withFloatCopy: withFloatCopy)
        let available = try MemoryBudget.available()
        guard needed <= available else {
            let mode = options.resolvedMode(width: width, height: height)
            let remedy: String
            switch mode {
            case .guided: remedy = "lower --working-size, or downsize first"
            case .tiled: remedy = "lower --tile-size, or downsize first"
            case .full, .auto: remedy = "use --mode guided or tiled, or downsize first"
            }
            throw MemoryLimitExceeded(description:
                "a \(width)x\(height) image in \(mode.rawValue) mode needs about \(needed >> 20) MB of memory, "
                + "only \(available >> 20) MB are available (F2A_MAX_MEMORY_MB, ulimit -v); \(remedy)")
        }
    }
}

extension Generator {
    /// The check on a photo's header, before any pixel is decoded (`f2a apply`, `batch`):
    /// `checkMemory` with the photo counted as float, as decoding it whole needs. A streamed
    /// photo (guided mode) holds far less, but this limit is also what bounds the size of an
    /// image decoded at all: a small file can declare gigapixels (a JPEG whose frame header
    /// is patched to 65000x65000 decodes grey for minutes), and streaming would otherwise
    /// take it on. So the sizes refused stay those refused before streaming.
    public func checkBeforeDecoding(width: Int, height: Int, options: ApplyOptions) throws {
        try checkMemory(width: width, height: height, options: options, withFloatCopy: true)
    }
}
