#if canImport(Glibc)
import Glibc
#endif

/// Pointwise nonlinearities applied in place.
public enum Activation: String, Sendable, CaseIterable {
    case identity, relu, sigmoid, tanh

    public func apply(_ x: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .identity:
            return
        case .relu:
            for i in x.indices { x[i] = max(x[i], 0) }
        case .sigmoid:
            // Split by sign so exp never overflows.
            for i in x.indices {
                let v = x[i]
                if v >= 0 { x[i] = 1 / (1 + expf(-v)) } else { let e = expf(v); x[i] = e / (1 + e) }
            }
        case .tanh:
            for i in x.indices { x[i] = tanhf(x[i]) }
        }
    }

    public func apply(_ t: inout Tensor) {
        t.data.withUnsafeMutableBufferPointer { apply($0) }
    }
}

extension Activation {
    /// x[i] = gate[i] > 0 ? x[i] : 0 for i in 0..<count (a NaN gate gives 0 too): the
    /// backward of a ReLU whose output is `gate`. `Conv2d`'s `gate:` applies the same rule
    /// as it stores its output; the trainer's ReLU backward applies it by chunks.
    public static func reluGate(_ x: UnsafeMutablePointer<Float>, by gate: UnsafePointer<Float>, count: Int) {
        // x[i] is loaded whatever the gate: a load only on the gate's true side made the
        // select a branch (the loop stayed scalar), half of them mispredicted on ReLU outputs.
        for i in 0..<count {
            let v = x[i]
            x[i] = gate[i] > 0 ? v : 0
        }
    }
}
