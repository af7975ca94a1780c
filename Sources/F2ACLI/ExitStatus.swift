import ArgumentParser
import F2AImage

// Exit status of every f2a command (README, "Exit status"; docs/BATCH.md):
//   0        success
//   1        failed: an input could not be read or decoded, an image needs more memory than
//            allowed, an output could not be written (batch: any file failed)
//   2        refused before anything was written: an output would overwrite an input, the
//            model is missing or invalid, a setting is invalid, the output directory is unusable
//   64       usage (EX_USAGE, with a "Usage:" line): an option or argument is invalid in itself
//   130/143  stopped by SIGINT/SIGTERM
// ArgumentParser gives 64 with a usage line to every ValidationError, so a command throws
// ValidationError only for usage errors and CommandFailure for everything else.

/// Why a command stopped, other than a usage error.
struct CommandFailure: Error, CustomStringConvertible {
    enum Kind: Int32 {
        case failed = 1
        case refused = 2
    }

    let kind: Kind
    let description: String

    static func failed(_ message: String) -> CommandFailure { CommandFailure(kind: .failed, description: message) }
    static func refused(_ message: String) -> CommandFailure { CommandFailure(kind: .refused, description: message) }
}

/// Runs a command's work: a CommandFailure prints "Error: <message>" and exits with its
/// kind's status, any other error (libvips, weights, I/O) is a failure (1); usage errors
/// (ValidationError) and explicit exit codes pass through to ArgumentParser.
func withExitStatus(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as ExitCode {
        throw error
    } catch let error as ValidationError {
        throw error
    } catch let error as CommandFailure {
        writeStderr("Error: \(error.description)\n")
        throw ExitCode(error.kind.rawValue)
    } catch {
        writeStderr("Error: \(errorSentence(error))\n")
        throw ExitCode(CommandFailure.Kind.failed.rawValue)
    }
}
