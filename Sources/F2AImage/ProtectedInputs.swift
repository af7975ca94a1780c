import Foundation
#if canImport(Glibc)
import Glibc
#endif

// The rule every f2a and f2a-train command keeps: a file the user gave as input is
// never modified, whatever path spells it. Comparing path strings misses "./b.jpg"
// for "b.jpg", a hard link and a symbolic link, so files are compared by what they
// are, and each command checks every path it will write before it writes anything.
// One owner for both tools: this file.

/// Lexical and physical path operations shared by the tools' safety rules.
public enum Paths {
    /// Absolute path with ".", ".." and repeated slashes removed lexically.
    public static func absolute(_ path: String) -> String {
        let joined = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var parts: [Substring] = []
        for part in joined.split(separator: "/", omittingEmptySubsequences: true) {
            if part == "." { continue }
            if part == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(part)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// The directory part of an absolute path ("/" for a file at the root).
    public static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// The last component of a path.
    public static func name(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return path }
        return String(path[path.index(after: slash)...])
    }

    /// Physical path (symlinks resolved) of a path that may not exist yet: the
    /// deepest existing ancestor resolved, the rest appended.
    public static func physical(_ path: String) -> String {
        var head = absolute(path)
        var tail: [String] = []
        while true {
            if let resolved = realpath(head, nil) {
                defer { free(resolved) }
                let base = String(cString: resolved)
                return tail.isEmpty ? base : absolute(base + "/" + tail.reversed().joined(separator: "/"))
            }
            if head == "/" { return absolute("/" + tail.reversed().joined(separator: "/")) }
            tail.append(name(head))
            head = parent(head)
        }
    }

    /// `path` is `dir` or below it (both absolute, normalised).
    public static func isWithin(_ path: String, _ dir: String) -> Bool {
        dir == "/" || path == dir || path.hasPrefix(dir + "/")
    }

    /// `path` is the directory `dir` or lies below it, symbolic links resolved in both.
    public static func isPhysicallyWithin(_ path: String, _ dir: String) -> Bool {
        isWithin(physical(path), physical(dir))
    }
}

/// Where a path leads. An existing file is its (device, inode), which every
/// spelling of it shares; a file not yet created is the directory it will be
/// created in (symbolic links resolved) plus its name.
public enum FileKey: Hashable, Sendable {
    case inode(device: UInt64, inode: UInt64)
    case location(String)

    public init(_ path: String) {
        var st = stat()
        if stat(path, &st) == 0 {
            self = .inode(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        } else {
            self = .location(Paths.physical(path))
        }
    }
}

/// Writing `output` would modify the input `input`.
public struct InputOverwrite: Error, CustomStringConvertible, Sendable {
    public let input: String
    public let output: String

    public var description: String {
        input == output
            ? "refusing to overwrite the input \(input)"
            : "refusing to overwrite the input \(input): the output \(output) is the same file"
    }
}

/// The files a command reads, to check every path it writes against.
public struct ProtectedInputs: Sendable {
    private var inputs: [FileKey: String] = [:]

    public init(_ paths: [String] = []) {
        for path in paths { add(path) }
    }

    public mutating func add(_ path: String) {
        let key = FileKey(path)
        if inputs[key] == nil { inputs[key] = path }
    }

    /// The input that `output` is, if any.
    public func input(at output: String) -> String? { inputs[FileKey(output)] }

    public func check(output: String) throws(InputOverwrite) {
        if let input = input(at: output) { throw InputOverwrite(input: input, output: output) }
    }
}
