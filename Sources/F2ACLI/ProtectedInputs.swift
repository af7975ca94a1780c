import Foundation
#if canImport(Glibc)
import Glibc
#endif

// The rule every f2a command keeps: a file the user gave as input is never
// modified, whatever path spells it. Comparing path strings misses "./b.jpg"
// for "b.jpg", a hard link and a symbolic link, so files are compared by what
// they are, and each command checks every path it will write before it
// writes anything.

/// Where a path leads. An existing file is its (device, inode), which every
/// spelling of it shares; a file not yet created is the directory it will be
/// created in (symbolic links resolved) plus its name.
enum FileKey: Hashable {
    case inode(device: UInt64, inode: UInt64)
    case location(String)

    init(_ path: String) {
        var st = stat()
        if stat(path, &st) == 0 {
            self = .inode(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        } else {
            self = .location(BatchPath.physical(path))
        }
    }
}

/// Writing `output` would modify the input `input`.
struct InputOverwrite: Error, CustomStringConvertible {
    let input: String
    let output: String

    var description: String {
        input == output
            ? "refusing to overwrite the input \(input)"
            : "refusing to overwrite the input \(input): the output \(output) is the same file"
    }
}

/// The files a command reads, to check every path it writes against.
struct ProtectedInputs {
    private var inputs: [FileKey: String] = [:]

    init(_ paths: [String] = []) {
        for path in paths { add(path) }
    }

    mutating func add(_ path: String) {
        let key = FileKey(path)
        if inputs[key] == nil { inputs[key] = path }
    }

    /// The input that `output` is, if any.
    func input(at output: String) -> String? { inputs[FileKey(output)] }

    func check(output: String) throws(InputOverwrite) {
        if let input = input(at: output) { throw InputOverwrite(input: input, output: output) }
    }
}
