#if canImport(Glibc)
import Glibc
#endif
import CKernels
import F2ACore

// MARK: Transposed convolution 2x2 stride 2

/// y = convT(x) + bias, and ReLU if `relu`; weight [in, out, 2, 2]. F2ACore's
/// ConvTranspose2d: the inference engine's kernel (GEMM, scatter, bias and ReLU fused, on
/// the thread pool) where the CPU runs it, as in the exported model's forward pass;
/// packing the weights, which change every step, is one pass over them.
public func convTranspose2x2Forward(_ x: Tensor, weight: [Float], bias: [Float], outChannels oc: Int,
                                    relu: Bool = false) -> Tensor {
    precondition(weight.count == x.c * oc * 4 && bias.count == oc)
    let layer = ConvTranspose2d(weight: Tensor(shape: [x.c, oc, 2, 2], data: weight), bias: Tensor(shape: [oc], data: bias))
    return layer(x, activation: relu ? .relu : .identity)
}

/// Backward of `convTranspose2x2Forward`: accumulates dW [in, out, 2, 2] and dB [out],
/// returns dx. `dy` is [N, ≥ out, 2H, 2W], of which the first `outChannels` channels are
/// the output's gradient (the input gradient of a decoder conv that read [upsampled, skip],
/// in place); `gate`, the output of the layer's ReLU ([N, out, 2H, 2W]), makes it the
/// backward of that ReLU too.
///
/// Per image b, with T_b [out·4 × H·W] the four phases of dy_b: dx_b = W · T_b and
/// dW += x_b · T_bᵀ. The phases are gathered for all images at once on the thread pool,
/// and the per-image GEMMs (a few million multiply-adds each) run side by side
/// (`GemmBatch`), dW as per-image partials summed in image order: one serial gather and
/// two small multi-threaded GEMMs per image took 11 ms of a width-0.25 step.
public func convTranspose2x2Backward(_ x: Tensor, dy: Tensor, weight: [Float], outChannels oc: Int, gate: Tensor? = nil,
                                     dW: UnsafeMutablePointer<Float>, dB: UnsafeMutablePointer<Float>,
                                     kernel: Bool = true) -> Tensor {
    let n = x.n, cin = x.c, h = x.h, w = x.w, hw = h * w, k = oc * 4
    precondition(dy.n == n && dy.c >= oc && dy.h == 2 * h && dy.w == 2 * w && weight.count == cin * k,
                 "convTranspose2x2Backward: dy \(dy.shape.shapeDescription) for x \(x.shape.shapeDescription), \(oc) channels")
    precondition(gate.map { $0.shape == [n, oc, 2 * h, 2 * w] } ?? true, "convTranspose2x2Backward: gate")
    if kernel, weight.count <= convTranspose2x2BackwardKernelMaxWeights,
       let dx = convTranspose2x2BackwardKernel(x, dy: dy, weight: weight, outChannels: oc, gate: gate, dW: dW, dB: dB) {
        return dx
    }
    var t = uninitializedFloats(n * k * hw), partial = uninitializedFloats(n * cin * k)
    var sums = [Double](repeating: 0, count: n * oc)
    let dx = Tensor(shape: x.shape) { dxp in
        x.data.withUnsafeBufferPointer { xp in
            dy.data.withUnsafeBufferPointer { dyp in
                (gate ?? dy).data.withUnsafeBufferPointer { gp in
                    weight.withUnsafeBufferPointer { wp in
                        t.withUnsafeMutableBufferPointer { tb in
                            partial.withUnsafeMutableBufferPointer { pb in
                                sums.withUnsafeMutableBufferPointer { sb in
                                    let (xs, dys, ws, ts, ps, dxs) = (xp.baseAddress!, dyp.baseAddress!, wp.baseAddress!,
                                                                     tb.baseAddress!, pb.baseAddress!, dxp.baseAddress!)
                                    let gs = gate == nil ? nil : gp.baseAddress!, ss = sb.baseAddress!
                                    parallelChunks(n * oc, work: n * k * hw) { planes in
                                        for p in planes {   // image p / oc, channel p % oc
                                            let (b, o) = p.quotientAndRemainder(dividingBy: oc)
                                            convTranspose2x2Gather(dys + (b * dy.c + o) * 4 * hw, channels: 1, height: h, width: w,
                                                                   gate: gs.map { $0 + p * 4 * hw }, into: ts + p * 4 * hw)
                                            // The bias gradient: this channel's (gated) dy, its four phases.
                                            ss[p] = laneSum(ts + p * 4 * hw, 4 * hw)
                                        }
                                    }
                                    GemmBatch.run(n, multipliesEach: cin * hw * k) { b in
                                        sgemm(m: cin, n: hw, k: k, a: ws, lda: k, b: ts + b * k * hw, ldb: hw,
                                              c: dxs + b * cin * hw, ldc: hw)
                                    }
                                    GemmBatch.run(n, multipliesEach: cin * k * hw) { b in
                                        sgemm(transB: true, m: cin, n: k, k: hw, a: xs + b * cin * hw, lda: hw, b: ts + b * k * hw,
                                              ldb: hw, c: ps + b * cin * k, ldc: k)
                                    }
                                    for b in 0..<n {
                                        for i in 0..<(cin * k) { dW[i] += ps[b * cin * k + i] }
                                        for o in 0..<oc { dB[o] += Float(ss[b * oc + o]) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    return dx
}

/// Layers with more weights than this (in × out × 4) take the GEMM path even where the kernel
/// runs: its per-block GEMMs are 64 pixels deep, and it adds each block's dW into a partial,
/// which for the wide layers costs what OpenBLAS's large GEMMs save. Width 1.0 (crop 128,
/// batch 8), backward ms per step, GEMMs / kernel, two alternations: 512 → 512 at 16²
/// 19.8–21.1 / 21.5–27.4, 512 → 256 at 32² 25.6–26.5 / 27.3–30.8, 256 → 128 at 64² 25.1–29.1 /
/// 30.0–30.1, 128 → 64 at 128² 33.6–38.8 / 27.9–36.5; the width-0.25 layers (up to 128 → 128)
/// all faster with the kernel (upsample.c).
let convTranspose2x2BackwardKernelMaxWeights = 1 << 16

/// `convTranspose2x2Backward` in one pass of CKernels' kernel (upsample.c), or nil, leaving
/// dW and dB as they were, where that does not run (no AVX-512, no memory).
private func convTranspose2x2BackwardKernel(_ x: Tensor, dy: Tensor, weight: [Float], outChannels oc: Int, gate: Tensor?,
                                            dW: UnsafeMutablePointer<Float>, dB: UnsafeMutablePointer<Float>) -> Tensor? {
    var status: Int32 = 0
    let dx = Tensor(shape: x.shape) { dxp in
        x.data.withUnsafeBufferPointer { xp in
            dy.data.withUnsafeBufferPointer { dyp in
                (gate?.data ?? []).withUnsafeBufferPointer { gp in
                    weight.withUnsafeBufferPointer { wp in
                        status = f2a_convT2x2_backward(xp.baseAddress!, Int32(x.n), Int32(x.c), Int32(x.h), Int32(x.w),
                                                       dyp.baseAddress!, Int32(dy.c), gate == nil ? nil : gp.baseAddress!,
                                                       wp.baseAddress!, Int32(oc), dxp.baseAddress!, dW, dB,
                                                       Int32(Conv2d.threadCount))
                    }
                }
            }
        }
    }
    return status == 0 ? dx : nil
}
