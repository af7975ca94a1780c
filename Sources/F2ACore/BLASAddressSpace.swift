import COpenBLAS
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// OpenBLAS under an address-space limit (`ulimit -v`, RLIMIT_AS).
///
/// OpenBLAS gives each thread that runs a GEMM a buffer of 128 MB of address space
/// (BUFFER_SIZE on x86-64) and, when it cannot map one, retries forever
/// (`blas_memory_alloc`, OpenBLAS 0.3.21): under a tight limit f2a hung, a worker thread
/// spinning on a core. The tools' start-up code (Sources/CToolStartup, before any library's
/// constructor) sets `OPENBLAS_NUM_THREADS=1` under a finite limit; here, under such a limit,
///  - OpenBLAS stays on the calling thread (`blasThreadCount` stays 1) and GEMMs run one at
///    a time, so a single buffer serves every caller, and
///  - `reserveBuffer` maps that buffer before the model and the image take the address
///    space, or refuses with an error while the memory checks that follow can still see it.
public enum BLASAddressSpace {
    /// The address space OpenBLAS maps for one GEMM caller (BUFFER_SIZE, 32 << 22 on
    /// x86-64, plus a page).
    public static let bufferBytes = (128 << 20) + 4096

    /// The process runs under a finite RLIMIT_AS.
    public static var isLimited: Bool { AddressSpace.isLimited }

    /// Serialises GEMMs under a limit (see the type's documentation).
    static let gemmLock = Mutex(())

    private static let reserved = Mutex<Result<Void, BLASAddressSpaceError>?>(nil)

    /// Under a finite address-space limit, maps OpenBLAS's GEMM buffer now (one small GEMM),
    /// or throws when the limit does not leave room for it: OpenBLAS would otherwise retry
    /// the mapping forever at the first GEMM. Does nothing without a limit; idempotent.
    public static func reserveBuffer() throws(BLASAddressSpaceError) {
        guard isLimited else { return }
        let result = reserved.withLock { state -> Result<Void, BLASAddressSpaceError> in
            if let state { return state }
            let outcome = mapBuffer()
            state = outcome
            return outcome
        }
        try result.get()
    }

    private static func mapBuffer() -> Result<Void, BLASAddressSpaceError> {
        let slack = 16 << 20
        if let (limit, used) = AddressSpace.usage(), limit - used < bufferBytes + slack {
            return .failure(BLASAddressSpaceError(limit: limit, used: used, needed: bufferBytes + slack))
        }
        // 128³ with a transposed operand: large and shaped enough to take OpenBLAS's
        // buffered path (not its small-matrix or direct kernels), about 4 MFLOP.
        let n = 128
        let a = [Float](repeating: 0, count: n * n)
        var c = [Float](repeating: 0, count: n * n)
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                sgemm(transA: true, m: n, n: n, k: n, a: a.baseAddress!, lda: n, b: a.baseAddress!, ldb: n,
                      c: c.baseAddress!, ldc: n)
            }
        }
        return .success(())
    }
}

/// The process's address-space limit (`ulimit -v`, RLIMIT_AS) and how much of it is in use.
public enum AddressSpace {
    /// The process runs under a finite RLIMIT_AS. Read once: the tools do not change it.
    public static let isLimited: Bool = usage() != nil

    /// (RLIMIT_AS, current virtual size) in bytes; nil when the address space is unlimited.
    public static func usage() -> (limit: Int, used: Int)? {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max,   // RLIM_INFINITY
              let statm = fopen("/proc/self/statm", "r") else { return nil }
        defer { fclose(statm) }
        var buffer = [CChar](repeating: 0, count: 64)
        guard fgets(&buffer, Int32(buffer.count), statm) != nil else { return nil }
        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard let first = text.split(separator: " ").first, let pages = Int(first) else { return nil }
        return (Int(clamping: limit.rlim_cur), pages * sysconf(Int32(_SC_PAGESIZE)))
    }

    /// RLIMIT_AS minus the current virtual size, or nil when the address space is unlimited.
    public static func headroom() -> Int? { usage().map { max(0, $0.limit - $0.used) } }
}

/// The address-space limit leaves no room for OpenBLAS's GEMM buffer.
public struct BLASAddressSpaceError: Error, CustomStringConvertible, Sendable {
    public let limit: Int
    public let used: Int
    public let needed: Int

    public var description: String {
        let mb = { (bytes: Int) in (bytes + (1 << 20) - 1) >> 20 }
        return "the address-space limit (ulimit -v \(limit >> 10) KB) leaves \(max(0, limit - used) >> 20) MB, and "
            + "the matrix library (OpenBLAS) needs \(mb(needed)) MB of it: raise the limit to at least "
            + "\(mb(used + needed) << 10) KB (ulimit -v), plus what the image needs"
    }
}
