import Foundation
import Testing
import F2AImage
import F2AModel

/// End to end: the model in weights/ on the bundled example pair
/// (examples/flash.jpg + ambient.jpg, FAID Objects_054, a validation pair
/// never trained on), in the default mode of `f2a apply`.
@Suite("Shipped model")
struct ShippedModelTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// Gains over the flash image required on the bundled pair, in the
    /// default mode, PSNR and EA-PSNR (exposure-aligned). Measured
    /// 2026-12-06 with model v3 (MODEL_CARD.md): PSNR 15.50 vs 13.76 dB
    /// (+1.74), EA-PSNR 15.65 vs 13.85 dB (+1.80); model v2 had +0.87 and
    /// +1.21. The margins, about half of v3's gains, let rounding and engine
    /// changes pass and fail an identity, broken or untrained model (all of
    /// whose gains are 0) and a fall back to v2's level.
    static let minimumGainDB = 0.8
    static let minimumEAGainDB = 1.0

    @Test("The shipped weights file loads with every checksum verified")
    func loads() throws {
        let file = try WeightsFile.read(path: "\(Self.root)/weights/default.f2aw")
        let generator = try Generator(file: file)
        #expect(generator.config.parameterCount > 0)
    }

    @Test("On the bundled example pair the shipped model beats the flash image, exposure-aligned too")
    func beatsIdentity() throws {
        try ImageIO.start()
        let generator = try Generator(file: WeightsFile.read(path: "\(Self.root)/weights/default.f2aw"))
        let flash = try DecodedImage(path: "\(Self.root)/examples/flash.jpg")
        let ambient = try DecodedImage(path: "\(Self.root)/examples/ambient.jpg")
        #expect(flash.width == ambient.width && flash.height == ambient.height)
        let input = Array(flash.pixels), target = Array(ambient.pixels)
        var output = [Float](repeating: 0, count: input.count)
        try input.withUnsafeBufferPointer { i in
            try output.withUnsafeMutableBufferPointer { o in
                try generator.apply(RGBImageView(base: i.baseAddress!, width: flash.width, height: flash.height,
                                                 rowStride: 3 * flash.width),
                                    to: o.baseAddress!, outputRowStride: 3 * flash.width, options: ApplyOptions())
            }
        }
        let identity = Metrics.psnr(input, target), model = Metrics.psnr(output, target)
        #expect(model - identity >= Self.minimumGainDB,
                "model \(model) dB, flash image \(identity) dB: gain below \(Self.minimumGainDB) dB")
        let identityEA = Metrics.exposureAlignedPSNR(input, target).psnr, modelEA = Metrics.exposureAlignedPSNR(output, target).psnr
        #expect(modelEA - identityEA >= Self.minimumEAGainDB,
                "EA-PSNR: model \(modelEA) dB, flash image \(identityEA) dB: gain below \(Self.minimumEAGainDB) dB")
    }
}
