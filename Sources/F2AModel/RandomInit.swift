#if canImport(Glibc)
import Glibc
#endif
import F2ACore

/// SplitMix64: small, fast, seedable; enough for initialisation and tests.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Standard normal sample (Box–Muller).
    public mutating func normal() -> Float {
        let u1 = Float.random(in: Float.ulpOfOne..<1, using: &self)
        let u2 = Float.random(in: 0..<1, using: &self)
        return sqrtf(-2 * logf(u1)) * cosf(2 * Float.pi * u2)
    }
}

extension WeightsFile {
    /// A randomly initialised (He-normal weights, zero biases) weights file
    /// for `config`: untrained, for plumbing, tests and benchmarks.
    public static func randomlyInitialised(_ config: GeneratorConfig, seed: UInt64) -> WeightsFile {
        var rng = SplitMix64(seed: seed)
        var tensors: [(name: String, tensor: Tensor)] = []
        for (name, shape) in config.parameterShapes {
            var t = Tensor(zeros: shape)
            if name.hasSuffix(".weight") {
                // Fan-in of conv [out, in, k, k] is in·k·k; of convT [in, out, k, k] it is in.
                let fanIn = name.hasSuffix("up.weight") && config.upsample == .transpose
                    ? shape[0] : shape[1] * shape[2] * shape[3]
                let std = sqrtf(2 / Float(fanIn))
                for i in t.data.indices { t.data[i] = std * rng.normal() }
            } else {
                // Small random biases so tests exercise the bias path.
                for i in t.data.indices { t.data[i] = 0.01 * rng.normal() }
            }
            tensors.append((name, t))
        }
        return WeightsFile(config: config.fileEntries, tensors: tensors)
    }
}

extension GeneratorConfig {
    /// The canonical weights file of this configuration for given parameters.
    public func weightsFile(parameters: [String: Tensor]) -> WeightsFile {
        WeightsFile(config: fileEntries, tensors: parameterShapes.map { ($0.name, parameters[$0.name]!) })
    }
}
