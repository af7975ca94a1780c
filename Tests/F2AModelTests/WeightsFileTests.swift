import Testing
@testable import F2AModel
import F2ACore
#if canImport(Glibc)
import Glibc
#endif

/// A small valid file: a tiny generator so that every corruption test starts
/// from bytes the reader accepts.
let tinyConfig = GeneratorConfig(width: 0.0625, levels: 2, description: "test")
let tinyWeights = WeightsFile.randomlyInitialised(tinyConfig, seed: 7)
let tinyBytes = tinyWeights.serialized()

/// Byte offset of the first tensor's data (data_start), read like the reader does.
func dataStart(_ bytes: [UInt8]) -> Int {
    let headerLength = Int(bytes[16..<24].reversed().reduce(0) { $0 << 8 | UInt64($1) })
    return WeightsFile.align(32 + headerLength)
}

/// Rewrites the header CRC after a deliberate header edit, so the test reaches
/// the check it targets instead of stopping at the checksum.
func resealed(_ bytes: [UInt8]) -> [UInt8] {
    var b = bytes
    let headerLength = Int(b[16..<24].reversed().reduce(0) { $0 << 8 | UInt64($1) })
    let crc = CRC32.checksum(Array(b[32..<(32 + headerLength)]))
    for i in 0..<4 { b[24 + i] = UInt8(truncatingIfNeeded: crc >> (8 * i)) }
    return b
}

/// Offset of the first occurrence of `needle` in `haystack`.
func find(_ needle: String, in haystack: [UInt8]) -> Int {
    let n = Array(needle.utf8)
    return (0...(haystack.count - n.count)).first { Array(haystack[$0..<($0 + n.count)]) == n }!
}

func parseError(_ bytes: [UInt8]) -> WeightsError? {
    do { _ = try Generator(file: WeightsFile.parse(bytes)); return nil } catch { return error }
}

@Suite("Weights file")
struct WeightsFileTests {
    @Test("Round trip keeps configuration and tensors (f32 exact, f16 within half precision)", arguments: DType.allCases)
    func roundTrip(_ dtype: DType) throws {
        let parsed = try WeightsFile.parse(tinyWeights.serialized(dtype: dtype))
        #expect(parsed.config.map(\.key) == tinyWeights.config.map(\.key))
        #expect(try GeneratorConfig(file: parsed) == tinyConfig)
        #expect(parsed.tensors.map(\.name) == tinyWeights.tensors.map(\.name))
        for (a, b) in zip(parsed.tensors, tinyWeights.tensors) {
            #expect(a.tensor.shape == b.tensor.shape)
            for (x, y) in zip(a.tensor.data, b.tensor.data) {
                #expect(dtype == .f32 ? x == y : abs(x - y) <= abs(y) * 1e-3 + 1e-7)
            }
        }
    }

    @Test("Tensor data is 64-byte aligned and the file ends with the last tensor")
    func alignment() {
        let start = dataStart(tinyBytes)
        #expect(start % 64 == 0)
        let last = tinyWeights.tensors.last!.tensor
        #expect((tinyBytes.count - start - last.count * 4) % 64 == 0)
    }

    @Test("Missing file is reported as unreadable with the path")
    func missingFile() {
        #expect(throws: WeightsError.unreadable(path: "/nonexistent/x.f2aw", reason: "No such file or directory")) {
            try WeightsFile.read(path: "/nonexistent/x.f2aw")
        }
    }

    @Test("A directory is not a weights file")
    func directory() {
        #expect(throws: WeightsError.unreadable(path: "/tmp", reason: "not a regular file (a directory)")) {
            try WeightsFile.read(path: "/tmp")
        }
    }

    @Test("A FIFO or a character device is refused at once, not read forever")
    func specialFiles() throws {
        let fifo = "/tmp/f2a-weights-test-\(getpid()).fifo"
        unlink(fifo)
        try #require(mkfifo(fifo, 0o600) == 0)
        defer { unlink(fifo) }
        #expect(throws: WeightsError.unreadable(path: fifo, reason: "not a regular file (a FIFO)")) {
            try WeightsFile.read(path: fifo)
        }
        #expect(throws: WeightsError.unreadable(path: "/dev/zero", reason: "not a regular file (a character device)")) {
            try WeightsFile.read(path: "/dev/zero")
        }
    }

    @Test("Wrong magic", arguments: [[UInt8](), Array("PK\u{3}\u{4}zipfile".utf8), Array("F2AW\n".utf8)])
    func badMagic(_ bytes: [UInt8]) {
        #expect(parseError(bytes) == .notAWeightsFile)
    }

    @Test("Unsupported version")
    func version() {
        var b = tinyBytes
        b[8] = 9
        #expect(parseError(b) == .unsupportedVersion(found: 9, supported: 1))
    }

    @Test("Truncation anywhere is detected", arguments: [12, 30, 40, 200, -1, -100])
    func truncated(_ cut: Int) {
        let length = cut >= 0 ? cut : tinyBytes.count + cut
        guard case .truncated = parseError(Array(tinyBytes[0..<length])) else {
            Issue.record("\(length) bytes: \(String(describing: parseError(Array(tinyBytes[0..<length]))))"); return
        }
    }

    @Test("Header checksum mismatch")
    func headerChecksum() {
        var b = tinyBytes
        b[40] ^= 0x01
        guard case .checksumMismatch(what: "header", _, _) = parseError(b) else { Issue.record("\(String(describing: parseError(b)))"); return }
    }

    @Test("Tensor checksum mismatch names the tensor")
    func tensorChecksum() {
        var b = tinyBytes
        b[dataStart(b) + 5] ^= 0x40
        guard case .checksumMismatch(what: "tensor 'enc1.conv1.weight'", _, _) = parseError(b) else {
            Issue.record("\(String(describing: parseError(b)))"); return
        }
    }

    @Test("Unknown dtype")
    func badDType() {
        // The dtype byte follows the first tensor name.
        var b = tinyBytes
        let at = find("enc1.conv1.weight", in: b) + "enc1.conv1.weight".utf8.count
        b[at] = 7
        #expect(parseError(resealed(b)) == .badTensor(name: "enc1.conv1.weight", reason: "unknown dtype code 7"))
    }

    @Test("Declared size that disagrees with the shape")
    func badShape() {
        var b = tinyBytes
        let at = find("enc1.conv1.weight", in: b) + "enc1.conv1.weight".utf8.count + 2
        b[at] = 5 // first dimension 4 → 5 while nbytes stays
        guard case .badTensor(name: "enc1.conv1.weight", _) = parseError(resealed(b)) else {
            Issue.record("\(String(describing: parseError(resealed(b))))"); return
        }
    }

    @Test("Overflowing shape products are rejected, not wrapped")
    func overflowingShape() {
        var w = WeightsFile(config: tinyConfig.fileEntries, tensors: [("x", Tensor(zeros: [2, 2]))])
        var b = w.serialized()
        let at = find("x", in: Array(b[32...])) + 32 + 1 + 2
        for i in 0..<8 { b[at + i] = 0xFF; b[at + 8 + i] = 0xFF }
        guard case .badTensor(name: "x", _) = parseError(resealed(b)) else { Issue.record("\(String(describing: parseError(resealed(b))))"); return }
        w.tensors = []
        _ = w
    }

    @Test("Padding bytes must be zero")
    func padding() {
        var b = tinyBytes
        let start = dataStart(b)
        // The byte just before the data section is header padding whenever the header does not end on a 64-byte boundary.
        let headerLength = Int(b[16..<24].reversed().reduce(0) { $0 << 8 | UInt64($1) })
        #expect(32 + headerLength < start)
        b[start - 1] = 1
        #expect(parseError(b) == .malformed("non-zero padding byte at offset \(start - 1)"))
    }

    @Test("Trailing bytes after the last tensor")
    func trailing() {
        guard case .malformed = parseError(tinyBytes + [0, 0, 0]) else { Issue.record("accepted trailing bytes"); return }
    }

    @Test("Missing tensor names the tensor and its expected shape")
    func missingTensor() {
        var w = tinyWeights
        w.tensors.removeAll { $0.name == "dec1.conv2.bias" }
        #expect(parseError(w.serialized()) == .missingTensor(name: "dec1.conv2.bias", expected: [4]))
    }

    @Test("Unexpected tensor is named")
    func extraTensor() {
        var w = tinyWeights
        w.tensors.append(("enc9.conv1.weight", Tensor(zeros: [1, 1, 3, 3])))
        #expect(parseError(w.serialized()) == .unexpectedTensor(name: "enc9.conv1.weight", shape: [1, 1, 3, 3]))
    }

    @Test("Misshaped tensor names both shapes")
    func misshaped() {
        var w = tinyWeights
        let i = w.tensors.firstIndex { $0.name == "final.weight" }!
        w.tensors[i].tensor = Tensor(zeros: [3, 5, 1, 1])
        #expect(parseError(w.serialized()) == .shapeMismatch(name: "final.weight", expected: [3, 4, 1, 1], found: [3, 5, 1, 1]))
    }

    @Test("Duplicate tensor")
    func duplicate() {
        var w = tinyWeights
        w.tensors.append(w.tensors[0])
        #expect(parseError(w.serialized()) == .duplicateTensor(name: "enc1.conv1.weight"))
    }

    @Test("Non-finite values are rejected")
    func nonFinite() {
        var w = tinyWeights
        w.tensors[1].tensor.data[0] = .nan
        guard case .badTensor(name: "enc1.conv1.bias", _) = parseError(w.serialized()) else { Issue.record("accepted NaN"); return }
    }

    @Test("Configuration errors name the key", arguments: [
        ("levels", ConfigValue.int(6)), ("levels", .string("5")), ("width", .float(0)), ("width", .float(.infinity)),
        ("upsample", .string("bilinear")), ("architecture", .string("resnet")), ("formulation", .int(1)),
        ("decoder_width", .float(-1)), ("decoder_width", .string("0.125")),
    ])
    func badConfig(_ key: String, _ value: ConfigValue) {
        var w = tinyWeights
        let i = w.config.firstIndex { $0.key == key }!
        w.config[i].value = value
        guard case .badConfig(key: key, _) = parseError(w.serialized()) else {
            Issue.record("\(key)=\(value): \(String(describing: parseError(w.serialized())))"); return
        }
    }

    @Test("Error messages are readable")
    func messages() {
        #expect(WeightsError.shapeMismatch(name: "final.weight", expected: [3, 4, 1, 1], found: [3, 5, 1, 1]).description
                == "tensor 'final.weight' has shape [3, 5, 1, 1], expected [3, 4, 1, 1]")
    }

    @Test("Atomic write leaves no temporary file and reads back")
    func atomicWrite() throws {
        let path = "/tmp/f2a-test-\(UInt32.random(in: 0...UInt32.max)).f2aw"
        try tinyWeights.write(path: path, dtype: .f16)
        let back = try WeightsFile.read(path: path)
        #expect(back.tensors.count == tinyWeights.tensors.count)
        #expect((try? WeightsFile.read(path: path + ".tmp-\(getpid())")) == nil)
        unlink(path)
    }

    @Test("CRC-32 matches the standard check value")
    func crc() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
        let long = (0..<1000).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let split = long.withUnsafeBytes { raw in
            CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[500...]),
                           continuing: CRC32.checksum(UnsafeRawBufferPointer(rebasing: raw[..<500])))
        }
        #expect(split == CRC32.checksum(long))
    }
}

#if canImport(Glibc)
import Glibc
#endif
