@testable import F2ATrain
import F2ACore

// The trainer reads the parts of a channel-concatenated gradient in place (maxPoolBackward's
// `adding:`, maxUnpoolBackward and convTranspose2x2Backward take the first channels of a wider
// tensor); the tests compare those reads with this plain split.

/// Splits a channel-concatenated gradient back into its two parts (copied whole, so
/// neither part is zero-filled first).
func splitChannels(_ t: Tensor, first: Int) -> (Tensor, Tensor) {
    let second = t.c - first, plane = t.h * t.w
    func part(_ from: Int, _ channels: Int) -> Tensor {
        Tensor(shape: [t.n, channels, t.h, t.w]) { out in
            t.data.withUnsafeBufferPointer { s in
                for i in 0..<t.n where channels > 0 {
                    (out.baseAddress! + i * channels * plane).update(from: s.baseAddress! + (i * t.c + from) * plane,
                                                                    count: channels * plane)
                }
            }
        }
    }
    return (part(0, first), part(first, second))
}
