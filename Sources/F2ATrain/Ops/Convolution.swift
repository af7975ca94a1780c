#if canImport(Glibc)
import Glibc
#endif
import F2ACore

// MARK: Convolution

/// y = conv(x) + bias (no activation). x: [N, in, H, W].
public func conv2dForward(_ x: Tensor, weight: [Float], bias: [Float], _ g: ConvGeometry,
                          workspace ws: Workspace, columnTarget: Int = gemmColumnTarget) -> Tensor {
    precondition(x.rank == 4 && x.c == g.inChannels, "conv2dForward: input \(x.shape.shapeDescription) for \(g)")
    precondition(weight.count == g.outChannels * g.columnRows && bias.count == g.outChannels)
    if g.outChannels == 1 && !g.pointwise { return singleOutputConvForward(x, weight: weight, bias: bias[0], g, workspace: ws) }
    if Winograd4x4.applies(g) { return Winograd4x4.forward(x, weight: weight, bias: bias, g, workspace: ws) }
    if PhaseConvolution.applies(g) { return PhaseConvolution.forward(x, weight: weight, bias: bias, g).y }
    let oh = g.outSize(x.h), ow = g.outSize(x.w), ohw = oh * ow
    let outPlane = g.outChannels * ohw, kk = g.columnRows
    let group = groupSize(ohw, x.n, columnTarget)
    // Every element of y is written once with its bias: a lone image's GEMM adds onto its
    // bias planes (beta 1 costs OpenBLAS what beta 0's zeroing of C does), a group's GEMM
    // result is copied out plane by plane with the bias added on the way.
    return Tensor(shape: [x.n, g.outChannels, oh, ow]) { yb in
        x.data.withUnsafeBufferPointer { xb in
            weight.withUnsafeBufferPointer { wb in
                bias.withUnsafeBufferPointer { bb in
                    let xp = xb.baseAddress!, wp = wb.baseAddress!, yp = yb.baseAddress!, bp = bb.baseAddress!
                    var b0 = 0
                    while b0 < x.n {
                        let cnt = min(group, x.n - b0), cols = cnt * ohw
                        ws.withBuffer(0, count: g.pointwise && cnt == 1 ? 0 : kk * cols) { col in
                            let bsrc = lowerImages(xp, shape: x.shape, images: b0..<(b0 + cnt), geometry: g, into: col)
                            if cnt == 1 {
                                let dst = yp + b0 * outPlane
                                for o in 0..<g.outChannels { (dst + o * ohw).update(repeating: bp[o], count: ohw) }
                                sgemm(m: g.outChannels, n: ohw, k: kk, a: wp, lda: kk, b: bsrc, ldb: ohw, beta: 1, c: dst, ldc: ohw)
                            } else {
                                ws.withBuffer(1, count: g.outChannels * cols) { tmp in
                                    sgemm(m: g.outChannels, n: cols, k: kk, a: wp, lda: kk, b: bsrc, ldb: cols, c: tmp, ldc: cols)
                                    parallelChunks(cnt * g.outChannels, work: cnt * outPlane) { planes in
                                        for p in planes {
                                            let (j, o) = p.quotientAndRemainder(dividingBy: g.outChannels)
                                            let src = tmp + o * cols + j * ohw, dst = yp + (b0 + j) * outPlane + o * ohw
                                            let v = bp[o]
                                            for i in 0..<ohw { dst[i] = src[i] + v }
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
}

/// Backward of `conv2dForward`: accumulates dW and dB (if given) and returns
/// dx when `inputGradient` is true.
///
/// `inputGradientChannels` c limits the input gradient to c input channels from
/// `inputGradientFrom` on (a decoder conv whose other inputs are a frozen encoder's
/// skip; the image half of a conditional discriminator's input): dx is [N, c, H, W].
/// `phases`: what `PhaseConvolution.forward` returned with y for this x, where it applies.
public func conv2dBackward(_ x: Tensor, dy: Tensor, weight: [Float], _ g: ConvGeometry,
                           dW: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
                           inputGradient: Bool, inputGradientChannels: Int? = nil, inputGradientFrom: Int = 0,
                           workspace ws: Workspace, columnTarget: Int = gemmColumnTarget,
                           phases: [Float]? = nil) -> Tensor? {
    let oh = g.outSize(x.h), ow = g.outSize(x.w), ohw = oh * ow
    precondition(dy.shape == [x.n, g.outChannels, oh, ow], "conv2dBackward: dy \(dy.shape.shapeDescription)")
    let outPlane = g.outChannels * ohw, kk = g.columnRows, oc = g.outChannels
    let dxFirst = inputGradientFrom, dxChannels = inputGradientChannels ?? (x.c - dxFirst)
    precondition(dxFirst >= 0 && dxChannels >= 1 && dxFirst + dxChannels <= x.c,
                 "conv2dBackward: input gradient of channels \(dxFirst)..<\(dxFirst + dxChannels) of \(x.c)")
    // A 3x3 same convolution's weight gradient has a direct kernel (no column matrix).
    if let dW, g.kernel == 3 && g.stride == 1 && g.padding == 1 && oc > 1,
       EngineConvolution.weightGradient(x, dy: dy, into: dW, bias: dB) {
        guard inputGradient else { return nil }
        return conv2dBackward(x, dy: dy, weight: weight, g, dW: nil, dB: nil, inputGradient: true,
                              inputGradientChannels: inputGradientChannels, inputGradientFrom: inputGradientFrom,
                              workspace: ws, columnTarget: columnTarget)
    }
    if Winograd4x4.applies(g) {
        return Winograd4x4.backward(x, dy: dy, weight: weight, g, dW: dW, dB: dB,
                                    inputGradient: inputGradient ? dxFirst..<(dxFirst + dxChannels) : nil, workspace: ws)
    }
    if PhaseConvolution.applies(g) {
        return PhaseConvolution.backward(x, dy: dy, weight: weight, g, dW: dW, dB: dB,
                                         inputGradient: inputGradient ? dxFirst..<(dxFirst + dxChannels) : nil, phases: phases)
    }
    if oc == 1 && !g.pointwise {
        return singleOutputConvBackward(x, dy: dy, weight: weight, g, dW: dW, dB: dB,
                                        inputGradient: inputGradient ? dxFirst..<(dxFirst + dxChannels) : nil, workspace: ws)
    }
    // Column rows are channel-major, so the rows of channels dxFirst..< are contiguous.
    let inPlane = dxChannels * x.h * x.w, kkDx = dxChannels * g.kernel * g.kernel
    let wOffset = dxFirst * g.kernel * g.kernel
    var dx = inputGradient ? Tensor(zeros: [x.n, dxChannels, x.h, x.w]) : Tensor(zeros: [0])
    let group = groupSize(ohw, x.n, columnTarget)
    x.data.withUnsafeBufferPointer { xb in
        dy.data.withUnsafeBufferPointer { db in
            weight.withUnsafeBufferPointer { wb in
                dx.data.withUnsafeMutableBufferPointer { dxb in
                    let xp = xb.baseAddress!, dyp = db.baseAddress!, wp = wb.baseAddress!
                    if let dB { addBiasGradient(dy, into: dB) }
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
                                    sgemm(transA: true, m: kkDx, n: ohw, k: oc, a: wp + wOffset, lda: kk, b: dyg, ldb: ohw,
                                          c: dxp + b0 * inPlane, ldc: ohw)
                                } else {
                                    ws.withBuffer(2, count: kkDx * cols) { dcol in
                                        sgemm(transA: true, m: kkDx, n: cols, k: oc, a: wp + wOffset, lda: kk, b: dyg, ldb: cols,
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

/// dB[o] += the sum of dy [N, out, h, w] over images and pixels of channel o.
/// Channels are shared out on the thread pool; each adds its images' sums in image order,
/// so the result does not depend on the threads.
func addBiasGradient(_ dy: Tensor, into dB: UnsafeMutablePointer<Float>) {
    let plane = dy.h * dy.w
    dy.data.withUnsafeBufferPointer { db in
        let d = db.baseAddress!
        parallelChunks(dy.c, work: dy.count) { channels in
            for o in channels {
                for b in 0..<dy.n { dB[o] += Float(laneSum(d + (b * dy.c + o) * plane, plane)) }
            }
        }
    }
}

/// `addBiasGradient` from its plane sums, summed in a pass that reads dy anyway:
/// planeSums[b · channels + o] = laneSum of plane (b, o). The same order, so the same bits.
func addBiasGradient(planeSums: [Double], images: Int, channels: Int, into dB: UnsafeMutablePointer<Float>) {
    precondition(planeSums.count == images * channels, "addBiasGradient: \(planeSums.count) plane sums for \(images) × \(channels)")
    for o in 0..<channels { for b in 0..<images { dB[o] += Float(planeSums[b * channels + o]) } }
}

// MARK: Single output channel

// A convolution to one channel (the PatchGAN's logits) as im2col + sgemm is a GEMV
// over a column matrix kernel² times the input (a 4x4 conv of 256 channels: 3 MB per
// image, written, read once and, backwards, written and scattered again). Instead the
// channel sum goes first, as a GEMM into one plane per kernel tap at the input's
// resolution ("tap planes", kernel² × H × W), and the taps are then shifted into
// place: the GEMMs have the kernel² rows a GEMV lacks, and nothing is kernel² times the
// input. Backwards the output gradient is shifted into tap planes, and the weight and
// input gradients are GEMMs against them.

/// Output positions o in 0..<outSize whose input position o·stride − padding + tap lies
/// in 0..<inSize.
@inline(__always)
func validOutputRange(tap: Int, stride s: Int, padding p: Int, inSize: Int, outSize: Int) -> Range<Int> {
    let a = p - tap                    // input = o·s − a
    let lo = a > 0 ? (a + s - 1) / s : 0
    let top = inSize - 1 + a
    let hi = top < 0 ? 0 : min(outSize, top / s + 1)
    return min(lo, hi)..<hi
}

/// Calls body(plane offset, row offset into the input plane, output row, valid output columns,
/// input column of output column 0) for every tap (c, ky, kx) with its weight index and
/// every output row whose input row is inside the image.
@inline(__always)
func forEachTapRow(_ g: ConvGeometry, channels: Range<Int>, height: Int, width: Int, outH: Int, outW: Int,
                   _ body: (_ c: Int, _ weightIndex: Int, _ inRow: Int, _ outRow: Int, _ cols: Range<Int>, _ shift: Int) -> Void) {
    let k = g.kernel, s = g.stride, p = g.padding
    for c in channels {
        for ky in 0..<k {
            let rows = validOutputRange(tap: ky, stride: s, padding: p, inSize: height, outSize: outH)
            for kx in 0..<k {
                let cols = validOutputRange(tap: kx, stride: s, padding: p, inSize: width, outSize: outW)
                let wi = (c * k + ky) * k + kx
                for oy in rows { body(c, wi, oy * s - p + ky, oy, cols, kx - p) }
            }
        }
    }
}

/// conv2dForward for one output channel: per image, tap planes T = Wᵀ X ([k² × C] ×
/// [C × H·W]), then y = bias + the sum of each tap's plane shifted to the output.
func singleOutputConvForward(_ x: Tensor, weight: [Float], bias: Float, _ g: ConvGeometry, workspace ws: Workspace) -> Tensor {
    let oh = g.outSize(x.h), ow = g.outSize(x.w), ohw = oh * ow
    let hw = x.h * x.w, c = x.c, s = g.stride, width = x.w, taps = g.kernel * g.kernel
    return Tensor(shape: [x.n, 1, oh, ow]) { yb in
        x.data.withUnsafeBufferPointer { xb in
            weight.withUnsafeBufferPointer { wb in
                ws.withBuffer(0, count: taps * hw) { t in
                    for b in 0..<x.n {
                        sgemm(transA: true, m: taps, n: hw, k: c, a: wb.baseAddress!, lda: taps, b: xb.baseAddress! + b * c * hw, ldb: hw,
                              c: t, ldc: hw)
                        let out = yb.baseAddress! + b * ohw
                        out.update(repeating: bias, count: ohw)
                        forEachTapRow(g, channels: 0..<1, height: x.h, width: width, outH: oh, outW: ow) { _, tap, iy, oy, cols, shift in
                            let src = t + tap * hw + iy * width + shift, dst = out + oy * ow
                            for ox in cols { dst[ox] += src[ox * s] }
                        }
                    }
                }
            }
        }
    }
}

/// conv2dBackward for one output channel: accumulates dW and dB (if given) and returns
/// the gradient of the input channels `inputGradient` (nil: none). Per image, the output
/// gradient shifted into tap planes S [k² × H·W] gives dW += X Sᵀ and dX = W S.
func singleOutputConvBackward(_ x: Tensor, dy: Tensor, weight: [Float], _ g: ConvGeometry,
                              dW: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
                              inputGradient: Range<Int>?, workspace ws: Workspace) -> Tensor? {
    let oh = g.outSize(x.h), ow = g.outSize(x.w), ohw = oh * ow
    let hw = x.h * x.w, c = x.c, s = g.stride, width = x.w, taps = g.kernel * g.kernel
    if let dB { addBiasGradient(dy, into: dB) }
    let dc = inputGradient?.count ?? 0
    var dx = Tensor(shape: inputGradient == nil ? [0] : [x.n, dc, x.h, x.w]) { _ in }
    x.data.withUnsafeBufferPointer { xb in
        dy.data.withUnsafeBufferPointer { db in
            weight.withUnsafeBufferPointer { wb in
                dx.data.withUnsafeMutableBufferPointer { dxb in
                    ws.withBuffer(0, count: taps * hw) { t in
                        for b in 0..<x.n {
                            t.update(repeating: 0, count: taps * hw)
                            let d = db.baseAddress! + b * ohw
                            forEachTapRow(g, channels: 0..<1, height: x.h, width: width, outH: oh, outW: ow) { _, tap, iy, oy, cols, shift in
                                let dst = t + tap * hw + iy * width + shift, src = d + oy * ow
                                for ox in cols { dst[ox * s] = src[ox] }
                            }
                            if let dW {
                                sgemm(transB: true, m: c, n: taps, k: hw, a: xb.baseAddress! + b * c * hw, lda: hw, b: t, ldb: hw,
                                      beta: 1, c: dW, ldc: taps)
                            }
                            if let range = inputGradient {
                                sgemm(m: dc, n: hw, k: taps, a: wb.baseAddress! + range.lowerBound * taps, lda: taps, b: t, ldb: hw,
                                      c: dxb.baseAddress! + b * dc * hw, ldc: hw)
                            }
                        }
                    }
                }
            }
        }
    }
    return inputGradient == nil ? nil : dx
}
