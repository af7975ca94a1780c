#if FUZZING
// The libFuzzer build of every fuzz target. SwiftPM links executables with
// main defined as <Target>_main, so libFuzzer's own main is not used; each
// target's <Target>_main hands control to libFuzzer's driver through here.

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

/// The target's input handler; a C callback cannot capture it, so it lives here.
nonisolated(unsafe) private var fuzzTarget: (([UInt8]) -> Void)?

/// Runs libFuzzer with the process's arguments, feeding every input to `exercise`.
public func runLibFuzzer(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
                         _ exercise: @escaping ([UInt8]) -> Void) -> CInt {
    fuzzTarget = exercise
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in
        fuzzTarget!(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}
#endif
