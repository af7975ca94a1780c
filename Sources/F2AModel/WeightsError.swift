import F2ACore

/// Every way a weights file can be rejected. Each case names what failed so
/// that a user can tell a wrong path from a damaged download from a model
/// built for another architecture.
public enum WeightsError: Error, Equatable, CustomStringConvertible, Sendable {
    /// The file could not be opened or read (`reason` is the OS message).
    case unreadable(path: String, reason: String)
    /// The file could not be written (`reason` is the OS message).
    case unwritable(path: String, reason: String)
    /// The first bytes are not the F2AW magic.
    case notAWeightsFile
    /// A format version this build cannot read.
    case unsupportedVersion(found: UInt32, supported: UInt32)
    /// The file ends before `what` does.
    case truncated(what: String, needed: UInt64, available: UInt64)
    /// A CRC-32 mismatch: `what` is "header" or a tensor name.
    case checksumMismatch(what: String, stored: UInt32, computed: UInt32)
    /// A structurally invalid header (bad lengths, overlap, alignment, trailing data).
    case malformed(String)
    /// A tensor entry with an unknown dtype, an impossible shape or size.
    case badTensor(name: String, reason: String)
    /// A configuration entry that is missing, of the wrong kind or out of range.
    case badConfig(key: String, reason: String)
    /// The model needs a tensor the file does not have.
    case missingTensor(name: String, expected: [Int])
    /// The file has a tensor the model does not use.
    case unexpectedTensor(name: String, shape: [Int])
    /// A tensor present under the right name with the wrong shape.
    case shapeMismatch(name: String, expected: [Int], found: [Int])
    /// Two tensors with the same name.
    case duplicateTensor(name: String)
    /// A buffer the file's contents need could not be allocated (`ulimit -v`, RLIMIT_AS).
    case outOfMemory(what: String, bytes: Int)

    public var description: String {
        switch self {
        case let .unreadable(path, reason):
            return "cannot read weights file '\(path)': \(reason)"
        case let .unwritable(path, reason):
            return "cannot write weights file '\(path)': \(reason)"
        case .notAWeightsFile:
            return "not a flash2ambient weights file (bad magic bytes)"
        case let .unsupportedVersion(found, supported):
            return "unsupported weights format version \(found) (this build reads version \(supported))"
        case let .truncated(what, needed, available):
            return "weights file is truncated: \(what) needs \(needed) bytes, \(available) available"
        case let .checksumMismatch(what, stored, computed):
            return "checksum mismatch in \(what): stored \(hex(stored)), computed \(hex(computed)) (file is corrupt)"
        case let .malformed(reason):
            return "malformed weights file: \(reason)"
        case let .badTensor(name, reason):
            return "bad tensor '\(name)': \(reason)"
        case let .badConfig(key, reason):
            return "bad model configuration '\(key)': \(reason)"
        case let .missingTensor(name, expected):
            return "missing tensor '\(name)' (expected shape \(expected.shapeDescription))"
        case let .unexpectedTensor(name, shape):
            return "unexpected tensor '\(name)' with shape \(shape.shapeDescription) (not used by this configuration)"
        case let .shapeMismatch(name, expected, found):
            return "tensor '\(name)' has shape \(found.shapeDescription), expected \(expected.shapeDescription)"
        case let .duplicateTensor(name):
            return "tensor '\(name)' appears twice"
        case let .outOfMemory(what, bytes):
            return "not enough memory to load the weights file: \((bytes + (1 << 20) - 1) >> 20) MB for \(what) "
                + "could not be allocated (ulimit -v, RLIMIT_AS)"
        }
    }
}

private func hex(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - s.count) + s
}
