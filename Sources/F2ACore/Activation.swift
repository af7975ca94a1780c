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
