import F2ASynth

// FAID's ambient photographs were exposed independently of the flash shot:
// their brightness relative to the flash image varies by ±2 stops between
// scenes and cannot be predicted from the flash image (on faid32, an oracle
// exposure correction alone is worth +2.7 dB, an oracle colour correction
// with exposure kept +0.03 dB; tools/baselines/oracle_ceiling.py). Trained
// on raw pairs, the generator learns the training scenes' mean exposure
// shift, which transfers badly. Matching the target's exposure to the
// flash image leaves it the learnable part: colour, shadows and the spatial
// distribution of light; the output then keeps the photo's exposure.

/// Mean luminance (Rec. 709 weights) of interleaved RGB with `count`
/// samples, `linear(i)` giving sample i in linear light. One definition for
/// exposure matching and for the as-shot composition's metering.
func meanLuminance(count: Int, _ linear: (Int) -> Double) -> Double {
    var sum = 0.0
    for i in stride(from: 0, to: count - 2, by: 3) {
        sum += 0.2126 * linear(i) + 0.7152 * linear(i + 1) + 0.0722 * linear(i + 2)
    }
    return sum / Double(max(1, count / 3))
}

extension ImagePair {
    /// The pair with its ambient image scaled in linear light so that its
    /// mean luminance (Rec. 709 weights) equals the flash image's. The gain
    /// is limited to 1/16…16; values above 1 after scaling clip.
    public func exposureMatched() -> ImagePair {
        func luminance(_ img: [Float]) -> Double { meanLuminance(count: img.count) { Double(ColourSpace.decode(img[$0])) } }
        let lf = luminance(flash), la = luminance(ambient)
        guard la > 0, lf > 0 else { return self }
        let gain = Float(min(max(lf / la, 1.0 / 16), 16))
        var out = self
        out.ambient = ambient.map { ColourSpace.encode(ColourSpace.decode($0) * gain) }
        return out
    }
}
