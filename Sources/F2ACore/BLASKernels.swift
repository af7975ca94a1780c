import CKernels
import COpenBLAS
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Which of OpenBLAS's kernel sets runs this process's GEMMs.
///
/// Debian's OpenBLAS (0.3.21, built with DYNAMIC_ARCH) picks its kernels from the CPU's
/// model number at load time. A CPU newer than that table (here an Intel Xeon of model 207)
/// falls back to "Prescott", SSE3 kernels: measured on such a machine, a 256×2048×3600
/// GEMM ran at 60 GFLOP/s on 2 threads, 155 with the Haswell (AVX2) kernels and 250–270
/// with the SkylakeX (AVX-512) ones, and a PatchGAN training step took 1444 ms instead of
/// 747. So when the CPU runs better kernels than OpenBLAS chose, it is asked to choose
/// again: `OPENBLAS_CORETYPE`, which OpenBLAS reads only in `gotoblas_dynamic_init`, is set
/// for that one call and removed again. It happens once, before this process's first GEMM
/// (`sgemm` reads `choice`; a lazy static, so the process's other GEMMs wait for it).
///
/// While the table is replaced, a GEMM that bypasses `sgemm` on another thread would find
/// none. The tools own their process; the library does not (a libvips host may use the same
/// OpenBLAS), so the C API calls `keepOpenBLASChoice()` before its first model is loaded,
/// and its forward pass runs on its own kernels anyway. A user's own `OPENBLAS_CORETYPE` is
/// always kept. Builds of OpenBLAS without dynamic kernel selection (no
/// `gotoblas_dynamic_init`) are left as they are.
public enum BLASKernels {
    /// Which kernels run, and what they replaced.
    public struct Choice: Sendable, Equatable {
        /// OpenBLAS's name of the kernels in use ("SkylakeX", "Haswell", "Zen", ...).
        public let core: String
        /// What OpenBLAS had chosen itself, when that was replaced.
        public let replaced: String?

        /// "SkylakeX" or "SkylakeX (OpenBLAS chose Prescott for this CPU)", for logs.
        public var description: String {
            replaced.map { "\(core) (OpenBLAS chose \($0) for this CPU)" } ?? core
        }
    }

    /// The outcome, settled the first time it is read.
    public static let choice: Choice = choose()

    private static let mayReplace = Atomic<Bool>(true)

    /// Leaves OpenBLAS's own choice in place in this process, for code running inside a
    /// host (the C API). Without effect once `choice` is settled.
    public static func keepOpenBLASChoice() { mayReplace.store(false, ordering: .relaxed) }

    /// Kernel sets at least as fast as `target` on a CPU that runs `target`'s instructions.
    static func isAtLeast(_ core: String, _ target: String) -> Bool {
        let avx512 = ["skylakex", "cooperlake", "sapphirerapids"]
        switch target.lowercased() {
        case "skylakex": return avx512.contains(core.lowercased())
        case "haswell": return (avx512 + ["haswell", "zen"]).contains(core.lowercased())
        default: return core.lowercased() == target.lowercased()
        }
    }

    /// The best kernel set this CPU runs, by OpenBLAS's name, or nil for older CPUs
    /// (left to OpenBLAS).
    static var bestForThisCPU: String? {
        if f2a_cpu_has_avx512() != 0 { return "SkylakeX" }
        if f2a_kernels_available() != 0 { return "Haswell" }
        return nil
    }

    static var currentCore: String { openblas_get_corename().map { String(cString: $0) } ?? "unknown" }

    private static func choose() -> Choice {
        let chosen = currentCore
        guard mayReplace.load(ordering: .relaxed), getenv("OPENBLAS_CORETYPE") == nil, let target = bestForThisCPU,
              !isAtLeast(chosen, target),
              // RTLD_DEFAULT (a null handle in glibc): the OpenBLAS this process linked.
              let quit = dlsym(nil, "gotoblas_dynamic_quit"), let initialise = dlsym(nil, "gotoblas_dynamic_init")
        else { return Choice(core: chosen, replaced: nil) }
        typealias Entry = @convention(c) () -> Void
        setenv("OPENBLAS_CORETYPE", target, 1)
        unsafeBitCast(quit, to: Entry.self)()
        unsafeBitCast(initialise, to: Entry.self)()
        unsetenv("OPENBLAS_CORETYPE")
        let now = currentCore
        return Choice(core: now, replaced: now == chosen ? nil : chosen)
    }
}
