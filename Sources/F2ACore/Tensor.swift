import Synchronization

/// A dense float32 tensor in row-major order.
///
/// Activations are NCHW (batch, channels, height, width); convolution weights
/// follow PyTorch's layouts so that checkpoints and the ONNX export map 1:1:
/// `Conv2d` is [out, in, kh, kw], `ConvTranspose2d` is [in, out, kh, kw].
public struct Tensor: Equatable, Sendable {
    public private(set) var shape: [Int]
    public var data: [Float]

    /// A zero-filled tensor of the given shape.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// Wraps `data` (count must equal the product of `shape`).
    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) values, got \(data.count)")
        self.shape = shape
        self.data = data
    }

    /// A tensor of the given shape whose every element `body` writes: layers
    /// that overwrite their whole output skip the zero fill (and touch each
    /// fresh page once instead of twice).
    /// Storage given back with `recycle` is reused when its size matches.
    public init(shape: [Int], overwrittenBy body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        let count = shape.reduce(1, *)
        self.shape = shape
        if var reused = StoragePool.shared.take(count) {
            reused.withUnsafeMutableBufferPointer { body($0) }
            self.data = reused
            return
        }
        self.data = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            body(buffer)
            initialized = count
        }
    }

    /// Hands the storage of a tensor that is no longer needed to the next
    /// `init(shape:overwrittenBy:)` of the same size (this or a later forward
    /// pass) and leaves `t` empty.
    public static func recycle(_ t: inout Tensor) {
        var data: [Float] = []
        swap(&data, &t.data)
        t.shape = [0]
        StoragePool.shared.give(&data)
    }

    /// Most bytes of recycled storage kept into a pass of another model or input size
    /// (`StoragePool.missLimit`): memory estimates add it as slack.
    public static var recycledStorageSlackBytes: Int { StoragePool.missLimit }

    /// A forward pass with this signature (anything that fixes its tensor sizes: the
    /// model's channel counts and the input's shape) begins. Recycled storage is kept
    /// across passes of one signature; before a pass of another, all but
    /// `recycledStorageSlackBytes` of it is given back.
    public static func beginPass(signature: [Int]) { StoragePool.shared.beginPass(signature) }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// Dimensions of an NCHW activation.
    public var n: Int { shape[0] }
    public var c: Int { shape[1] }
    public var h: Int { shape[2] }
    public var w: Int { shape[3] }
}

extension Array where Element == Int {
    /// "[64, 3, 3, 3]"-style rendering used in error messages.
    public var shapeDescription: String { "[" + map(String.init).joined(separator: ", ") + "]" }
}

/// Activation storage handed back by `Tensor.recycle`, for reuse by the next
/// tensor of the same size.
///
/// Why: a forward pass makes about 50 activations, each a fresh allocation
/// of up to a few MB; glibc maps and unmaps blocks that size (or trims the
/// heap after a pass), so every layer paid page faults and zero fills on
/// its output - ~10 % of the CPU time at the shipped width. Pass after pass
/// the sizes repeat, so recycled blocks are reused exactly.
///
/// How much it keeps: up to `retainedLimit` while passes of one signature (model and
/// input size, `beginPass`) follow each other, so that a pass over a large image finds
/// all of the previous pass's storage; a 64 MB cap had left page faults in a third of
/// the CPU time at width 0.125, 1024², and 20 % of the time at width 1.0, 512². A pass
/// of another signature first gives back all but `missLimit` of it: what a process keeps
/// does not pile up over image sizes, and the memory estimates add `missLimit` as slack.
final class StoragePool: Sendable {
    static let shared = StoragePool()
    /// Most bytes kept between passes of one signature.
    static let retainedLimit = 1 << 30
    /// Most bytes kept into a pass of another signature.
    static let missLimit = 64 << 20

    private struct Shelves {
        var free: [Int: [[Float]]] = [:]
        var bytes = 0
        var signature: [Int] = []
    }
    private let shelves = Mutex(Shelves())

    /// The process's pool is `shared`; tests make their own.
    init() {}

    /// Stored bytes (tests).
    var bytes: Int { shelves.withLock { $0.bytes } }

    func take(_ count: Int) -> [Float]? {
        shelves.withLock { s in
            guard let a = s.free[count]?.popLast() else { return nil }
            s.bytes -= count * MemoryLayout<Float>.size
            return a
        }
    }

    func give(_ a: inout [Float]) {
        let size = a.count * MemoryLayout<Float>.size
        guard a.count > 0, size <= StoragePool.retainedLimit else { return }
        let taken = a
        a = []
        shelves.withLock { s in
            guard s.bytes + size <= StoragePool.retainedLimit else { return }
            s.free[taken.count, default: []].append(taken)
            s.bytes += size
        }
    }

    /// A pass of `signature` begins: after a pass of another signature, keep at most
    /// `missLimit` bytes (the largest blocks go first: the fewest to unmap).
    func beginPass(_ signature: [Int]) {
        var evicted: [[Float]] = []
        shelves.withLock { s in
            guard s.signature != signature else { return }
            s.signature = signature
            for size in s.free.keys.sorted(by: >) where s.bytes > StoragePool.missLimit {
                while s.bytes > StoragePool.missLimit, let a = s.free[size]?.popLast() {
                    s.bytes -= size * MemoryLayout<Float>.size
                    evicted.append(a)
                }
                if s.free[size]?.isEmpty == true { s.free[size] = nil }
            }
        }
        evicted.removeAll()   // unmapped here, outside the lock
    }
}
