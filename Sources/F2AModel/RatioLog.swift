#if canImport(Glibc)
import Glibc
#endif
import F2ACore

/// The ratio-log formulation of "Flash Image Enhancement via Ratio-Log
/// Translation to Ambient Images": the network predicts a bounded log-ratio
/// between ambient and flash instead of the ambient image itself, which
/// keeps the flash image's detail and turns the task into a smooth gain field.
/// Pixels are in [0, 1].
public enum RatioLog {
    /// r = ½·log2((A+1)/(F+1)) + ½, in [0, 1] for A, F in [0, 1].
    @inline(__always)
    public static func encode(ambient a: Float, flash f: Float) -> Float {
        0.5 * log2f((a + 1) / (f + 1)) + 0.5
    }

    /// A = clamp((F+1)·2^(2r−1) − 1, 0, 1).
    @inline(__always)
    public static func decode(ratio r: Float, flash f: Float) -> Float {
        min(max((f + 1) * exp2f(2 * r - 1) - 1, 0), 1)
    }

    /// Replaces `ratio` (r, [N, 3, H, W]) by the ambient estimate in place.
    public static func decode(ratio: inout Tensor, flash: Tensor) {
        precondition(ratio.shape == flash.shape)
        flash.data.withUnsafeBufferPointer { f in
            ratio.data.withUnsafeMutableBufferPointer { r in
                // On the thread pool: an exp2f call per element.
                elementChunks(r.count) { range in for i in range { r[i] = decode(ratio: r[i], flash: f[i]) } }
            }
        }
    }
}
