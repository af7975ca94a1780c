import CKernels
#if canImport(Glibc)
import Glibc
#endif

let simdKernelsAvailable = f2a_kernels_available() != 0

/// Calls `body` with pointers to image `image` of each source tensor.
func withBasePointers<R>(_ sources: [Tensor], image: Int, _ body: ([UnsafePointer<Float>?]) -> R) -> R {
    func recurse(_ i: Int, _ acc: [UnsafePointer<Float>?]) -> R {
        if i == sources.count { return body(acc) }
        let plane = sources[i].c * sources[i].h * sources[i].w
        return sources[i].data.withUnsafeBufferPointer { recurse(i + 1, acc + [$0.baseAddress! + image * plane]) }
    }
    return recurse(0, [])
}

/// 2-D convolution, square kernel, zero padding, stride, bias.
///
/// Parameters are named as in the checkpoint: `weight` [out, in, k, k] and
/// `bias` [out]. 3x3 convolutions with stride 1 and padding 1 (almost all of
/// the network) run as Winograd F(4x4, 3x3) in CKernels when the CPU has
/// AVX2/FMA, a batch of small images as one `BatchMosaic`. Everything else
/// lowers a band of output rows at a time to a column matrix (im2col) and
/// multiplies it with the weight matrix through BLAS, so the scratch memory
/// stays bounded whatever the image size.
public struct Conv2d: Sendable {
    public let weight: Tensor
    public let bias: Tensor
    public let stride: Int
    public let padding: Int
    /// Weights in the 3x3 kernel's Winograd layout (F2ACore's `f2a_conv3x3`);
    /// empty when that kernel does not apply (other shapes, or a CPU without
    /// AVX2/FMA: im2col + BLAS then).
    let packed: [Float]

    public var inChannels: Int { weight.shape[1] }
    public var outChannels: Int { weight.shape[0] }
    public var kernelSize: Int { weight.shape[2] }

    /// The only initialiser, so that no layer can run with weights the kernel has not
    /// packed: the layer is immutable and packed here once.
    /// `weight` [out, in, k, k], `bias` [out].
    public init(weight: Tensor, bias: Tensor, stride: Int = 1, padding: Int) {
        precondition(weight.rank == 4 && weight.shape[2] == weight.shape[3] && bias.shape == [weight.shape[0]],
                     "Conv2d: weight \(weight.shape.shapeDescription) and bias \(bias.shape.shapeDescription) "
                        + "are not [out, in, k, k] and [out]")
        precondition(stride >= 1 && padding >= 0, "Conv2d: stride \(stride), padding \(padding)")
        self.weight = weight
        self.bias = bias
        self.stride = stride
        self.padding = padding
        let count = Self.packedCount(outChannels: weight.shape[0], inChannels: weight.shape[1],
                                     kernelSize: weight.shape[2], stride: stride, padding: padding)
        guard count > 0 else { packed = []; return }
        let (cout, cin) = (Int32(weight.shape[0]), Int32(weight.shape[1]))
        packed = [Float](unsafeUninitializedCapacity: count) { p, n in
            weight.data.withUnsafeBufferPointer { f2a_conv3x3_pack($0.baseAddress!, cout, cin, p.baseAddress!, Int32(Conv2d.threadCount)) }
            n = count
        }
    }

    /// Floats the initialiser packs for these weights (0: not packed), so that a loader can
    /// find out before the allocation whether it can be made.
    public static func packedCount(outChannels: Int, inChannels: Int, kernelSize: Int,
                                   stride: Int = 1, padding: Int) -> Int {
        guard kernelSize == 3, stride == 1, padding == 1, simdKernelsAvailable else { return 0 }
        return f2a_conv3x3_packed_count(Int32(outChannels), Int32(inChannels))
    }

    /// y = activation(conv(concat(sources)) + bias): the channel concatenation
    /// of `sources` ([N, c_i, H, W] each) is the input, without materialising it
    /// when the 3x3 kernel applies.
    ///
    /// `gate` ([N, out, H', W'], or nil): afterwards y = gate > 0 ? y : 0 elementwise
    /// (`Activation.reluGate`), in the 3x3 kernel's store where it runs: the trainer's input
    /// gradient through the ReLU whose output is `gate`, without a pass of its own.
    public func callAsFunction(concatenating sources: [Tensor], activation: Activation = .identity,
                               gate: Tensor? = nil) -> Tensor {
        precondition(!sources.isEmpty)
        guard !packed.isEmpty else {
            return self(sources.dropFirst().reduce(sources[0]) { concatChannels($0, $1) }, activation: activation, gate: gate)
        }
        let n = sources[0].n, h = sources[0].h, w = sources[0].w
        precondition(sources.allSatisfy { $0.rank == 4 && $0.n == n && $0.h == h && $0.w == w }
                     && sources.reduce(0, { $0 + $1.c }) == inChannels,
                     "Conv2d expects \(inChannels) input channels, got \(sources.map { $0.shape.shapeDescription })")
        precondition(gate.map { $0.shape == [n, outChannels, h, w] } ?? true,
                     "Conv2d: gate \(gate?.shape.shapeDescription ?? "") for output [\(n), \(outChannels), \(h), \(w)]")
        // The kernel stores relu(conv + bias) and gates it; other activations come after the store.
        let fused = activation == .relu || activation == .identity
        var y: Tensor
        if let mosaic = BatchMosaic(images: n, height: h, width: w) {
            y = self(mosaic: mosaic, sources, relu: activation == .relu, gate: fused ? gate : nil)
        } else {
            let channels = sources.map { Int32($0.c) }
            let outPlane = outChannels * h * w
            y = Tensor(shape: [n, outChannels, h, w]) { yp in
                for b in 0..<n {
                    withBasePointers(sources, image: b) { bases in
                        withGatePointer(fused ? gate : nil, offset: b * outPlane) { gp in
                            run3x3(bases, channels, height: h, width: w, relu: activation == .relu, gate: gp,
                                   into: yp.baseAddress! + b * outPlane)
                        }
                    }
                }
            }
        }
        if !fused {
            activation.apply(&y)
            if let gate { Self.applyGate(&y, gate) }
        }
        return y
    }

    /// The 3x3 kernel on one image, the channel concatenation of `bases` (`channels` planes
    /// each): out [outChannels, height, width], gated by `gate` (same shape) if given.
    private func run3x3(_ bases: [UnsafePointer<Float>?], _ channels: [Int32], height: Int, width: Int, relu: Bool,
                        gate: UnsafePointer<Float>?, into out: UnsafeMutablePointer<Float>) {
        let status = f2a_conv3x3(bases, channels, Int32(bases.count), Int32(height), Int32(width), packed, bias.data,
                                 Int32(outChannels), relu ? 1 : 0, gate, out, Int32(Conv2d.threadCount))
        precondition(status == 0, "Conv2d: out of memory for the 3x3 kernel's workspace")
    }

    /// `callAsFunction(concatenating:)` on a batch of small images run as one mosaic image;
    /// the gate is applied as the images are cut out of the mosaic.
    private func callAsFunction(mosaic: BatchMosaic, _ sources: [Tensor], relu: Bool, gate: Tensor?) -> Tensor {
        let input = mosaic.pack(sources)
        let mh = mosaic.mosaicHeight, mw = mosaic.mosaicWidth
        var output = [Float](unsafeUninitializedCapacity: outChannels * mh * mw) { _, n in n = outChannels * mh * mw }
        input.withUnsafeBufferPointer { ip in
            output.withUnsafeMutableBufferPointer { op in
                run3x3([ip.baseAddress!], [Int32(inChannels)], height: mh, width: mw, relu: relu, gate: nil,
                       into: op.baseAddress!)
            }
        }
        return Tensor(shape: [mosaic.images, outChannels, mosaic.height, mosaic.width]) { yp in
            output.withUnsafeBufferPointer { op in
                withGatePointer(gate, offset: 0) { gp in
                    mosaic.unpack(op.baseAddress!, channels: outChannels, gate: gp, into: yp.baseAddress!)
                }
            }
        }
    }

    /// y = gate > 0 ? y : 0 (same shapes) as a pass of its own, where the kernel does not apply it.
    static func applyGate(_ y: inout Tensor, _ gate: Tensor) {
        precondition(y.shape == gate.shape, "Conv2d: gate \(gate.shape.shapeDescription) for output \(y.shape.shapeDescription)")
        y.data.withUnsafeMutableBufferPointer { yp in
            gate.data.withUnsafeBufferPointer { Activation.reluGate(yp.baseAddress!, by: $0.baseAddress!, count: yp.count) }
        }
    }

    /// Threads of the 3x3 kernel: one per online CPU (at most 16).
    public static let threadCount: Int = max(1, min(16, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN)))))

    /// Output spatial size for an input extent.
    public func outputSize(_ inputSize: Int) -> Int {
        (inputSize + 2 * padding - kernelSize) / stride + 1
    }

    /// Scratch budget of the column matrix, in floats (16 MiB).
    static let columnBudget = 4 << 20

    /// y = activation(conv(x) + bias). x: [N, in, H, W] → [N, out, H', W'].
    /// `gate`: as in `callAsFunction(concatenating:activation:gate:)`.
    public func callAsFunction(_ x: Tensor, activation: Activation = .identity, gate: Tensor? = nil) -> Tensor {
        precondition(x.rank == 4 && x.c == inChannels,
                     "Conv2d expects [N, \(inChannels), H, W], got \(x.shape.shapeDescription)")
        if !packed.isEmpty { return self(concatenating: [x], activation: activation, gate: gate) }
        let oh = outputSize(x.h), ow = outputSize(x.w)
        var y = Tensor(zeros: [x.n, outChannels, max(oh, 0), max(ow, 0)])
        guard oh > 0, ow > 0 else { return y }
        let k = kernelSize
        let kk = inChannels * k * k
        let pointwise = k == 1 && stride == 1 && padding == 0
        let bandRows = max(1, min(oh, Conv2d.columnBudget / max(1, kk * ow)))
        var column = [Float](repeating: 0, count: pointwise ? 0 : kk * bandRows * ow)
        let inPlane = x.c * x.h * x.w, outPlane = outChannels * oh * ow
        x.data.withUnsafeBufferPointer { xp in
            weight.data.withUnsafeBufferPointer { wp in
                y.data.withUnsafeMutableBufferPointer { yp in
                    column.withUnsafeMutableBufferPointer { cp in
                        for b in 0..<x.n {
                            let src = xp.baseAddress! + b * inPlane
                            let dst = yp.baseAddress! + b * outPlane
                            if pointwise {
                                sgemm(m: outChannels, n: oh * ow, k: kk,
                                      a: wp.baseAddress!, lda: kk, b: src, ldb: oh * ow,
                                      c: dst, ldc: oh * ow)
                                continue
                            }
                            var y0 = 0
                            while y0 < oh {
                                let rows = min(bandRows, oh - y0)
                                im2col(src, channels: 0..<x.c, height: x.h, width: x.w,
                                       kernel: k, stride: stride, padding: padding,
                                       outRows: y0..<(y0 + rows), outWidth: ow,
                                       into: cp.baseAddress!, ld: rows * ow)
                                sgemm(m: outChannels, n: rows * ow, k: kk,
                                      a: wp.baseAddress!, lda: kk,
                                      b: cp.baseAddress!, ldb: rows * ow,
                                      c: dst + y0 * ow, ldc: oh * ow)
                                y0 += rows
                            }
                        }
                    }
                }
            }
        }
        addBias(&y, bias, activation: activation)
        if let gate { Self.applyGate(&y, gate) }
        return y
    }
}

/// body(gate's storage from `offset` on), or body(nil) without a gate.
private func withGatePointer<R>(_ gate: Tensor?, offset: Int, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let gate else { return body(nil) }
    return gate.data.withUnsafeBufferPointer { body($0.baseAddress! + offset) }
}

/// Lowers output rows `outRows` of a convolution to column-matrix rows
/// (c, ky, kx) for the channels in `channels`, columns (oy, ox): the row of
/// (c, ky, kx) starts at col + ((c·kernel + ky)·kernel + kx)·ld and holds
/// outRows.count·outWidth values, zero where the receptive field falls into
/// the padding. `ld` ≥ outRows.count·outWidth lets callers place several
/// images side by side (the trainer) or band a large image (the forward pass).
@inline(__always)
public func im2col(_ src: UnsafePointer<Float>, channels: Range<Int>, height: Int, width: Int,
                   kernel: Int, stride: Int, padding: Int,
                   outRows: Range<Int>, outWidth: Int,
                   into col: UnsafeMutablePointer<Float>, ld: Int) {
    var row = col + channels.lowerBound * kernel * kernel * ld
    for c in channels {
        let plane = src + c * height * width
        for ky in 0..<kernel {
            for kx in 0..<kernel {
                var out = row
                for oy in outRows {
                    let iy = oy * stride - padding + ky
                    if iy < 0 || iy >= height {
                        out.update(repeating: 0, count: outWidth)
                    } else {
                        let line = plane + iy * width
                        if stride == 1 {
                            // Contiguous run: zeros, a copy, zeros.
                            let shift = kx - padding
                            let (lo, hi) = stridedRun(shift: shift, outWidth: outWidth, width: width)
                            if lo > 0 { out.update(repeating: 0, count: lo) }
                            if hi > lo { (out + lo).update(from: line + lo + shift, count: hi - lo) }
                            if hi < outWidth { (out + hi).update(repeating: 0, count: outWidth - hi) }
                        } else {
                            for ox in 0..<outWidth {
                                let ix = ox * stride - padding + kx
                                out[ox] = (ix >= 0 && ix < width) ? line[ix] : 0
                            }
                        }
                    }
                    out += outWidth
                }
                row += ld
            }
        }
    }
}

/// The adjoint of `im2col` (a convolution's input gradient): adds every value of the
/// column matrix back to the input position it was read from, dst += col2im(col),
/// for the channels in `channels`; same layout and arguments as `im2col`.
package func col2im(_ col: UnsafePointer<Float>, ld: Int, channels: Range<Int>, height: Int, width: Int,
                    kernel: Int, stride: Int, padding: Int, outRows: Range<Int>, outWidth: Int,
                    addingInto dst: UnsafeMutablePointer<Float>) {
    var row = col + channels.lowerBound * kernel * kernel * ld
    for c in channels {
        let plane = dst + c * height * width
        for ky in 0..<kernel {
            for kx in 0..<kernel {
                var src = row
                for oy in outRows {
                    let iy = oy * stride - padding + ky
                    if iy >= 0 && iy < height {
                        let line = plane + iy * width
                        if stride == 1 {
                            let shift = kx - padding
                            let (lo, hi) = stridedRun(shift: shift, outWidth: outWidth, width: width)
                            var ox = lo
                            while ox < hi { line[ox + shift] += src[ox]; ox += 1 }
                        } else {
                            for ox in 0..<outWidth {
                                let ix = ox * stride - padding + kx
                                if ix >= 0 && ix < width { line[ix] += src[ox] }
                            }
                        }
                    }
                    src += outWidth
                }
                row += ld
            }
        }
    }
}

/// The output columns [lo, hi) of a stride-1 row whose input column ox + shift lies
/// inside a row of `width`: outside it the receptive field is in the padding.
@inline(__always)
func stridedRun(shift: Int, outWidth: Int, width: Int) -> (lo: Int, hi: Int) {
    let lo = min(max(0, -shift), outWidth)
    return (lo, max(min(outWidth, width - shift), lo))
}

/// y[n, c, ...] = activation(y[n, c, ...] + bias[c]) in one pass.
public func addBias(_ y: inout Tensor, _ bias: Tensor, activation: Activation) {
    let channels = y.c, plane = y.h * y.w, batch = y.n
    bias.data.withUnsafeBufferPointer { bp in
        y.data.withUnsafeMutableBufferPointer { yp in
            for b in 0..<batch {
                for c in 0..<channels {
                    let v = bp[c]
                    let p = UnsafeMutableBufferPointer(rebasing: yp[((b * channels + c) * plane)..<((b * channels + c + 1) * plane)])
                    switch activation {
                    case .relu: for i in p.indices { p[i] = max(p[i] + v, 0) }
                    default:
                        for i in p.indices { p[i] += v }
                        activation.apply(p)
                    }
                }
            }
        }
    }
}
