import ArgumentParser
import Foundation
#if canImport(Glibc)
import Glibc
#endif

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
        writeStderr("Error: \(sentence(error))\n")
        throw ExitCode(CommandFailure.Kind.failed.rawValue)
    }
}

/// Why a file operation failed, as a user reads it: Foundation's file errors keep the reason
/// in an underlying POSIX error and otherwise print as `Error Domain=NSCocoaErrorDomain
/// Code=512 "(null)" UserInfo={…}`.
func reason(of error: Error) -> String {
    if let e = error as? CocoaError, let underlying = e.userInfo[NSUnderlyingErrorKey] as? Error {
        if let posix = underlying as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        let ns = underlying as NSError
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    }
    return (error as NSError).localizedDescription
}

/// An error as a message: the tools' own errors by their description, Foundation's file
/// errors as "PATH: reason".
func sentence(_ error: Error) -> String {
    if let e = error as? CocoaError {
        let path = e.userInfo[NSFilePathErrorKey] as? String ?? e.filePath
        return path.map { "\($0): \(reason(of: e))" } ?? reason(of: e)
    }
    return String(describing: error)
}
