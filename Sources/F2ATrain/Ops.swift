#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import F2ACore

// Forward and backward passes of every layer the trainer needs, on NCHW
// `Tensor`s. Convolutions lower to im2col + sgemm (col2im for the input
// gradient); small spatial sizes are batched several images per GEMM.

/// Grow-only scratch buffers, reused across layers and steps so that the
/// large column matrices are not reallocated (and page-faulted) every call.
public final class Workspace: @unchecked Sendable {
    // Raw allocations (not Swift arrays) so that nested buffers can be held
    // at the same time without exclusivity conflicts.
    private var pointers: [UnsafeMutablePointer<Float>?] = [nil, nil, nil, nil]
    private var capacities = [0, 0, 0, 0]
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
}

/// Columns per GEMM: images are grouped until a group reaches this many
/// output pixels (deep, small layers otherwise make skinny GEMMs).
nonisolated(unsafe) public var gemmColumnTarget = 4096

@inline(__always) func groupSize(_ pixels: Int, _ batch: Int, _ target: Int) -> Int {
    max(1, min(batch, target / max(1, pixels)))
}

// MARK: im2col / col2im

/// Threads for the non-GEMM loops (OpenBLAS's own threads are idle then).
nonisolated(unsafe) public var loopThreads = 2

/// Splits 0..<n into `loopThreads` contiguous chunks run concurrently when
/// `work` (elements touched) is large enough to pay for the hand-off.
@inline(__always)
func parallelChunks(_ n: Int, work: Int, _ body: (Range<Int>) -> Void) {
    let t = min(loopThreads, n)
    if t <= 1 || work < 1 << 16 { body(0..<n); return }
    withoutActuallyEscaping(body) { b in
        let box = UncheckedBox(b)
        DispatchQueue.concurrentPerform(iterations: t) { i in
            box.value((i * n / t)..<((i + 1) * n / t))
        }
    }
}

struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ v: T) { value = v }
}

/// Column matrix rows (c, ky, kx), columns (oy, ox); row r starts at col + r*ld.
func im2colFull(_ src: UnsafePointer<Float>, channels: Int, height: Int, width: Int,
                kernel: Int, stride: Int, padding: Int, outH: Int, outW: Int,
                col: UnsafeMutablePointer<Float>, ld: Int) {
    parallelChunks(channels, work: channels * kernel * kernel * outH * outW) { range in
        im2col(src, channels: range, height: height, width: width, kernel: kernel, stride: stride,
               padding: padding, outRows: 0..<outH, outWidth: outW, into: col, ld: ld)
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
        col2imChannels(col, ld: ld, channels: range, height: height, width: width, kernel: kernel, stride: stride,
                       padding: padding, outH: outH, outW: outW, dst: dst)
    }
}

func col2imChannels(_ col: UnsafePointer<Float>, ld: Int, channels: Range<Int>, height: Int, width: Int,
                    kernel: Int, stride: Int, padding: Int, outH: Int, outW: Int,
                    dst: UnsafeMutablePointer<Float>) {
    var row = col + channels.lowerBound * kernel * kernel * ld
    for c in channels {
        let plane = dst + c * height * width
        for ky in 0..<kernel {
            for kx in 0..<kernel {
                var src = row
                for oy in 0..<outH {
                    let iy = oy * stride - padding + ky
                    if iy >= 0 && iy < height {
                        let line = plane + iy * width
                        if stride == 1 {
                            let shift = kx - padding
                            let lo = min(max(0, -shift), outW), hi = max(min(outW, width - shift), lo)
                            var ox = lo
                            while ox < hi { line[ox + shift] += src[ox]; ox += 1 }
                        } else {
                            for ox in 0..<outW {
                                let ix = ox * stride - padding + kx
                                if ix >= 0 && ix < width { line[ix] += src[ox] }
                            }
                        }
                    }
                    src += outW
                }
                row += ld
            }
        }
    }
}

// MARK: Convolution

/// y = conv(x) + bias (no activation). x: [N, in, H, W].
public func conv2dForward(_ x: Tensor, weight: [Float], bias: [Float], _ g: ConvGeometry,
                          workspace ws: Workspace, columnTarget: Int = gemmColumnTarget) -> Tensor {
    precondition(x.rank == 4 && x.c == g.inChannels, "conv2dForward: input \(x.shape.shapeDescription) for \(g)")
    precondition(weight.count == g.outChannels * g.columnRows && bias.count == g.outChannels)
    let oh = g.outSize(x.h), ow = g.outSize(x.w), ohw = oh * ow
    var y = Tensor(zeros: [x.n, g.outChannels, oh, ow])
    let outPlane = g.outChannels * ohw, kk = g.columnRows
    let group = groupSize(ohw, x.n, columnTarget)
    x.data.withUnsafeBufferPointer { xb in
        weight.withUnsafeBufferPointer { wb in
            y.data.withUnsafeMutableBufferPointer { yb in
                let xp = xb.baseAddress!, wp = wb.baseAddress!, yp = yb.baseAddress!
                var b0 = 0
                while b0 < x.n {
                    let cnt = min(group, x.n - b0), cols = cnt * ohw
                    ws.withBuffer(0, count: g.pointwise && cnt == 1 ? 0 : kk * cols) { col in
                        let bsrc = lowerImages(xp, shape: x.shape, images: b0..<(b0 + cnt), geometry: g, into: col)
                        if cnt == 1 {
                            sgemm(m: g.outChannels, n: ohw, k: kk, a: wp, lda: kk, b: bsrc, ldb: ohw,
                                  c: yp + b0 * outPlane, ldc: ohw)
                        } else {
                            ws.withBuffer(1, count: g.outChannels * cols) { tmp in
                                sgemm(m: g.outChannels, n: cols, k: kk, a: wp, lda: kk, b: bsrc, ldb: cols, c: tmp, ldc: cols)
                                for j in 0..<cnt {
                                    for o in 0..<g.outChannels {
                                        (yp + (b0 + j) * outPlane + o * ohw).update(from: tmp + o * cols + j * ohw, count: ohw)
                                    }
                                }
                            }
                        }
                    }
                    b0 += cnt
                }
                bias.withUnsafeBufferPointer { bb in
                    for b in 0..<x.n {
                        for o in 0..<g.outChannels {
                            let v = bb[o], p = yp + b * outPlane + o * ohw
                            for i in 0..<ohw { p[i] += v }
                        }
                    }
                }
            }
        }
    }
    return y
}

/// Backward of `conv2dForward`: accumulates dW and dB (if given) and returns
/// dx when `inputGradient` is true.
///
/// `inputGradientChannels` c limits the input gradient to the first c input channels
/// (a decoder conv whose other inputs are a frozen encoder's skip): dx is [N, c, H, W].
public func conv2dBackward(_ x: Tensor, dy: Tensor, weight: [Float], _ g: ConvGeometry,
                           dW: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
                           inputGradient: Bool, inputGradientChannels: Int? = nil,
                           workspace ws: Workspace, columnTarget: Int = gemmColumnTarget) -> Tensor? {
    let oh = g.outSize(x.h), ow = g.outSize(x.w), ohw = oh * ow
    precondition(dy.shape == [x.n, g.outChannels, oh, ow], "conv2dBackward: dy \(dy.shape.shapeDescription)")
    let outPlane = g.outChannels * ohw, kk = g.columnRows, oc = g.outChannels
    let dxChannels = inputGradientChannels ?? x.c
    precondition((1...x.c).contains(dxChannels), "conv2dBackward: input gradient of \(dxChannels) of \(x.c) channels")
    // Column rows are channel-major, so the first channels' rows come first.
    let inPlane = dxChannels * x.h * x.w, kkDx = dxChannels * g.kernel * g.kernel
    var dx = inputGradient ? Tensor(zeros: [x.n, dxChannels, x.h, x.w]) : Tensor(zeros: [0])
    let group = groupSize(ohw, x.n, columnTarget)
    x.data.withUnsafeBufferPointer { xb in
        dy.data.withUnsafeBufferPointer { db in
            weight.withUnsafeBufferPointer { wb in
                dx.data.withUnsafeMutableBufferPointer { dxb in
                    let xp = xb.baseAddress!, dyp = db.baseAddress!, wp = wb.baseAddress!
                    if let dB {
                        for b in 0..<x.n {
                            for o in 0..<oc {
                                let p = dyp + b * outPlane + o * ohw
                                var s: Float = 0
                                for i in 0..<ohw { s += p[i] }
                                dB[o] += s
                            }
                        }
                    }
                    var b0 = 0
                    while b0 < x.n {
                        let cnt = min(group, x.n - b0), cols = cnt * ohw
                        ws.withBuffer(1, count: cnt == 1 ? 0 : oc * cols) { gbuf in
                            // dY of the group as [oc, cols].
                            let dyg: UnsafePointer<Float>
                            if cnt == 1 { dyg = dyp + b0 * outPlane } else {
                                for j in 0..<cnt {
                                    for o in 0..<oc {
                                        (gbuf + o * cols + j * ohw).update(from: dyp + (b0 + j) * outPlane + o * ohw, count: ohw)
                                    }
                                }
                                dyg = UnsafePointer(gbuf)
                            }
                            let direct = g.pointwise && cnt == 1
                            if dW != nil { ws.withBuffer(0, count: direct ? 0 : kk * cols) { col in
                                let xcol = lowerImages(xp, shape: x.shape, images: b0..<(b0 + cnt), geometry: g, into: col)
                                if let dW {
                                    sgemm(transB: true, m: oc, n: kk, k: cols, a: dyg, lda: cols, b: xcol, ldb: cols,
                                          beta: 1, c: dW, ldc: kk)
                                }
                            } }
                            if inputGradient {
                                let dxp = dxb.baseAddress!
                                if direct {
                                    sgemm(transA: true, m: kkDx, n: ohw, k: oc, a: wp, lda: kk, b: dyg, ldb: ohw,
                                          c: dxp + b0 * inPlane, ldc: ohw)
                                } else {
                                    ws.withBuffer(2, count: kkDx * cols) { dcol in
                                        sgemm(transA: true, m: kkDx, n: cols, k: oc, a: wp, lda: kk, b: dyg, ldb: cols,
                                              c: dcol, ldc: cols)
                                        for j in 0..<cnt {
                                            let dst = dxp + (b0 + j) * inPlane
                                            if g.pointwise {
                                                for c in 0..<kkDx { (dst + c * ohw).update(from: dcol + c * cols + j * ohw, count: ohw) }
                                            } else {
                                                col2imAdd(dcol + j * ohw, ld: cols, channels: dxChannels, height: x.h, width: x.w,
                                                          kernel: g.kernel, stride: g.stride, padding: g.padding,
                                                          outH: oh, outW: ow, dst: dst)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        b0 += cnt
                    }
                }
            }
        }
    }
    return inputGradient ? dx : nil
}

// MARK: Transposed convolution 2x2 stride 2

/// y = convT(x) + bias; weight [in, out, 2, 2]. Same GEMM and scatter as
/// F2ACore.ConvTranspose2d, so the result is identical.
public func convTranspose2x2Forward(_ x: Tensor, weight: [Float], bias: [Float], outChannels oc: Int) -> Tensor {
    let cin = x.c, h = x.h, w = x.w, hw = h * w
    precondition(weight.count == cin * oc * 4 && bias.count == oc)
    var y = Tensor(zeros: [x.n, oc, 2 * h, 2 * w])
    var tmp = [Float](repeating: 0, count: oc * 4 * hw)
    x.data.withUnsafeBufferPointer { xp in
        weight.withUnsafeBufferPointer { wp in
            y.data.withUnsafeMutableBufferPointer { yp in
                tmp.withUnsafeMutableBufferPointer { tp in
                    for b in 0..<x.n {
                        sgemm(transA: true, m: oc * 4, n: hw, k: cin, a: wp.baseAddress!, lda: oc * 4,
                              b: xp.baseAddress! + b * cin * hw, ldb: hw, c: tp.baseAddress!, ldc: hw)
                        let out = yp.baseAddress! + b * oc * 4 * hw
                        for o in 0..<oc {
                            let plane = out + o * 4 * hw
                            let bv = bias[o]
                            for d in 0..<4 {
                                let dy = d >> 1, dx = d & 1
                                let t = tp.baseAddress! + (o * 4 + d) * hw
                                for iy in 0..<h {
                                    let row = plane + (2 * iy + dy) * 2 * w + dx
                                    let trow = t + iy * w
                                    for ix in 0..<w { row[2 * ix] = trow[ix] + bv }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return y
}

public func convTranspose2x2Backward(_ x: Tensor, dy: Tensor, weight: [Float], outChannels oc: Int,
                                     dW: UnsafeMutablePointer<Float>, dB: UnsafeMutablePointer<Float>) -> Tensor {
    let cin = x.c, h = x.h, w = x.w, hw = h * w
    precondition(dy.shape == [x.n, oc, 2 * h, 2 * w])
    var dx = Tensor(zeros: x.shape)
    var tmp = [Float](repeating: 0, count: oc * 4 * hw)
    x.data.withUnsafeBufferPointer { xp in
        dy.data.withUnsafeBufferPointer { dyp in
            weight.withUnsafeBufferPointer { wp in
                dx.data.withUnsafeMutableBufferPointer { dxp in
                    tmp.withUnsafeMutableBufferPointer { tp in
                        for b in 0..<x.n {
                            let src = dyp.baseAddress! + b * oc * 4 * hw
                            for o in 0..<oc {
                                let plane = src + o * 4 * hw
                                var s: Float = 0
                                for d in 0..<4 {
                                    let ddy = d >> 1, ddx = d & 1
                                    let t = tp.baseAddress! + (o * 4 + d) * hw
                                    for iy in 0..<h {
                                        let row = plane + (2 * iy + ddy) * 2 * w + ddx
                                        let trow = t + iy * w
                                        for ix in 0..<w { let v = row[2 * ix]; trow[ix] = v; s += v }
                                    }
                                }
                                dB[o] += s
                            }
                            // dW[cin, oc*4] += x[cin, hw] · tmpᵀ
                            sgemm(transB: true, m: cin, n: oc * 4, k: hw, a: xp.baseAddress! + b * cin * hw, lda: hw,
                                  b: tp.baseAddress!, ldb: hw, beta: 1, c: dW, ldc: oc * 4)
                            // dx[cin, hw] = W[cin, oc*4] · tmp
                            sgemm(m: cin, n: hw, k: oc * 4, a: wp.baseAddress!, lda: oc * 4, b: tp.baseAddress!, ldb: hw,
                                  c: dxp.baseAddress! + b * cin * hw, ldc: hw)
                        }
                    }
                }
            }
        }
    }
    return dx
}

// MARK: Pooling

/// Gradient of `maxPool2d`: each output gradient goes to its argmax.
public func maxPoolBackward(_ dy: Tensor, indices: [Int32], inputHeight: Int, inputWidth: Int) -> Tensor {
    // Windows do not overlap, so this is exactly max-unpooling of the gradient.
    maxUnpool2d(dy, indices: indices, height: inputHeight, width: inputWidth)
}

/// Gradient of `maxUnpool2d`: gathers the gradient at every recorded index.
public func maxUnpoolBackward(_ dy: Tensor, indices: [Int32], pooledHeight: Int, pooledWidth: Int) -> Tensor {
    var dx = Tensor(zeros: [dy.n, dy.c, pooledHeight, pooledWidth])
    let inPlane = pooledHeight * pooledWidth, outPlane = dy.h * dy.w
    dy.data.withUnsafeBufferPointer { d in
        dx.data.withUnsafeMutableBufferPointer { o in
            for p in 0..<(dy.n * dy.c) {
                for i in 0..<inPlane { o[p * inPlane + i] = d[p * outPlane + Int(indices[p * inPlane + i])] }
            }
        }
    }
    return dx
}

// MARK: Concatenation

/// Splits a channel-concatenated gradient back into its two parts.
public func splitChannels(_ t: Tensor, first: Int) -> (Tensor, Tensor) {
    let second = t.c - first, plane = t.h * t.w
    var a = Tensor(zeros: [t.n, first, t.h, t.w]), b = Tensor(zeros: [t.n, second, t.h, t.w])
    t.data.withUnsafeBufferPointer { s in
        a.data.withUnsafeMutableBufferPointer { ap in
            b.data.withUnsafeMutableBufferPointer { bp in
                for i in 0..<t.n {
                    let src = s.baseAddress! + i * t.c * plane
                    if first > 0 { (ap.baseAddress! + i * first * plane).update(from: src, count: first * plane) }
                    if second > 0 { (bp.baseAddress! + i * second * plane).update(from: src + first * plane, count: second * plane) }
                }
            }
        }
    }
    return (a, b)
}

// MARK: Pointwise

public enum Pointwise {
    public static func relu(_ t: inout Tensor) {
        t.data.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = max(p[i], 0) } }
    }
    /// dy *= (y > 0), y the ReLU output.
    public static func reluBackward(_ dy: inout Tensor, output y: Tensor) {
        y.data.withUnsafeBufferPointer { yp in
            dy.data.withUnsafeMutableBufferPointer { d in for i in d.indices where !(yp[i] > 0) { d[i] = 0 } }
        }
    }
    public static func leakyRelu(_ t: inout Tensor, slope: Float) {
        t.data.withUnsafeMutableBufferPointer { p in for i in p.indices where p[i] < 0 { p[i] *= slope } }
    }
    /// y the LeakyReLU output (same sign as its input for slope > 0).
    public static func leakyReluBackward(_ dy: inout Tensor, output y: Tensor, slope: Float) {
        y.data.withUnsafeBufferPointer { yp in
            dy.data.withUnsafeMutableBufferPointer { d in for i in d.indices where !(yp[i] > 0) { d[i] *= slope } }
        }
    }
    /// dy *= y(1 − y), y the sigmoid output.
    public static func sigmoidBackward(_ dy: inout Tensor, output y: Tensor) {
        y.data.withUnsafeBufferPointer { yp in
            dy.data.withUnsafeMutableBufferPointer { d in for i in d.indices { d[i] *= yp[i] * (1 - yp[i]) } }
        }
    }
    /// dy *= 1 − t², t the tanh output.
    public static func tanhBackward(_ dy: inout Tensor, output t: Tensor) {
        t.data.withUnsafeBufferPointer { tp in
            dy.data.withUnsafeMutableBufferPointer { d in for i in d.indices { d[i] *= 1 - tp[i] * tp[i] } }
        }
    }
    /// x ← a·x + b.
    public static func affine(_ t: inout Tensor, _ a: Float, _ b: Float) {
        t.data.withUnsafeMutableBufferPointer { p in for i in p.indices { p[i] = a * p[i] + b } }
    }
    public static func add(_ a: inout Tensor, _ b: Tensor) {
        precondition(a.shape == b.shape)
        b.data.withUnsafeBufferPointer { bp in
            a.data.withUnsafeMutableBufferPointer { ap in for i in ap.indices { ap[i] += bp[i] } }
        }
    }
}

// MARK: Normalisation

public enum NormKind: String, Codable, Sendable, CaseIterable { case instance, batch, none }

/// What the normalisation backward needs.
public struct NormCache {
    var xhat: Tensor
    var invStd: [Float]
}

/// Instance norm (statistics per sample and channel) or batch norm
/// (statistics per channel over the batch, training mode), with affine
/// gamma/beta, eps 1e-5, biased variance.
public func normForward(_ x: Tensor, kind: NormKind, gamma: [Float], beta: [Float], eps: Float = 1e-5) -> (Tensor, NormCache) {
    precondition(kind != .none && gamma.count == x.c && beta.count == x.c)
    let n = x.n, c = x.c, plane = x.h * x.w
    var y = Tensor(zeros: x.shape), xhat = Tensor(zeros: x.shape)
    let groups = kind == .instance ? n * c : c
    var inv = [Float](repeating: 0, count: groups)
    // Segments of a statistics group: instance → one plane; batch → one plane per sample.
    func segments(_ gi: Int) -> [Int] {
        kind == .instance ? [gi * plane] : (0..<n).map { ($0 * c + gi) * plane }
    }
    x.data.withUnsafeBufferPointer { xp in
        xhat.data.withUnsafeMutableBufferPointer { hp in
            y.data.withUnsafeMutableBufferPointer { yp in
                for gi in 0..<groups {
                    let segs = segments(gi), count = Double(segs.count * plane)
                    var s = 0.0
                    for o in segs { for i in 0..<plane { s += Double(xp[o + i]) } }
                    let mean = s / count
                    var v = 0.0
                    for o in segs { for i in 0..<plane { let d = Double(xp[o + i]) - mean; v += d * d } }
                    let invStd = Float(1 / (v / count + Double(eps)).squareRoot())
                    inv[gi] = invStd
                    let ch = kind == .instance ? gi % c : gi
                    let m = Float(mean), ga = gamma[ch], be = beta[ch]
                    for o in segs {
                        for i in 0..<plane {
                            let h = (xp[o + i] - m) * invStd
                            hp[o + i] = h
                            yp[o + i] = ga * h + be
                        }
                    }
                }
            }
        }
    }
    return (y, NormCache(xhat: xhat, invStd: inv))
}

public func normBackward(_ dy: Tensor, cache: NormCache, kind: NormKind, gamma: [Float],
                         dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>) -> Tensor {
    let n = dy.n, c = dy.c, plane = dy.h * dy.w
    var dx = Tensor(zeros: dy.shape)
    let groups = kind == .instance ? n * c : c
    dy.data.withUnsafeBufferPointer { dp in
        cache.xhat.data.withUnsafeBufferPointer { hp in
            dx.data.withUnsafeMutableBufferPointer { xp in
                for gi in 0..<groups {
                    let segs = kind == .instance ? [gi * plane] : (0..<n).map { ($0 * c + gi) * plane }
                    let count = Double(segs.count * plane)
                    let ch = kind == .instance ? gi % c : gi
                    var sdy = 0.0, sdyh = 0.0
                    for o in segs { for i in 0..<plane { sdy += Double(dp[o + i]); sdyh += Double(dp[o + i] * hp[o + i]) } }
                    dGamma[ch] += Float(sdyh)
                    dBeta[ch] += Float(sdy)
                    // dxhat = gamma·dy; dx = invStd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat))
                    let g = gamma[ch], inv = cache.invStd[gi]
                    let m1 = Float(sdy / count) * g, m2 = Float(sdyh / count) * g
                    for o in segs {
                        for i in 0..<plane { xp[o + i] = inv * (g * dp[o + i] - m1 - hp[o + i] * m2) }
                    }
                }
            }
        }
    }
    return dx
}
