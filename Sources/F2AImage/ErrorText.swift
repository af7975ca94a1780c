import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Errors as the tools' users read them, for f2a and f2a-train alike. Foundation's file
// errors print as `Error Domain=NSCocoaErrorDomain Code=512 "(null)" UserInfo={…}`
// otherwise.

/// Why a file operation failed: the POSIX reason ("Not a directory") when Foundation has one.
public func errorReason(_ error: Error) -> String {
    if let e = error as? CocoaError, let underlying = e.userInfo[NSUnderlyingErrorKey] as? Error {
        if let posix = underlying as? POSIXError { return String(cString: strerror(posix.code.rawValue)) }
        let ns = underlying as NSError
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    }
    return (error as NSError).localizedDescription
}

/// An error as a message: the tools' own errors by their description, Foundation's file
/// errors as "PATH: reason".
public func errorSentence(_ error: Error) -> String {
    if let e = error as? CocoaError {
        let path = e.userInfo[NSFilePathErrorKey] as? String ?? e.filePath
        return path.map { "\($0): \(errorReason(e))" } ?? errorReason(e)
    }
    return String(describing: error)
}
