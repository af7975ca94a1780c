import CKernels

/// Bilinear sampling positions of `count` pixels from `samples` samples
/// (samples ≤ count): pixel centres aligned, clamped at the edges. Pixel i
/// lies between sample `first[i]` and `min(first[i] + 1, samples − 1)`,
/// `weight[i]` of the way to the second. What `guidedMap` reads for columns.
public func bilinearPositions(samples: Int, count: Int) -> (first: [Int32], weight: [Float]) {
    var first = [Int32](repeating: 0, count: count), weight = [Float](repeating: 0, count: count)
    first.withUnsafeMutableBufferPointer { f in
        weight.withUnsafeMutableBufferPointer { w in
            f2a_guided_positions(Int32(samples), Int32(count), f.baseAddress!, w.baseAddress!)
        }
    }
    return (first, weight)
}

/// Guided mode's map of the rectangle (x, y, width, height) of a photo
/// `photoHeight` rows high, vectorised (AVX2/FMA, else a portable loop):
/// each input pixel (interleaved RGB, clamped to [0, 1], NaN → 0) through the
/// affine colour transform bilinearly upsampled from `coefficients` (12 planes
/// of workingWidth × workingHeight: A row-major by output channel, then b),
/// blended with the input by `strength`, clamped to [0, 1]. Columns sample at
/// `columns`/`weights` (`bilinearPositions(samples: workingWidth, count:
/// photo width)`), rows at the same positions in height. `output` may alias
/// `input` (same stride). Strides in floats. Single-threaded.
public func guidedMap(coefficients: UnsafePointer<Float>, workingWidth: Int, workingHeight: Int,
                      columns: UnsafePointer<Int32>, weights: UnsafePointer<Float>, photoHeight: Int,
                      strength: Float, input: UnsafePointer<Float>, inputRowStride: Int,
                      output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                      x: Int, y: Int, width: Int, height: Int, portable: Bool = false) {
    (portable ? f2a_guided_map_portable : f2a_guided_map)(
        coefficients, Int32(workingWidth), Int32(workingHeight), columns, weights, Int32(photoHeight), strength,
        input, inputRowStride, output, outputRowStride, Int32(x), Int32(y), Int32(width), Int32(height))
}

/// `guidedMap` on 8-bit pixels (strides in bytes): each value u goes to the map as
/// u · Float(1 / 255.0) and back as UInt8(clamp(v · 255 + 0.5, 0, 255)), truncated, with
/// separate roundings, which is what libvips's vips_linear1 and vips_cast compute: equal,
/// value for value, to converting, `guidedMap`, converting back.
public func guidedMap8(coefficients: UnsafePointer<Float>, workingWidth: Int, workingHeight: Int,
                       columns: UnsafePointer<Int32>, weights: UnsafePointer<Float>, photoHeight: Int,
                       strength: Float, input: UnsafePointer<UInt8>, inputRowStride: Int,
                       output: UnsafeMutablePointer<UInt8>, outputRowStride: Int,
                       x: Int, y: Int, width: Int, height: Int, portable: Bool = false) {
    (portable ? f2a_guided_map_u8_portable : f2a_guided_map_u8)(
        coefficients, Int32(workingWidth), Int32(workingHeight), columns, weights, Int32(photoHeight), strength,
        input, inputRowStride, output, outputRowStride, Int32(x), Int32(y), Int32(width), Int32(height))
}
