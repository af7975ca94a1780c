import ArgumentParser
import F2AModel

extension ApplyMode: ExpressibleByArgument {}

/// The options that choose how a photo goes through the model, shared by
/// `f2a apply` and `f2a batch` so both validate and document them alike.
struct ApplyArguments: ParsableArguments {
    @Option(help: "Blend with the input: 0 = input, 1 = full effect.") var strength: Float = 1
    @Option(help: "auto (= guided, at every size), full, tiled or guided.")
    var mode: ApplyMode = .auto
    @Option(help: "Long side in pixels at which guided mode runs the network.") var workingSize = ApplyOptions.defaultWorkingSize
    @Option(help: "Tile side in pixels for tiled mode.") var tileSize = ApplyOptions.defaultTileSize

    func validate() throws {
        guard strength.isFinite, (0...1).contains(strength) else { throw ValidationError("--strength must be in [0, 1]") }
        let ws = ApplyOptions.workingSizeRange, ts = ApplyOptions.tileSizeRange
        guard ws.contains(workingSize) else { throw ValidationError("--working-size must be from \(ws.lowerBound) to \(ws.upperBound)") }
        guard ts.contains(tileSize) else { throw ValidationError("--tile-size must be from \(ts.lowerBound) to \(ts.upperBound)") }
    }

    var options: ApplyOptions {
        ApplyOptions(mode: mode, strength: strength, workingSize: workingSize, tileSize: tileSize)
    }

    /// Whether the photo is streamed (`StreamedGuided`) rather than decoded whole.
    var streams: Bool { options.streams && !StreamedGuided.disabled }
}
