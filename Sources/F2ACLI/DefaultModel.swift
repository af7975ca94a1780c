import Foundation

/// Finds the shipped weights without configuration, for every way the tool
/// is run: installed (PREFIX/bin/f2a → PREFIX/share/...), from build/bin
/// (build/share/...), or from the repository root.
enum DefaultModel {
    static let relative = "share/flash2ambient/weights/default.f2aw"

    static var candidates: [String] {
        var list: [String] = []
        if let env = ProcessInfo.processInfo.environment["F2A_MODEL"], !env.isEmpty { list.append(env) }
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
        throw CommandFailure.refused("no model found; tried " + list.joined(separator: ", ") + ". Pass --model PATH.")
    }
}
