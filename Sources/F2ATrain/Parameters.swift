#if canImport(Glibc)
import Glibc
#endif
import F2ACore
import F2AModel

/// Named parameter tensors with their gradients, in a fixed order.
public final class ParameterSet: @unchecked Sendable {
    public let names: [String]
    public let shapes: [[Int]]
    public var values: [[Float]]
    public var grads: [[Float]]
    let index: [String: Int]

    public init(shapes: [(name: String, shape: [Int])]) {
        names = shapes.map(\.name)
        self.shapes = shapes.map(\.shape)
        values = shapes.map { [Float](repeating: 0, count: $0.shape.reduce(1, *)) }
        grads = values
        var index: [String: Int] = [:]
        for (i, n) in names.enumerated() { index[n] = i }
        self.index = index
    }

    public var count: Int { values.reduce(0) { $0 + $1.count } }

    public func id(_ name: String) -> Int {
        guard let i = index[name] else { preconditionFailure("unknown parameter \(name)") }
        return i
    }

    public subscript(name: String) -> [Float] { values[id(name)] }

    public func tensor(_ name: String) -> Tensor { Tensor(shape: shapes[id(name)], data: values[id(name)]) }

    public func zeroGrads() {
        for i in grads.indices {
            grads[i].withUnsafeMutableBufferPointer { b in
                let g = b.baseAddress!
                elementChunks(b.count) { (g + $0.lowerBound).update(repeating: 0, count: $0.count) }
            }
        }
    }

    /// Runs `body` with a pointer to parameter `i`'s gradient.
    @inline(__always)
    func withGrad<R>(_ i: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        grads[i].withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }
}

public enum InitScheme: String, Codable, Sendable, CaseIterable {
    /// N(0, 0.02) weights, zero biases (pix2pix).
    case normal
    /// He-normal weights (std √(2/fan-in)), zero biases.
    case he
}

extension ParameterSet {
    /// Initialises every parameter. Weights ("…weight", rank ≥ 2) follow
    /// `scheme`; norm scales ("…gamma") start at 1 (pix2pix: N(1, 0.02)),
    /// biases and shifts at 0. `transposedNames` lists parameters stored
    /// [in, out, k, k] whose fan-in is shape[0].
    public func initialise(_ scheme: InitScheme, rng: inout SplitMix64, transposed: (String) -> Bool = { _ in false }) {
        for i in values.indices {
            let name = names[i], shape = shapes[i]
            if name.hasSuffix(".gamma") {
                for j in values[i].indices { values[i][j] = 1 + (scheme == .normal ? 0.02 * rng.normal() : 0) }
            } else if name.hasSuffix(".weight") && shape.count >= 2 {
                let std: Float
                switch scheme {
                case .normal: std = 0.02
                case .he:
                    let fanIn = transposed(name) ? shape[0] : shape[1...].reduce(1, *)
                    std = sqrtf(2 / Float(max(fanIn, 1)))
                }
                for j in values[i].indices { values[i][j] = std * rng.normal() }
            } else {
                for j in values[i].indices { values[i][j] = 0 }
            }
        }
    }
}

/// Adam with bias correction (Kingma & Ba), as torch.optim.Adam without
/// weight decay: m ← β1 m + (1−β1) g, v ← β2 v + (1−β2) g²,
/// p ← p − lr · m̂ / (√v̂ + ε).
public struct Adam: Sendable {
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var m: [[Float]]
    public var v: [[Float]]
    /// Updates taken so far.
    public var t: Int

    public init(for params: ParameterSet, beta1: Float = 0.5, beta2: Float = 0.999, eps: Float = 1e-8) {
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        m = params.values.map { [Float](repeating: 0, count: $0.count) }
        v = m
        t = 0
    }

    /// One update. `scales[i]` multiplies parameter i's learning rate (nil:
    /// all 1); a parameter with scale 0 is frozen: neither it nor its moments
    /// change, so it stays bit-identical however long training runs.
    public mutating func step(_ params: ParameterSet, lr: Float, scales: [Float]? = nil) {
        t += 1
        let c1 = 1 - Float(pow(Double(beta1), Double(t)))
        let c2 = 1 - Float(pow(Double(beta2), Double(t)))
        let b1 = beta1, b2 = beta2, eps = eps
        let invSqrtC2 = 1 / c2.squareRoot()
        for i in params.values.indices {
            let scale = scales?[i] ?? 1
            if scale == 0 { continue }
            let stepSize = lr * scale / c1
            params.grads[i].withUnsafeBufferPointer { gb in
                m[i].withUnsafeMutableBufferPointer { mb in
                    v[i].withUnsafeMutableBufferPointer { vb in
                        params.values[i].withUnsafeMutableBufferPointer { pb in
                            let g = gb.baseAddress!, mp = mb.baseAddress!, vp = vb.baseAddress!, p = pb.baseAddress!
                            // Element-wise, so the threads' split leaves every result as it was.
                            elementChunks(pb.count) { range in
                                for j in range {
                                    let gj = g[j]
                                    let mj = b1 * mp[j] + (1 - b1) * gj
                                    let vj = b2 * vp[j] + (1 - b2) * gj * gj
                                    mp[j] = mj; vp[j] = vj
                                    p[j] -= stepSize * mj / (vj.squareRoot() * invSqrtC2 + eps)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Learning-rate schedule of pix2pix: constant, then linear decay to zero.
public struct LRSchedule: Codable, Sendable, Equatable {
    public var base: Float
    /// First step of the linear decay.
    public var decayStart: Int
    /// Step at which the rate reaches zero.
    public var total: Int

    public func rate(at step: Int) -> Float {
        guard step >= decayStart, total > decayStart else { return base }
        return base * Float(max(0, total - step)) / Float(total - decayStart)
    }
}
