import F2ACore

/// Storage type of one tensor in a weights file.
public enum DType: UInt8, Sendable, CaseIterable {
    case f32 = 0
    case f16 = 1

    public var byteSize: Int { self == .f32 ? 4 : 2 }
    public var name: String { self == .f32 ? "f32" : "f16" }
}

/// One configuration value. The file stores typed values so that a reader can
/// tell "width = 0.25" from "width = \"0.25\"".
public enum ConfigValue: Equatable, Sendable {
    case int(Int64)
    case float(Double)
    case string(String)

    var kind: UInt8 {
        switch self { case .int: 1; case .float: 2; case .string: 3 }
    }
}

/// The contents of a weights file (format: docs/WEIGHTS_FORMAT.md): an ordered
/// configuration dictionary and ordered named tensors, decoded to float32.
public struct WeightsFile: Sendable {
    public static let magic: [UInt8] = [0x46, 0x32, 0x41, 0x57, 0x0D, 0x0A, 0x1A, 0x0A] // "F2AW\r\n\x1a\n"
    public static let version: UInt32 = 1
    public static let alignment = 64
    static let preambleSize = 32

    // Limits that keep a hostile header from asking for absurd work or memory.
    static let maxStringBytes = 4096
    static let maxConfigEntries = 1024
    static let maxTensors = 65_536
    static let maxRank = 8
    static let maxElements = 1 << 31
    /// Room left after the tensors for the allocations of building the generator.
    static let loadSlack = 16 << 20

    public var config: [(key: String, value: ConfigValue)]
    public var tensors: [(name: String, tensor: Tensor)]

    public init(config: [(key: String, value: ConfigValue)] = [],
                tensors: [(name: String, tensor: Tensor)] = []) {
        self.config = config
        self.tensors = tensors
    }

    public subscript(config key: String) -> ConfigValue? {
        config.first { $0.key == key }?.value
    }

    // MARK: Reading

    /// Reads and fully verifies a weights file. Only the header is read whole; the
    /// tensors are read one at a time after the layout has been checked against the
    /// file's size and their memory has been found allocatable.
    public static func read(path: String) throws(WeightsError) -> WeightsFile {
        try parse(WeightsSource(path: path))
    }

    /// Parses and fully verifies an in-memory weights file.
    public static func parse(_ bytes: [UInt8]) throws(WeightsError) -> WeightsFile {
        try parse(WeightsSource(bytes: bytes))
    }

    /// Every length and offset is treated as hostile: all arithmetic is overflow-checked,
    /// every read is bounds-checked against the file's size before it happens, and no
    /// buffer is allocated for a byte count the file has not been shown to hold. Hence the
    /// order: parse the header, validate the layout it describes against the file, and only
    /// then decode the tensors.
    static func parse(_ source: WeightsSource) throws(WeightsError) -> WeightsFile {
        let header = try parseHeader(source)
        let dataStart = try validateLayout(header, source)
        let tensors = try decodeTensors(header.entries, dataStart: dataStart, source)
        return WeightsFile(config: header.config, tensors: tensors)
    }

    /// One tensor as the header's table describes it.
    private struct TensorEntry { var name: String; var dtype: DType; var shape: [Int]; var offset: Int; var size: Int; var crc: UInt32 }

    /// The checksummed header: configuration and tensor table.
    private struct Header {
        var config: [(key: String, value: ConfigValue)]
        var entries: [TensorEntry]
        /// Offset of the first byte after the header.
        var end: Int
    }

    // MARK: Reading: parse

    /// The preamble (magic, version, header length and checksum), then the header it
    /// announces, whose checksum is verified before any of it is interpreted.
    private static func parseHeader(_ source: WeightsSource) throws(WeightsError) -> Header {
        let size = source.size
        let preamble = try source.buffer(at: 0, count: min(size, preambleSize), what: "the preamble")
        // ByteReader holds raw pointers: keep each buffer alive to the end of the parse.
        defer { withExtendedLifetime(preamble) {} }
        guard size >= magic.count, Array(preamble.bytes[0..<magic.count]) == magic else {
            throw .notAWeightsFile
        }
        var p = ByteReader(bytes: preamble.bytes)
        p.offset = magic.count
        let version = try p.u32("format version")
        guard version == WeightsFile.version else {
            throw .unsupportedVersion(found: version, supported: WeightsFile.version)
        }
        _ = try p.u32("preamble")
        let headerLength = try p.u64("header length")
        let headerCRC = try p.u32("header checksum")
        _ = try p.u32("preamble")
        guard headerLength <= UInt64(Int.max - preambleSize) else {
            throw .malformed("header length \(headerLength) is impossible")
        }
        let headerEnd = preambleSize + Int(headerLength)
        guard headerEnd <= size else {
            throw .truncated(what: "header", needed: UInt64(headerEnd), available: UInt64(size))
        }
        let header = try source.buffer(at: 0, count: headerEnd, what: "the header")
        defer { withExtendedLifetime(header) {} }
        let computed = CRC32.checksum(UnsafeRawBufferPointer(rebasing: header.bytes[preambleSize..<headerEnd]))
        guard computed == headerCRC else {
            throw .checksumMismatch(what: "header", stored: headerCRC, computed: computed)
        }

        var r = ByteReader(bytes: header.bytes)
        r.offset = preambleSize
        r.limit = headerEnd
        let config = try parseConfig(&r)
        let entries = try parseTensorTable(&r)
        guard r.offset == headerEnd else {
            throw .malformed("\(headerEnd - r.offset) unexplained bytes at the end of the header")
        }
        return Header(config: config, entries: entries, end: headerEnd)
    }

    /// The configuration entries: unique keys, known value kinds.
    private static func parseConfig(_ r: inout ByteReader) throws(WeightsError) -> [(key: String, value: ConfigValue)] {
        let configCount = try r.u32("config count")
        guard configCount <= maxConfigEntries else { throw .malformed("\(configCount) config entries (limit \(maxConfigEntries))") }
        var config: [(key: String, value: ConfigValue)] = []
        for _ in 0..<configCount {
            let key = try r.string("config key")
            guard !config.contains(where: { $0.key == key }) else { throw .badConfig(key: key, reason: "appears twice") }
            let kind = try r.u8("config kind of '\(key)'")
            switch kind {
            case 1: config.append((key, .int(Int64(bitPattern: try r.u64("config '\(key)'")))))
            case 2: config.append((key, .float(Double(bitPattern: try r.u64("config '\(key)'")))))
            case 3: config.append((key, .string(try r.string("config '\(key)'"))))
            default: throw .badConfig(key: key, reason: "unknown value kind \(kind)")
            }
        }
        return config
    }

    /// The tensor table: unique names, known dtypes, shapes whose element count cannot
    /// overflow, data sizes that match the shapes, aligned offsets.
    private static func parseTensorTable(_ r: inout ByteReader) throws(WeightsError) -> [TensorEntry] {
        let tensorCount = try r.u32("tensor count")
        guard tensorCount <= maxTensors else { throw .malformed("\(tensorCount) tensors (limit \(maxTensors))") }
        var entries: [TensorEntry] = []
        var names = Set<String>()
        for _ in 0..<tensorCount {
            let name = try r.string("tensor name")
            guard names.insert(name).inserted else { throw .duplicateTensor(name: name) }
            let code = try r.u8("dtype of '\(name)'")
            guard let dtype = DType(rawValue: code) else { throw .badTensor(name: name, reason: "unknown dtype code \(code)") }
            let rank = Int(try r.u8("rank of '\(name)'"))
            guard rank <= maxRank else { throw .badTensor(name: name, reason: "rank \(rank) exceeds \(maxRank)") }
            var shape: [Int] = []
            var elements = 1
            for _ in 0..<rank {
                let d = try r.u64("shape of '\(name)'")
                guard d <= UInt64(maxElements) else { throw .badTensor(name: name, reason: "dimension \(d) is too large") }
                shape.append(Int(d))
                let (p, overflow) = elements.multipliedReportingOverflow(by: Int(d))
                guard !overflow, p <= maxElements else {
                    throw .badTensor(name: name, reason: "shape \(shape.shapeDescription)… has more than \(maxElements) elements")
                }
                elements = p
            }
            let offset = try r.u64("offset of '\(name)'")
            let size = try r.u64("size of '\(name)'")
            let crc = try r.u32("checksum of '\(name)'")
            let expectedSize = elements * dtype.byteSize
            guard size == UInt64(expectedSize) else {
                throw .badTensor(name: name, reason: "\(size) data bytes for \(dtype.name) shape \(shape.shapeDescription) (needs \(expectedSize))")
            }
            guard offset % UInt64(alignment) == 0 else {
                throw .badTensor(name: name, reason: "data offset \(offset) is not \(alignment)-byte aligned")
            }
            guard offset <= UInt64(Int.max / 2) else { throw .badTensor(name: name, reason: "data offset \(offset) is impossible") }
            entries.append(TensorEntry(name: name, dtype: dtype, shape: shape, offset: Int(offset), size: expectedSize, crc: crc))
        }
        return entries
    }

    // MARK: Reading: validate

    /// Checks that the tensors' data regions lie in the file without overlapping, that
    /// all padding is zero and that nothing follows the last tensor; returns where the
    /// data starts.
    private static func validateLayout(_ header: Header, _ source: WeightsSource) throws(WeightsError) -> Int {
        let size = source.size
        let headerEnd = header.end, entries = header.entries
        let dataStart = align(headerEnd)
        var end = dataStart
        guard let chunk = FallibleBuffer(count: 1 << 16) else { throw .outOfMemory(what: "reading", bytes: 1 << 16) }
        defer { withExtendedLifetime(chunk) {} }
        // No checksum covers padding, so it must be zero: a flipped bit there is
        // still reported instead of silently ignored.
        func checkPadding(_ range: Range<Int>) throws(WeightsError) {
            let clipped = range.clamped(to: 0..<size)
            var at = clipped.lowerBound
            while at < clipped.upperBound {
                let n = min(clipped.upperBound - at, chunk.count)
                try source.read(at: at, into: UnsafeMutableRawBufferPointer(start: chunk.base, count: n))
                if let bad = (0..<n).first(where: { chunk.bytes[$0] != 0 }) {
                    throw .malformed("non-zero padding byte at offset \(at + bad)")
                }
                at += n
            }
        }
        try checkPadding(headerEnd..<dataStart)
        // Regions must not overlap: sort by offset and check neighbours.
        for e in entries.sorted(by: { $0.offset < $1.offset }) {
            let start = dataStart + e.offset
            guard start >= end else { throw .malformed("data of tensor '\(e.name)' overlaps the previous tensor") }
            try checkPadding(end..<start)
            end = start + e.size
            guard end <= size else {
                throw .truncated(what: "data of tensor '\(e.name)'", needed: UInt64(end), available: UInt64(size))
            }
        }
        let fileEnd = entries.isEmpty ? headerEnd : end
        guard fileEnd == size else {
            throw .malformed("\(size - fileEnd) trailing bytes after the last tensor")
        }
        return dataStart
    }

    // MARK: Reading: decode

    /// Reads, checksums and decodes every tensor to float32, refusing non-finite values.
    private static func decodeTensors(_ entries: [TensorEntry], dataStart: Int,
                              _ source: WeightsSource) throws(WeightsError) -> [(name: String, tensor: Tensor)] {
        // The layout fits the file, so every count below is bounded by its size. The float
        // tensors are Swift arrays, whose failed allocation would abort: their total (plus
        // the buffer float16 data is read into) is first taken from malloc, which can fail,
        // and given back. Float32 data is read straight into its array.
        let largestF16 = entries.filter { $0.dtype == .f16 }.map(\.size).max() ?? 0
        let decoded = entries.reduce(0) { $0 + $1.size / $1.dtype.byteSize * MemoryLayout<Float>.size }
        let needed = decoded + largestF16 + loadSlack
        guard FallibleBuffer(count: needed) != nil else {
            throw .outOfMemory(what: entries.count == 1 ? "its tensor" : "its \(entries.count) tensors", bytes: needed)
        }
        guard let raw = FallibleBuffer(count: largestF16) else { throw .outOfMemory(what: "reading a tensor", bytes: largestF16) }
        defer { withExtendedLifetime(raw) {} }
        var tensors: [(name: String, tensor: Tensor)] = []
        tensors.reserveCapacity(entries.count)
        for e in entries {
            let at = dataStart + e.offset
            var values: [Float]
            let crc: UInt32
            switch e.dtype {
            case .f32:
                var failure: WeightsError?
                values = [Float](unsafeUninitializedCapacity: e.size / 4) { buffer, initialized in
                    do throws(WeightsError) {
                        try source.read(at: at, into: UnsafeMutableRawBufferPointer(buffer))
                    } catch {
                        failure = error
                    }
                    initialized = buffer.count
                }
                if let failure { throw failure }
                crc = values.withUnsafeBytes { CRC32.checksum($0) }
                for i in values.indices { values[i] = Float(bitPattern: UInt32(littleEndian: values[i].bitPattern)) }
            case .f16:
                let region = UnsafeMutableRawBufferPointer(start: raw.base, count: e.size)
                try source.read(at: at, into: region)
                crc = CRC32.checksum(UnsafeRawBufferPointer(region))
                values = decode(UnsafeRawBufferPointer(region), dtype: e.dtype)
            }
            guard crc == e.crc else { throw .checksumMismatch(what: "tensor '\(e.name)'", stored: e.crc, computed: crc) }
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw .badTensor(name: e.name, reason: "non-finite value at element \(bad)")
            }
            tensors.append((e.name, Tensor(shape: e.shape, data: values)))
        }
        return tensors
    }

    // MARK: Writing

    /// Serialises to bytes with every tensor stored as `dtype`.
    public func serialized(dtype: DType = .f32) -> [UInt8] {
        var header = ByteWriter()
        header.u32(UInt32(config.count))
        for (key, value) in config {
            header.string(key)
            header.u8(value.kind)
            switch value {
            case .int(let v): header.u64(UInt64(bitPattern: v))
            case .float(let v): header.u64(v.bitPattern)
            case .string(let v): header.string(v)
            }
        }
        header.u32(UInt32(tensors.count))
        var data: [UInt8] = []
        for (name, tensor) in tensors {
            // Pad before (not after) each tensor so the file ends with the last tensor's data.
            data += [UInt8](repeating: 0, count: WeightsFile.align(data.count) - data.count)
            let offset = data.count
            let encoded = WeightsFile.encode(tensor.data, dtype: dtype)
            data += encoded
            header.string(name)
            header.u8(dtype.rawValue)
            header.u8(UInt8(tensor.shape.count))
            for d in tensor.shape { header.u64(UInt64(d)) }
            header.u64(UInt64(offset))
            header.u64(UInt64(encoded.count))
            header.u32(CRC32.checksum(encoded))
        }
        var out = ByteWriter()
        out.bytes += WeightsFile.magic
        out.u32(WeightsFile.version)
        out.u32(0)
        out.u64(UInt64(header.bytes.count))
        out.u32(CRC32.checksum(header.bytes))
        out.u32(0)
        out.bytes += header.bytes
        if !tensors.isEmpty {
            out.bytes += [UInt8](repeating: 0, count: WeightsFile.align(out.bytes.count) - out.bytes.count)
            out.bytes += data
        }
        return out.bytes
    }

    /// Writes atomically: a temporary file in the same directory, then rename,
    /// so a crash never leaves a half-written model under the final name.
    public func write(path: String, dtype: DType = .f32) throws(WeightsError) {
        try writeFileAtomically(path: path, bytes: serialized(dtype: dtype))
    }

    // MARK: Encoding helpers

    static func align(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    static func decode(_ raw: UnsafeRawBufferPointer, dtype: DType) -> [Float] {
        let count = raw.count / dtype.byteSize
        return [Float](unsafeUninitializedCapacity: count) { buf, initialized in
            switch dtype {
            case .f32:
                for i in 0..<count { buf[i] = Float(bitPattern: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self).littleEndian) }
            case .f16:
                for i in 0..<count { buf[i] = Float(Float16(bitPattern: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self).littleEndian)) }
            }
            initialized = count
        }
    }

    static func encode(_ values: [Float], dtype: DType) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: values.count * dtype.byteSize)
        out.withUnsafeMutableBytes { raw in
            switch dtype {
            case .f32:
                for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            case .f16:
                for (i, v) in values.enumerated() { raw.storeBytes(of: Float16(v).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            }
        }
        return out
    }
}

/// Bounds-checked little-endian cursor over untrusted bytes.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    var limit: Int

    init(bytes: UnsafeRawBufferPointer) { self.bytes = bytes; self.limit = bytes.count }

    mutating func take(_ n: Int, _ what: String) throws(WeightsError) -> Slice<UnsafeRawBufferPointer> {
        guard n <= limit - offset else {
            throw .truncated(what: what, needed: UInt64(offset) + UInt64(n), available: UInt64(limit))
        }
        defer { offset += n }
        return bytes[offset..<(offset + n)]
    }

    mutating func u8(_ what: String) throws(WeightsError) -> UInt8 { try take(1, what).first! }

    mutating func u32(_ what: String) throws(WeightsError) -> UInt32 {
        try take(4, what).reversed().reduce(0) { $0 << 8 | UInt32($1) }
    }

    mutating func u64(_ what: String) throws(WeightsError) -> UInt64 {
        try take(8, what).reversed().reduce(0) { $0 << 8 | UInt64($1) }
    }

    mutating func string(_ what: String) throws(WeightsError) -> String {
        let n = try u32(what)
        guard n <= UInt32(WeightsFile.maxStringBytes) else { throw .malformed("\(what) is \(n) bytes long (limit \(WeightsFile.maxStringBytes))") }
        let raw = try take(Int(n), what)
        guard let s = String(validating: raw, as: UTF8.self) else { throw .malformed("\(what) is not valid UTF-8") }
        return s
    }
}

struct ByteWriter {
    var bytes: [UInt8] = []
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u32(_ v: UInt32) { for i in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func u64(_ v: UInt64) { for i in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> (8 * i))) } }
    mutating func string(_ s: String) { u32(UInt32(s.utf8.count)); bytes += Array(s.utf8) }
}
