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
    public init(shape: [Int], overwrittenBy body: (UnsafeMutableBufferPointer<Float>) -> Void) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        let count = shape.reduce(1, *)
        self.shape = shape
        self.data = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            body(buffer)
            initialized = count
        }
    }

    public var count: Int { data.count }
    public var rank: Int { shape.count }

    /// Dimensions of an NCHW activation.
    public var n: Int { shape[0] }
    public var c: Int { shape[1] }
    public var h: Int { shape[2] }
    public var w: Int { shape[3] }

    /// Same values, new shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, data: data)
    }
}

extension Array where Element == Int {
    /// "[64, 3, 3, 3]"-style rendering used in error messages.
    public var shapeDescription: String { "[" + map(String.init).joined(separator: ", ") + "]" }
}
