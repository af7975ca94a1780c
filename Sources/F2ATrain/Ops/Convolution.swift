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
