// The replay build of every fuzz target (without -DFUZZING): runs the corpus (files, or
// every file of the directories, given as arguments) through `exercise`,
// so CI replays the committed seeds without the fuzzing toolchain.
#if canImport(Glibc)
import Glibc
#endif

/// Feeds each input file to `exercise` in name order and prints how many
/// passed through `what`; exits 1 when a file cannot be opened.
public func replayCorpus(_ arguments: [String], through what: String, _ exercise: ([UInt8]) -> Void) {
    var files: [String] = []
    for arg in arguments {
        if let dir = opendir(arg) {
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
                if !name.hasPrefix(".") { files.append(arg + "/" + name) }
            }
            closedir(dir)
        } else {
            files.append(arg)
        }
    }
    var count = 0
    for path in files.sorted() {
        guard let f = fopen(path, "rb") else { print("cannot open \(path)"); exit(1) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = fread(&buffer, 1, buffer.count, f)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        fclose(f)
        exercise(bytes)
        count += 1
    }
    print("replayed \(count) inputs through \(what)")
}
