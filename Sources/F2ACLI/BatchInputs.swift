import ArgumentParser
import F2AImage
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Input discovery, output paths (mirrored tree), the never-write-over-inputs
// rules and sharding for `f2a batch`. See docs/BATCH.md for the rules in prose.

/// One photograph to process: where it is read and where its result goes.
struct BatchItem: Sendable {
    /// Absolute, lexically normalised input path.
    let input: String
    /// Input path relative to the base directory: the sort key of sharding.
    let relative: String
    /// Absolute output path.
    let output: String
    /// Set when the item cannot be processed at all (missing file, output collision …).
    var planError: String?
}

enum BatchPath {
    /// Suffixes scanned inside directories (case-insensitive). Explicit file
    /// arguments are taken whatever their suffix (libvips sniffs the content).
    static let imageSuffixes: Set<String> = ["jpg", "jpeg", "jpe", "png", "tif", "tiff", "webp",
                                             "heic", "heif", "avif", "jp2", "j2k", "jxl"]
    /// Marks a directory as an `f2a batch` output tree; such directories are never scanned.
    static let marker = ".f2a-batch"
    /// In the name of every temporary file the savers write before renaming (f2aio_temporary_path, vipsio.c).
    static let tempInfix = ".f2a-tmp-"

    /// Paths are Swift strings (Unicode), file names are bytes: a name that is not valid
    /// UTF-8 cannot be opened or named as an output through a String (decoding it repairs it
    /// into another name). Such a name is a failure of its own, shown with each invalid byte
    /// as \xNN; this is the message.
    static let notUTF8 = "the file name is not valid UTF-8: f2a batch cannot read it or name its output; rename it"

    /// `bytes` as text, each byte that is not part of valid UTF-8 written as \xNN.
    static func escaped<Bytes: Collection<UInt8>>(_ bytes: Bytes) -> String where Bytes.Index == Int {
        var out = ""
        var i = bytes.startIndex
        next: while i < bytes.endIndex {
            for length in 1...4 where i + length <= bytes.endIndex {
                if let s = String(validating: bytes[i..<(i + length)], as: UTF8.self) {
                    out += s
                    i += length
                    continue next
                }
            }
            let hex = String(bytes[i], radix: 16)
            out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            i += 1
        }
        return out
    }

    static func absolute(_ path: String) -> String { Paths.absolute(path) }
    static func parent(_ path: String) -> String { Paths.parent(path) }
    static func name(_ path: String) -> String { Paths.name(path) }

    /// ("photo", ".jpg") for "photo.jpg"; ("photo", "") without a suffix; dotfiles have no suffix.
    static func splitSuffix(_ name: String) -> (stem: String, suffix: String) {
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else { return (name, "") }
        return (String(name[..<dot]), String(name[dot...]))
    }

    static func isWithin(_ path: String, _ dir: String) -> Bool { Paths.isWithin(path, dir) }

    /// `path` relative to `base` (path must be within base).
    static func relative(_ path: String, to base: String) -> String {
        if path == base { return "" }
        return base == "/" ? String(path.dropFirst()) : String(path.dropFirst(base.count + 1))
    }

    /// Deepest directory containing every path of `dirs`.
    static func commonDirectory(_ dirs: [String]) -> String {
        guard var common = dirs.first?.split(separator: "/").map(String.init) else { return "/" }
        for dir in dirs.dropFirst() {
            let parts = dir.split(separator: "/").map(String.init)
            var n = 0
            while n < min(common.count, parts.count) && common[n] == parts[n] { n += 1 }
            common.removeLast(common.count - n)
        }
        return "/" + common.joined(separator: "/")
    }

    static func physical(_ path: String) -> String { Paths.physical(path) }

    enum Kind { case missing, file, directory, other }

    /// What is at `path`, following symlinks.
    static func kind(_ path: String) -> Kind {
        var st = stat()
        guard stat(path, &st) == 0 else { return .missing }
        switch st.st_mode & S_IFMT {
        case S_IFREG: return .file
        case S_IFDIR: return .directory
        default: return .other
        }
    }

    static func isTemporary(_ name: String) -> Bool { name.contains(tempInfix) }
}

/// The output format of `--format` (f2a batch; f2a apply to standard output, where `same` has no meaning).
enum OutputFormat: String, CaseIterable, ExpressibleByArgument {
    case same, jpeg, png, tiff, webp

    /// Suffixes that already name this format (the input's own suffix is kept when it does).
    var suffixes: [String] {
        switch self {
        case .same: return []
        case .jpeg: return [".jpg", ".jpeg", ".jpe"]
        case .png: return [".png"]
        case .tiff: return [".tif", ".tiff"]
        case .webp: return [".webp"]
        }
    }
}

/// Which slice of the sorted input list this process handles.
struct BatchShard: Equatable, CustomStringConvertible {
    var index: Int
    var count: Int
    /// Where K/N came from, for the log.
    var source: String = "--shard"

    static let single = BatchShard(index: 0, count: 1, source: "default")

    var description: String { "\(index)/\(count)" }

    /// "K/N" with 0 <= K < N.
    static func parse(_ text: String, source: String = "--shard") throws -> BatchShard {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]) else {
            throw BatchError("\(source): expected K/N (e.g. 0/4), got '\(text)'")
        }
        return try make(k, n, source: source)
    }

    static func make(_ k: Int, _ n: Int, source: String) throws -> BatchShard {
        guard n >= 1 else { throw BatchError("\(source): the shard count must be at least 1, got \(n)") }
        guard (0..<n).contains(k) else {
            throw BatchError("\(source): shard index \(k) is not from 0 to \(n - 1)")
        }
        return BatchShard(index: k, count: n, source: source)
    }

    /// --shard, else Kubernetes (JOB_COMPLETION_INDEX + --shard-count / F2A_SHARD_COUNT),
    /// else Slurm (SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of SLURM_ARRAY_TASK_COUNT), else 0/1.
    static func resolve(option: String?, countOption: Int?, environment env: [String: String]) throws -> BatchShard {
        if let option { return try parse(option) }
        let count: Int? = try countOption ?? env["F2A_SHARD_COUNT"].flatMap { text in
            guard let n = Int(text) else { throw BatchError("F2A_SHARD_COUNT: not a number: '\(text)'") }
            return n
        }
        if let text = env["JOB_COMPLETION_INDEX"], !text.isEmpty {
            guard let k = Int(text) else { throw BatchError("JOB_COMPLETION_INDEX: not a number: '\(text)'") }
            guard let count else {
                throw BatchError("JOB_COMPLETION_INDEX is set (Kubernetes Indexed Job) but the shard count is not: "
                                      + "pass --shard-count N or set F2A_SHARD_COUNT to the Job's completions")
            }
            return try make(k, count, source: "JOB_COMPLETION_INDEX=\(k), shard count \(count)")
        }
        if let text = env["SLURM_ARRAY_TASK_ID"], !text.isEmpty {
            guard let id = Int(text) else { throw BatchError("SLURM_ARRAY_TASK_ID: not a number: '\(text)'") }
            let minimum = Int(env["SLURM_ARRAY_TASK_MIN"] ?? "") ?? 0
            guard let n = count ?? Int(env["SLURM_ARRAY_TASK_COUNT"] ?? "") else {
                throw BatchError("SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (pass --shard-count N)")
            }
            let source = "SLURM_ARRAY_TASK_ID=\(id) - SLURM_ARRAY_TASK_MIN=\(minimum) of \(n)"
            guard (0..<n).contains(id - minimum) else {
                throw BatchError("\(source): not from 0 to \(n - 1); use a contiguous array without steps "
                                      + "(--array=0-\(n - 1)) or pass --shard K/N")
            }
            return try make(id - minimum, n, source: source)
        }
        if let count, count != 1 {
            throw BatchError("a shard count (\(count)) is given but no index: pass --shard K/N, "
                                  + "or run as a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) or Slurm array")
        }
        return single
    }

    /// Round-robin over the sorted list: item i belongs to shard i mod N. Every
    /// item is in exactly one shard, shard sizes differ by at most one, and the
    /// split depends only on the sorted relative paths (not on the machine,
    /// the mount point or the enumeration order).
    func select<T>(_ sorted: [T]) -> [T] {
        sorted.enumerated().compactMap { $0.offset % count == index ? $0.element : nil }
    }
}

/// The result of discovery: everything to process (all shards), and problems found while scanning.
struct BatchPlan {
    var items: [BatchItem]
    var base: String
    /// Directories that could not be listed (reported as failures).
    var scanErrors: [(path: String, message: String)]
    var outputDirectory: String
    /// Every input file, and the model: never written.
    var inputs = ProtectedInputs()

    /// Refuses a report path that is an input or the output of any shard's item.
    func checkReport(_ path: String) throws {
        if let input = inputs.input(at: path) {
            throw BatchError("refusing to write the report \(path): it is the input \(input)")
        }
        let key = FileKey(path)
        if let item = items.first(where: { !$0.output.isEmpty && FileKey($0.output) == key }) {
            throw BatchError("refusing to write the report \(path): it is the output of \(item.input)")
        }
    }
}

struct BatchPlanner {
    var arguments: [String]
    var outputDirectory: String
    var base: String?
    var format: OutputFormat
    var suffix: String
    /// Files read besides the images (the model): no output may be one of them.
    var otherInputs: [String] = []
    /// What ends each path on stdin: a newline, or with `-0` a NUL byte (find -print0), the
    /// only byte no path contains: names with newlines pass only that way.
    var stdinSeparator = UInt8(ascii: "\n")
    /// All of stdin as bytes (readLine would repair a non-UTF-8 path into another name).
    var readStdin: () -> [UInt8] = {
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(0, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data += chunk[0..<n]
        }
        return data
    }

    /// Arguments with "-" replaced by the paths read from stdin, and the stdin paths that are
    /// not valid UTF-8 (escaped), each a failure of its own.
    func expandedArguments() throws -> (paths: [String], notUTF8: [String]) {
        var list: [String] = [], invalid: [String] = []
        var readStdinOnce = false
        let newlines = stdinSeparator == UInt8(ascii: "\n")
        for argument in arguments {
            if argument == "-" {
                guard !readStdinOnce else { continue }
                readStdinOnce = true
                for entry in readStdin().split(separator: stdinSeparator, omittingEmptySubsequences: false) {
                    var line = Array(entry)
                    // Lists written on Windows end their lines with CR LF.
                    if newlines && line.last == UInt8(ascii: "\r") { line.removeLast() }
                    if line.isEmpty { continue }
                    if let path = String(validating: line, as: UTF8.self) {
                        list.append(path)
                    } else {
                        invalid.append(BatchPath.escaped(line))
                    }
                }
            } else {
                list.append(argument)
            }
        }
        return (list, invalid)
    }

    /// Finds the inputs, maps them to outputs and enforces the safety rules.
    /// Throws (refusing the whole run) when the output directory and the inputs overlap.
    func plan() throws -> BatchPlan {
        let expanded = try expandedArguments()
        let args = expanded.paths.map(BatchPath.absolute)
        guard !args.isEmpty || !expanded.notUTF8.isEmpty else { throw BatchError("no inputs (the list on stdin was empty)") }
        let out = BatchPath.absolute(outputDirectory)
        let outPhysical = BatchPath.physical(out)
        let given = GivenInputs(args)
        try checkOutputDirectory(out, physical: outPhysical, given: given)

        var scanErrors: [(String, String)] = expanded.notUTF8.map { (BatchPath.absolute($0), BatchPath.notUTF8) }
        var found: [String] = given.files + given.missing
        for dir in given.directories {
            scan(dir, skipping: outPhysical, into: &found, errors: &scanErrors)
        }
        let base = try baseDirectory(given)
        let (items, protected) = try outputs(for: Self.sortedEntries(found, base: base), in: out,
                                             missing: Set(given.missing))
        return BatchPlan(items: items, base: base, scanErrors: scanErrors, outputDirectory: out, inputs: protected)
    }

    /// The inputs as given: directories scanned, files taken, anything else a failure.
    private struct GivenInputs {
        var directories: [String] = []
        var files: [String] = []
        /// Missing, or neither a file nor a directory: each fails as an item.
        var missing: [String] = []

        init(_ paths: [String]) {
            for path in paths {
                switch BatchPath.kind(path) {
                case .directory: directories.append(path)
                case .file: files.append(path)
                case .missing, .other: missing.append(path)
                }
            }
        }
    }

    /// Rules 1 and 2, before anything is scanned.
    private func checkOutputDirectory(_ out: String, physical outPhysical: String, given: GivenInputs) throws {
        // Rule 1: the output directory is not an input and holds no input.
        for path in given.directories + given.files {
            let physical = BatchPath.physical(path)
            if BatchPath.isWithin(physical, outPhysical) {
                throw BatchError(physical == outPhysical
                    ? "refusing to write into an input directory: the output directory \(out) is the input \(path)"
                    : "refusing to write over inputs: the input \(path) is inside the output directory \(out)")
            }
        }
        // Rule 2: an output directory inside an input directory is a separate subtree,
        // never scanned; if it already exists it must be empty or an f2a batch output.
        let outKind = BatchPath.kind(out)
        if outKind != .missing && outKind != .directory {
            throw BatchError("the output \(out) exists and is not a directory")
        }
        for dir in given.directories where BatchPath.isWithin(outPhysical, BatchPath.physical(dir)) {
            if outKind == .directory, !FileManager.default.fileExists(atPath: out + "/" + BatchPath.marker),
               let contents = try? FileManager.default.contentsOfDirectory(atPath: out), !contents.isEmpty {
                throw BatchError("refusing to use \(out) as output directory: it is inside the input directory "
                                      + "\(dir) and already holds files not written by f2a batch (they would no "
                                      + "longer be scanned). Use a new or empty directory.")
            }
        }
    }

    /// `--base`, which must hold every input, else the deepest directory holding them all.
    private func baseDirectory(_ given: GivenInputs) throws -> String {
        guard let option = self.base else {
            return BatchPath.commonDirectory(given.directories + (given.files + given.missing).map(BatchPath.parent))
        }
        let base = BatchPath.absolute(option)
        for path in given.directories + given.files + given.missing where !BatchPath.isWithin(path, base) {
            throw BatchError("the input \(path) is not inside --base \(base)")
        }
        return base
    }

    /// Unique inputs sorted by their relative path (bytewise): the order every shard agrees on.
    private static func sortedEntries(_ found: [String], base: String) -> [(input: String, relative: String)] {
        var seen = Set<String>()
        var keyed: [(input: String, relative: String, key: [UInt8])] = []
        for path in found where seen.insert(path).inserted {
            let relative = BatchPath.relative(path, to: base)
            keyed.append((path, relative, Array(relative.utf8)))
        }
        keyed.sort { $0.key.lexicographicallyPrecedes($1.key) }
        return keyed.map { (input: $0.input, relative: $0.relative) }
    }

    /// Each entry's output below `out`, with the per-item failures (no suffix for --format
    /// same, missing input, an output already claimed by another input); throws on rule 3.
    private func outputs(for entries: [(input: String, relative: String)], in out: String,
                 missing missingSet: Set<String>) throws -> ([BatchItem], ProtectedInputs) {
        var protected = ProtectedInputs(otherInputs)
        for entry in entries { protected.add(entry.input) }
        var claimed: [String: String] = [:]
        var items: [BatchItem] = []
        for entry in entries {
            var error: String?
            let output: String
            switch outputRelative(entry.relative) {
            case .success(let rel): output = out + "/" + rel
            case .failure(let message):
                output = out + "/" + entry.relative
                error = message.description
            }
            if missingSet.contains(entry.input) {
                error = BatchPath.kind(entry.input) == .missing ? "no such file" : "not a regular file"
            }
            // Rule 3 (the last guard, also through symbolic and hard links): no output is an input.
            if let input = protected.input(at: output) {
                throw BatchError("refusing to overwrite an input: \(input) would be written to \(output) "
                                 + "(the output of \(entry.input))")
            }
            if error == nil {
                if let other = claimed[output] {
                    error = "output \(output) is already the output of \(other) (use --format same or --suffix)"
                } else {
                    claimed[output] = entry.input
                }
            }
            items.append(BatchItem(input: entry.input, relative: entry.relative, output: output, planError: error))
        }
        return (items, protected)
    }

    /// The output's path below the output directory: same directories, stem + suffix, the format's suffix.
    func outputRelative(_ relative: String) -> Result<String, PlanFailure> {
        let dir = relative.contains("/") ? BatchPath.parent("/" + relative).dropFirst() + "/" : ""
        let (stem, inputSuffix) = BatchPath.splitSuffix(BatchPath.name(relative))
        let ext: String
        switch format {
        case .same:
            guard !inputSuffix.isEmpty else {
                return .failure(PlanFailure("the input has no file suffix, so --format same cannot name the output"))
            }
            ext = inputSuffix
        default:
            ext = format.suffixes.contains(inputSuffix.lowercased()) ? inputSuffix : format.suffixes[0]
        }
        return .success(dir + stem + suffix + ext)
    }

    struct PlanFailure: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// Whether `dir`/`name` (a name as bytes) is a directory; symbolic links not followed.
    static func isDirectory(in dir: String, _ name: [UInt8]) -> Bool {
        let path = Array(dir.utf8) + [UInt8(ascii: "/")] + name + [0]
        var st = stat()
        let status = path.withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { lstat($0.baseAddress!, &st) }
        }
        return status == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    /// Recursive scan: image suffixes only; hidden entries, temporary files, the
    /// output directory and marked output trees skipped; directory symlinks not followed.
    func scan(_ dir: String, skipping outPhysical: String, into found: inout [String],
              errors: inout [(String, String)]) {
        guard let handle = opendir(dir) else {
            errors.append((dir, "cannot list directory: \(String(cString: strerror(errno)))"))
            return
        }
        var names: [String] = []
        var invalid: [[UInt8]] = []
        while let entry = readdir(handle) {
            let bytes = withUnsafeBytes(of: entry.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if let name = String(validating: bytes, as: UTF8.self) {
                if name != "." && name != ".." { names.append(name) }
            } else {
                invalid.append(bytes)
            }
        }
        closedir(handle)
        // What would have been scanned under a valid name (hidden entries and temporary files
        // stay skipped; other suffixes too, unless it is a directory) fails instead of vanishing.
        for bytes in invalid where bytes.first != UInt8(ascii: ".") {
            let lossy = String(decoding: bytes, as: UTF8.self)
            let suffix = BatchPath.splitSuffix(lossy).suffix.dropFirst().lowercased()
            let path = (dir == "/" ? "/" : dir + "/") + BatchPath.escaped(bytes)
            if Self.isDirectory(in: dir, bytes) {
                errors.append((path, BatchPath.notUTF8.replacingOccurrences(of: "file name", with: "directory name")
                               + " (its files are not processed)"))
            } else if BatchPath.imageSuffixes.contains(suffix) && !BatchPath.isTemporary(lossy) {
                errors.append((path, BatchPath.notUTF8))
            }
        }
        for name in names.sorted() where !name.hasPrefix(".") {
            let path = dir == "/" ? "/" + name : dir + "/" + name
            var st = stat()
            guard lstat(path, &st) == 0 else { continue }
            let type = st.st_mode & S_IFMT
            if type == S_IFDIR {
                if BatchPath.physical(path) == outPhysical { continue }
                if FileManager.default.fileExists(atPath: path + "/" + BatchPath.marker) { continue }
                scan(path, skipping: outPhysical, into: &found, errors: &errors)
            } else if type == S_IFREG || (type == S_IFLNK && BatchPath.kind(path) == .file) {
                let suffix = BatchPath.splitSuffix(name).suffix.dropFirst().lowercased()
                if BatchPath.imageSuffixes.contains(suffix) && !BatchPath.isTemporary(name) {
                    found.append(path)
                }
            }
        }
    }
}
