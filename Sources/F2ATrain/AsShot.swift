import F2AModel
import F2ASynth

// FAID's flash images are flash-only light (the flash photograph minus the
// ambient one), but a camera records ambient + flash. A model trained only on
// flash-only inputs has never seen the ambient light that a real flash photo
// already contains, and brightens it a second time (the washed-out look of
// the first models on real photos). So training also composes photos as a
// camera would record them, from the same pairs, on the fly.

/// How a flash photograph as shot is composed from a flash-only image F and
/// its ambient image A (both in linear light):
///
///     shot = clip(k · (F + w·A) + noise, 0, 1)
///
/// where w makes the ambient light a fraction `share` of the sum's mean
/// luminance, k is the camera's exposure normalisation (the sum's mean
/// luminance becomes `exposure`), the clip is the sensor's saturation (blown
/// highlights), and the noise is Gaussian with standard deviation
/// `readNoise + shotNoise·√v` at linear value v.
public struct AsShotComposition: Codable, Sendable, Equatable {
    /// Range of the ambient light's fraction of the composite's mean luminance.
    public var shareMin = 0.1
    public var shareMax = 0.6
    /// Range of the metered mean luminance (linear light) after normalisation.
    public var exposureMin = 0.08
    public var exposureMax = 0.22
    public var readNoise = 0.002
    public var shotNoise = 0.01

    public init() {}

    /// Parameters of one composite.
    public struct Draw: Sendable, Equatable {
        public var share: Double
        public var exposure: Double
        public var noiseSeed: UInt64
        public init(share: Double, exposure: Double, noiseSeed: UInt64) {
            self.share = share; self.exposure = exposure; self.noiseSeed = noiseSeed
        }
    }

    public func draw(_ rng: inout SplitMix64) -> Draw {
        Draw(share: Double.random(in: shareMin...max(shareMin, shareMax), using: &rng),
             exposure: Double.random(in: exposureMin...max(exposureMin, exposureMax), using: &rng),
             noiseSeed: rng.next())
    }

    /// The pair with its flash image replaced by the composite; the ambient
    /// image is unchanged. A pair without ambient light (mean luminance 0)
    /// gets no ambient share.
    public func compose(_ p: ImagePair, _ d: Draw) -> ImagePair {
        let n = p.width * p.height
        var f = [Double](repeating: 0, count: 3 * n), a = f
        for i in 0..<(3 * n) {
            f[i] = Double(ColourSpace.decode(p.flash[i]))
            a[i] = Double(ColourSpace.decode(p.ambient[i]))
        }
        let lf = meanLuminance(count: f.count) { f[$0] }, la = meanLuminance(count: a.count) { a[$0] }
        // share = w·la / (lf + w·la)  ⇒  w = share·lf / ((1 − share)·la)
        let w = la > 0 && lf > 0 ? d.share * lf / ((1 - d.share) * la) : (la > 0 ? 1 : 0)
        let sum = lf + w * la
        let k = sum > 0 ? d.exposure / sum : 1
        var rng = SplitMix64(seed: d.noiseSeed)
        var out = p
        for i in 0..<(3 * n) {
            let v = k * (f[i] + w * a[i])
            let sigma = readNoise + shotNoise * v.squareRoot()
            let noisy = v + sigma * Self.gaussian(&rng)
            out.flash[i] = ColourSpace.encode(Float(min(max(noisy, 0), 1)))
        }
        return out
    }

    /// A standard normal sample (Box–Muller; one of the pair is dropped, which
    /// keeps every sample a function of the generator's state alone).
    static func gaussian(_ rng: inout SplitMix64) -> Double {
        let u1 = (Double(rng.next() >> 11) + 0.5) / Double(1 << 53)
        let u2 = Double(rng.next() >> 11) / Double(1 << 53)
        return (-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2)
    }
}

#if canImport(Glibc)
import Glibc
#endif
