#if canImport(Glibc)
import Glibc
#endif
import F2ACore

// MARK: Pooling

/// Gradient of `maxPool2d`: each output gradient goes to its argmax.
public func maxPoolBackward(_ dy: Tensor, indices: [Int32], inputHeight: Int, inputWidth: Int) -> Tensor {
    // Windows do not overlap, so this is exactly max-unpooling of the gradient.
    maxUnpool2d(dy, indices: indices, height: inputHeight, width: inputWidth)
}

/// Gradient of `maxUnpool2d`: gathers the gradient at every recorded index.
public func maxUnpoolBackward(_ dy: Tensor, indices: [Int32], pooledHeight: Int, pooledWidth: Int) -> Tensor {
    let inPlane = pooledHeight * pooledWidth, outPlane = dy.h * dy.w
    // Every element gathered: no zero fill first.
    return Tensor(shape: [dy.n, dy.c, pooledHeight, pooledWidth]) { o in
        dy.data.withUnsafeBufferPointer { d in
            for p in 0..<(dy.n * dy.c) {
                for i in 0..<inPlane { o[p * inPlane + i] = d[p * outPlane + Int(indices[p * inPlane + i])] }
            }
        }
    }
}
