#if canImport(Glibc)
import Glibc
#endif
import F2ACore

// MARK: Pointwise

public enum Pointwise {
    public static func relu(_ t: inout Tensor) {
        t.data.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = max(p[i], 0) } }
    }
    /// dy *= (y > 0), y the ReLU output (F2ACore's `Activation.reluGate`, by chunks on the
    /// thread pool; `Conv2d`'s `gate:` applies the same in its store).
    public static func reluBackward(_ dy: inout Tensor, output y: Tensor) {
        precondition(dy.count == y.count, "reluBackward: dy \(dy.shape.shapeDescription), y \(y.shape.shapeDescription)")
        y.data.withUnsafeBufferPointer { yp in
            dy.data.withUnsafeMutableBufferPointer { d in
                elementChunks(d.count) { r in
                    Activation.reluGate(d.baseAddress! + r.lowerBound, by: yp.baseAddress! + r.lowerBound, count: r.count)
                }
            }
        }
    }
    /// The LeakyReLU of one value: the rule of every pass that applies it (this one's, and
    /// those fused into the discriminator's normalisation and first convolution).
    @inline(__always) static func leakyRelu(_ v: Float, slope: Float) -> Float { v < 0 ? v * slope : v }
    /// The gradient dy of a LeakyReLU output y taken through it (y has its input's sign for
    /// slope > 0): the rule of `leakyReluBackward` and of the passes it is fused into.
    @inline(__always) static func leakyReluGradient(_ dy: Float, output y: Float, slope: Float) -> Float {
        y > 0 ? dy : dy * slope
    }

    public static func leakyRelu(_ t: inout Tensor, slope: Float) {
        t.data.withUnsafeMutableBufferPointer { p in
            elementChunks(p.count) { r in for i in r { p[i] = leakyRelu(p[i], slope: slope) } }
        }
    }
    /// y the LeakyReLU output (same sign as its input for slope > 0).
    public static func leakyReluBackward(_ dy: inout Tensor, output y: Tensor, slope: Float) {
        y.data.withUnsafeBufferPointer { yp in
            dy.data.withUnsafeMutableBufferPointer { d in
                elementChunks(d.count) { r in for i in r { d[i] = leakyReluGradient(d[i], output: yp[i], slope: slope) } }
            }
        }
    }

    /// dy *= y(1 − y), y the sigmoid output.
    public static func sigmoidBackward(_ dy: inout Tensor, output y: Tensor) {
        y.data.withUnsafeBufferPointer { yp in
            dy.data.withUnsafeMutableBufferPointer { d in elementChunks(d.count) { r in for i in r { d[i] *= yp[i] * (1 - yp[i]) } } }
        }
    }
    /// dy *= 1 − t², t the tanh output.
    public static func tanhBackward(_ dy: inout Tensor, output t: Tensor) {
        t.data.withUnsafeBufferPointer { tp in
            dy.data.withUnsafeMutableBufferPointer { d in elementChunks(d.count) { r in for i in r { d[i] *= 1 - tp[i] * tp[i] } } }
        }
    }
    /// x ← a·x + b.
    public static func affine(_ t: inout Tensor, _ a: Float, _ b: Float) {
        t.data.withUnsafeMutableBufferPointer { p in elementChunks(p.count) { r in for i in r { p[i] = a * p[i] + b } } }
    }
    /// a += b (same shapes), by chunks on the thread pool: the skip gradients it adds are
    /// full-resolution activations.
    public static func add(_ a: inout Tensor, _ b: Tensor) {
        precondition(a.shape == b.shape, "add: \(a.shape.shapeDescription) and \(b.shape.shapeDescription)")
        b.data.withUnsafeBufferPointer { bp in
            a.data.withUnsafeMutableBufferPointer { ap in elementChunks(ap.count) { r in for i in r { ap[i] += bp[i] } } }
        }
    }
}
