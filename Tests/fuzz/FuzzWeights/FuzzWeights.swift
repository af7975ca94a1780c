// Fuzz target for the weights-file reader: every input must either parse
// (and then load or be rejected by the strict loader) or throw WeightsError;
// never trap, hang or allocate without bound.
//
// Built two ways:
//   swift build --product f2a-fuzz-weights                  → a replayer: runs every file
//        given on the command line (or in a directory) through the reader, for CI;
//   make fuzz  (-sanitize=fuzzer,address -DFUZZING)        → a libFuzzer binary.
import F2AModel

@inline(never)
func exercise(_ bytes: [UInt8]) {
    guard let file = try? WeightsFile.parse(bytes) else { return }
    _ = try? Generator(file: file)
}

#if FUZZING
// SwiftPM links executables with main defined as <Target>_main, so libFuzzer's
// own main is not used; hand control to its driver from there instead.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<CInt>,
                         _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("F2AFuzzWeights_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var vector = argv
    return LLVMFuzzerRunDriver(&count, &vector) { data, size in
        exercise(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
        return 0
    }
}
#else
import F2AFuzzReplay

@main
struct Replay {
    static func main() {
        replayCorpus(Array(CommandLine.arguments.dropFirst()), through: "the weights reader without a crash", exercise)
    }
}
#endif
