import Testing
import F2ASynth
@testable import F2ATrain

@Suite("Exposure-matched targets")
struct ExposureMatchTests {
    func meanLuminance(_ img: [Float]) -> Double {
        stride(from: 0, to: img.count, by: 3).reduce(0.0) { s, i in
            s + 0.2126 * Double(ColourSpace.decode(img[i])) + 0.7152 * Double(ColourSpace.decode(img[i + 1]))
                + 0.0722 * Double(ColourSpace.decode(img[i + 2]))
        } / Double(img.count / 3)
    }

    @Test("The ambient image takes the flash image's mean luminance; the flash image is untouched")
    func matchesLuminance() {
        let n = 64
        let flash = (0..<(3 * n)).map { Float(0.2 + 0.5 * Double($0 % 7) / 7) }
        let ambient = (0..<(3 * n)).map { Float(0.1 + 0.2 * Double($0 % 5) / 5) }
        let pair = ImagePair(name: "p", width: 8, height: 8, flash: flash, ambient: ambient)
        let matched = pair.exposureMatched()
        #expect(matched.flash == flash)
        #expect(abs(meanLuminance(matched.ambient) - meanLuminance(flash)) < 1e-4 * meanLuminance(flash))
        // Colour ratios in linear light are kept: one gain for every channel.
        let r0 = ColourSpace.decode(matched.ambient[0]) / ColourSpace.decode(ambient[0])
        let r1 = ColourSpace.decode(matched.ambient[4]) / ColourSpace.decode(ambient[4])
        #expect(abs(r0 - r1) < 1e-4 * r0)
    }

    @Test("A black ambient image is left as it is")
    func blackAmbient() {
        let pair = ImagePair(name: "p", width: 2, height: 1, flash: [0.5, 0.5, 0.5, 0.2, 0.2, 0.2],
                             ambient: [Float](repeating: 0, count: 6))
        #expect(pair.exposureMatched().ambient == pair.ambient)
    }
}
