// Fuzz target for the weights-file reader: every input must either parse
// (and then load or be rejected by the strict loader) or throw WeightsError;
// never trap, hang or allocate without bound.
//
// Built two ways:
//   swift build --product f2a-fuzz-weights                  → a replayer: runs every file
//        given on the command line (or in a directory) through the reader, for CI;
//   make fuzz  (-sanitize=fuzzer,address -DFUZZING)        → a libFuzzer binary.
import F2AModel
import F2AFuzzReplay

@inline(never)
func exercise(_ bytes: [UInt8]) {
    guard let file = try? WeightsFile.parse(bytes) else { return }
    _ = try? Generator(file: file)
}

#if FUZZING
@_cdecl("F2AFuzzWeights_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    return runLibFuzzer(argc, argv, exercise)
}
#else
@main
struct Replay {
    static func main() {
        replayCorpus(Array(CommandLine.arguments.dropFirst()), through: "the weights reader without a crash", exercise)
    }
}
#endif
