import Foundation

/// Finds the shipped weights without configuration, for every way the tool
/// is run: installed (PREFIX/bin/f2a → PREFIX/share/...), from build/bin
/// (build/share/...), or from the repository root.
enum DefaultModel {
    static let relative = "share/flash2ambient/weights/default.f2aw"

    /// `$F2A_MODEL` when set: then it is the only candidate. Falling back to the
    /// shipped model when it names a missing file would run the wrong model
    /// on every photo of a bulk job without a word.
    static var environmentModel: String? {
        guard let env = ProcessInfo.processInfo.environment["F2A_MODEL"], !env.isEmpty else { return nil }
        return env
    }

    static var candidates: [String] {
        if let env = environmentModel { return [env] }
        var list: [String] = []
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            let prefix = URL(fileURLWithPath: exe).deletingLastPathComponent().deletingLastPathComponent()
            list.append(prefix.appendingPathComponent(relative).path)
        }
        list.append("weights/default.f2aw")
        return list
    }

    static func path() throws -> String {
        let list = candidates
        if let found = list.first(where: { FileManager.default.isReadableFile(atPath: $0) }) { return found }
        if let env = environmentModel {
            throw CommandFailure.refused("F2A_MODEL names '\(env)', which cannot be read. Unset it for the shipped model, or pass --model PATH.")
        }
        throw CommandFailure.refused("no model found; tried " + list.joined(separator: ", ") + ". Pass --model PATH.")
    }
}
