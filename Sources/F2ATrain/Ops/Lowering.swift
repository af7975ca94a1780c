#if canImport(Glibc)
import Glibc
#endif
import F2ACore

// Workspace, convolution geometry and the im2col / col2im lowering every
// convolution of the trainer goes through (small spatial sizes are batched
// several images per GEMM).

/// Grow-only scratch buffers, reused across layers and steps so that the
/// large column matrices are not reallocated (and page-faulted) every call.
public final class Workspace: @unchecked Sendable {
    // Raw allocations (not Swift arrays) so that nested buffers can be held
    // at the same time without exclusivity conflicts.
    private var pointers = [UnsafeMutablePointer<Float>?](repeating: nil, count: 5)
    private var capacities = [Int](repeating: 0, count: 5)
    public init() {}
    deinit { for p in pointers { p?.deallocate() } }

    /// Buffer `slot` with at least `count` floats (contents unspecified).
    func withBuffer<R>(_ slot: Int, count: Int, _ body: (UnsafeMutablePointer<Float>) -> R) -> R {
        if capacities[slot] < max(count, 1) {
            pointers[slot]?.deallocate()
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            p.initialize(repeating: 0, count: max(count, 1))
            pointers[slot] = p
            capacities[slot] = max(count, 1)
        }
        let p = pointers[slot]!
        return body(p)
    }
}

/// An array of `count` floats left uninitialised, for scratch that is written whole before
/// it is read (a zero fill of tens of MB per step was measurable). An empty one is `[]`:
/// with a capacity of 0 the initialiser stores the count into Swift's one shared empty-array
/// storage, which ThreadSanitizer reported as a race between trainers on two threads.
@inline(__always) func uninitializedFloats(_ count: Int) -> [Float] {
    count == 0 ? [] : [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}

/// Geometry of a square-kernel convolution.
public struct ConvGeometry: Equatable, Sendable {
    public var inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
    public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0) {
        self.inChannels = inChannels; self.outChannels = outChannels
        self.kernel = kernel; self.stride = stride; self.padding = padding
    }
    public func outSize(_ n: Int) -> Int { (n + 2 * padding - kernel) / stride + 1 }
    var columnRows: Int { inChannels * kernel * kernel }
    var pointwise: Bool { kernel == 1 && stride == 1 && padding == 0 }
    public var weightShape: [Int] { [outChannels, inChannels, kernel, kernel] }
    /// Multiply-adds ×2 of the convolution of `images` images of height × width.
    public func flops(images: Int, height: Int, width: Int) -> Double {
        2 * Double(images * outSize(height) * outSize(width)) * Double(inChannels * outChannels * kernel * kernel)
    }
}

/// Columns per GEMM: images are grouped until a group reaches this many
/// output pixels (deep, small layers otherwise make skinny GEMMs).
nonisolated(unsafe) public var gemmColumnTarget = 4096

@inline(__always) func groupSize(_ pixels: Int, _ batch: Int, _ target: Int) -> Int {
    max(1, min(batch, target / max(1, pixels)))
}

// MARK: im2col / col2im

/// Column matrix rows (c, ky, kx), columns (oy, ox); row r starts at col + r*ld.
func im2colFull(_ src: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                kernel: Int, stride: Int, padding: Int, outH: Int, outW: Int,
                col: UnsafeMutablePointer<Float>, ld: Int) {
    parallelChunks(channels, work: channels * kernel * kernel * outH * outW) { range in
        if stride == 1 {
            im2col(src, channels: range, height: height, width: width, kernel: kernel, stride: stride,
                   padding: padding, outRows: 0..<outH, outWidth: outW, into: col, ld: ld)
        } else {
            im2colStrided(src, channels: range, height: height, width: width, kernel: kernel, stride: stride,
                          padding: padding, outH: outH, outW: outW, into: col, ld: ld)
        }
    }
}

/// F2ACore's `im2col` for stride > 1 with the padding handled per row and tap
/// instead of per element: the PatchGAN's 4x4 stride-2 layers.
func im2colStrided(_ src: UnsafePointer<Float>, channels: Range<Int>, height: Int, width: Int,
                   kernel: Int, stride s: Int, padding: Int, outH: Int, outW: Int,
                   into col: UnsafeMutablePointer<Float>, ld: Int) {
    var row = col + channels.lowerBound * kernel * kernel * ld
    for c in channels {
        let plane = src + c * height * width
        for ky in 0..<kernel {
            let rows = validOutputRange(tap: ky, stride: s, padding: padding, inSize: height, outSize: outH)
            for kx in 0..<kernel {
                let cols = validOutputRange(tap: kx, stride: s, padding: padding, inSize: width, outSize: outW)
                let shift = kx - padding
                if rows.lowerBound > 0 { row.update(repeating: 0, count: rows.lowerBound * outW) }
                for oy in rows {
                    let out = row + oy * outW, line = plane + (oy * s - padding + ky) * width + shift
                    if cols.lowerBound > 0 { out.update(repeating: 0, count: cols.lowerBound) }
                    for ox in cols { out[ox] = line[ox * s] }
                    if cols.upperBound < outW { (out + cols.upperBound).update(repeating: 0, count: outW - cols.upperBound) }
                }
                if rows.upperBound < outH { (row + rows.upperBound * outW).update(repeating: 0, count: (outH - rows.upperBound) * outW) }
                row += ld
            }
        }
    }
}

/// The adjoint of `im2colStrided`: dst += col2im(col). Column row (c, ky, kx) is tap
/// `weightIndex` of `forEachTapRow`, which visits them in the order they are stored.
func col2imStrided(_ col: UnsafePointer<Float>, ld: Int, channels: Range<Int>, height: Int, width: Int,
                   kernel: Int, stride s: Int, padding: Int, outH: Int, outW: Int,
                   addingInto dst: UnsafeMutablePointer<Float>) {
    let g = ConvGeometry(channels.upperBound, 1, kernel: kernel, stride: s, padding: padding)
    forEachTapRow(g, channels: channels, height: height, width: width, outH: outH, outW: outW) { c, wi, iy, oy, cols, shift in
        let v = col + wi * ld + oy * outW, line = dst + (c * height + iy) * width + shift
        for ox in cols { line[ox * s] += v[ox] }
    }
}

/// The column matrix of images `images` of x ([N, C, H, W] at `xp`) side by
/// side (rows (c, ky, kx), ld = images.count·oh·ow) written into `col`; a
/// single pointwise image is its own column matrix and is returned as is.
func lowerImages(_ xp: UnsafePointer<Float>, shape: [Int], images: Range<Int>, geometry g: ConvGeometry,
                 into col: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
    let (c, h, w) = (shape[1], shape[2], shape[3])
    let oh = g.outSize(h), ow = g.outSize(w), ohw = oh * ow, inPlane = c * h * w
    if g.pointwise && images.count == 1 { return xp + images.lowerBound * inPlane }
    let cols = images.count * ohw
    for (j, b) in images.enumerated() {
        if g.pointwise {
            let s = xp + b * inPlane
            for r in 0..<g.columnRows { (col + r * cols + j * ohw).update(from: s + r * ohw, count: ohw) }
        } else {
            im2colFull(xp + b * inPlane, channels: c, height: h, width: w, kernel: g.kernel, stride: g.stride,
                       padding: g.padding, outH: oh, outW: ow, col: col + j * ohw, ld: cols)
        }
    }
    return UnsafePointer(col)
}

/// Adjoint of `im2colFull`: dst += scatter(col).
func col2imAdd(_ col: UnsafePointer<Float>, ld: Int, channels: Int, height: Int, width: Int,
               kernel: Int, stride: Int, padding: Int, outH: Int, outW: Int,
               dst: UnsafeMutablePointer<Float>) {
    parallelChunks(channels, work: channels * kernel * kernel * outH * outW) { range in
        if stride == 1 {
            col2im(col, ld: ld, channels: range, height: height, width: width, kernel: kernel, stride: stride,
                   padding: padding, outRows: 0..<outH, outWidth: outW, addingInto: dst)
        } else {
            col2imStrided(col, ld: ld, channels: range, height: height, width: width, kernel: kernel, stride: stride,
                          padding: padding, outH: outH, outW: outW, addingInto: dst)
        }
    }
}
