import ArgumentParser
import F2ACore
import F2AModel
#if canImport(Glibc)
import Glibc
#endif

@main
struct F2A: ParsableCommand {
    static let version = Flash2AmbientVersion.string

    static let configuration = CommandConfiguration(
        commandName: "f2a",
        abstract: "Turn flash photographs into ambient-light photographs with a learned generator.",
        discussion: """
            The default model is looked up in this order: --model, $F2A_MODEL, the weights \
            installed beside the executable (../share/flash2ambient/weights/default.f2aw), \
            ./weights/default.f2aw.

            Exit status: 0 success, 1 failed (unreadable input, unwritable output), 2 refused \
            before writing anything (an output would overwrite an input, no usable model, invalid \
            setting), 64 invalid option or argument, 130 / 143 stopped by SIGINT / SIGTERM (outputs \
            already written are complete, no partial file is left).
            """,
        version: versionText,
        subcommands: [Apply.self, Batch.self, Eval.self, Info.self, Init.self, Synth.self])

    /// CommandLine.arguments decodes each argument lossily: a path that is not valid UTF-8
    /// would name another file (bad\xff.jpg read as bad\u{FFFD}.jpg, which may exist).
    /// Such an argument is a usage error before anything is parsed.
    static func main() {
        for i in 1..<Int(CommandLine.argc) {
            guard let raw = CommandLine.unsafeArgv[i] else { continue }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(raw).assumingMemoryBound(to: UInt8.self),
                                            count: strlen(raw))
            if String(validating: bytes, as: UTF8.self) == nil {
                exit(withError: ValidationError("the argument \(BatchPath.escaped(Array(bytes))) is not valid UTF-8: "
                                                + "f2a cannot name that file; rename it"))
            }
        }
        main(nil)
    }
}

/// "0.4.0, default model: <its description>", so that a plumbing (untrained)
/// model can never be mistaken for the trained one.
let versionText: String = {
    guard let path = try? DefaultModel.path(),
          let file = try? WeightsFile.read(path: path),
          let config = try? GeneratorConfig(file: file) else {
        return "\(F2A.version) (no default model found)"
    }
    return "\(F2A.version)\ndefault model: \(path)\n  \(config.summary)\n  \(config.description)"
}()

/// Options shared by the commands that load a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Weights file (.f2aw). Default: the shipped model.")
    var model: String?

    /// The weights file `load()` reads.
    func path() throws -> String { try model ?? DefaultModel.path() }

    /// Under `ulimit -v`, maps the matrix library's buffer (BLASAddressSpace) or refuses. First
    /// thing in a command that runs the model: before libvips starts (whose allocation failures
    /// abort the process) and before the weights and the image take the address space.
    func reserveMatrixBuffer() throws {
        do { try BLASAddressSpace.reserveBuffer() } catch { throw CommandFailure.refused(error.description) }
    }

    func load() throws -> Generator {
        let path = try path()
        try reserveMatrixBuffer()
        do {
            return try Generator(file: WeightsFile.read(path: path))
        } catch {
            throw CommandFailure.refused("\(error.description)\(model == nil ? " (default model)" : "")")
        }
    }
}
