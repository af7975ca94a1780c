import CKernels
import F2ACore

/// The trainer's 3x3 convolutions (stride 1, padding 1) on the inference engine's
/// kernels (Winograd F(4x4, 3x3) with AVX2/FMA, im2col + BLAS otherwise), which run
/// the narrow layers of small models several times faster than the trainer's im2col
/// + sgemm. The backward-data pass is itself such a convolution: dX = conv(dY, W′)
/// with W′[c, o] = W[o, c] rotated by 180°. The weight gradient (`weightGradient`) has
/// a direct kernel for narrow layers (AVX-512 or AVX2) and goes through the Winograd
/// domain for wide ones; on CPUs without AVX2 `conv2dBackward` (Ops/Convolution.swift)
/// lowers it to a GEMM.
///
/// The engine packs the weights on every call: they change every step, and packing
/// costs one pass over them, far less than the convolution.
enum EngineConvolution {
    /// y = relu?(conv(x) + bias). x: [N, in, H, W], weight [out, in, 3, 3] → [N, out, H, W];
    /// with `skip` ([N, in − x.c, H, W]) the input is [x, skip], read where each lies.
    static func forward(_ x: Tensor, skip: Tensor? = nil, weight: [Float], bias: [Float], shape: [Int], relu: Bool) -> Tensor {
        precondition(shape.count == 4 && shape[2] == 3 && shape[3] == 3 && x.c + (skip?.c ?? 0) == shape[1],
                     "EngineConvolution.forward: input \(x.shape.shapeDescription) + \(skip?.shape.shapeDescription ?? "[]"), weight \(shape.shapeDescription)")
        let conv = Conv2d(weight: Tensor(shape: shape, data: weight), bias: Tensor(shape: [shape[0]], data: bias), padding: 1)
        return conv(concatenating: skip.map { [x, $0] } ?? [x], activation: relu ? .relu : .identity)
    }

    /// Layers with more input × output channels than this take their weight gradient
    /// through the Winograd domain even where the direct kernel runs. Measured on 2
    /// threads (AVX-512 machine, 8 images): the kernel 130–200 GFLOP/s at every trainer
    /// shape from 3 → 8 channels at 128² to 512 → 512 at 16²; OpenBLAS's GEMM, im2col
    /// not counted, 15–30 GFLOP/s at 8 output channels, 40–70 at 16, 87–112 at 32 × 32,
    /// 127–182 at 64 × 64 and 225–250 from 128 × 128 on (f2a-train bench --gemm-shapes),
    /// so the wide layers went to im2col + GEMM until the Winograd domain's 4× fewer
    /// multiplies beat both (width 1.0: 2864–2948 → 2651–2705 ms per step). The limit was
    /// 64 × 64 until the Winograd GEMMs ran side by side (`GemmBatch`); then, best of 8 in
    /// one process, direct / Winograd: 64 → 64 at 128² 60.0 / 39.1 ms, at 64² 12.6 / 9.1,
    /// at 32² 3.0 / 2.4, at 16² 1.6 / 1.0, at 8² 0.83 / 0.31; 32 → 64 and 64 → 32 at 16²
    /// to 64² within 10 % either way; 32 → 32 at 64² 3.1 / 3.9, 16 → 16 at 128² 3.4 / 7.5.
    /// With the kernel's aligned dY rows and unmasked loads (245–255 GFLOP/s), best of 6 in
    /// one process, direct / Winograd: 64 → 64 at 128² 42–44 / 34–36 ms, at 32² 2.8 / 2.2;
    /// 32 → 64 at 64² 5.4 / 5.3–5.4; 32 → 32 at 64² 2.6 / 3.9: the limit stands.
    /// The kernel's AVX2 blocks (CPUs without AVX-512) do half the work per instruction and
    /// the Winograd domain's OpenBLAS GEMMs lose less, so the limit is lower there: width
    /// 0.25 + PatchGAN with F2A_AVX512=0, each layer's backward (both gradients) direct /
    /// Winograd, two alternations, ms: 32 → 64 at 32² 2.8, 2.8 / 2.0, 2.0; 64 → 32 at 64²
    /// 10.3, 10.5 / 8.2, 8.0; 32 → 32 at 64² 5.1, 4.9 / 4.8, 4.7 and 5.0, 4.8 / 4.8, 4.8;
    /// 16 → 32 at 64² 2.9, 2.6 / 3.2, 3.3; 32 → 16 at 128² 8.4, 8.6 / 12.3, 12.4.
    static var directWeightGradientMaxChannelProduct: Int { f2a_kernels_avx512() != 0 ? 32 * 64 : 16 * 32 }

    /// Accumulates the weight gradient of a 3x3 conv (stride 1, padding 1) into dW
    /// ([out, in, 3, 3]) from its input x [N, in, H, W] (with `skip`, [x, skip]: a decoder
    /// conv's, read where each lies) and output gradient dy [N, out, H, W], and the bias
    /// gradient into dB ([out]) if given: wide layers in the Winograd domain
    /// (`winogradWeightGradient`), narrow ones with the direct kernel
    /// (CKernels/weight_grad.c), which sums dy's planes for dB as it stages them. Returns
    /// false, leaving dW and dB as they were, where that kernel does not run (no AVX2, no
    /// memory for its scratch): the caller then lowers to a GEMM.
    static func weightGradient(_ x: Tensor, skip: Tensor? = nil, dy: Tensor, into dW: UnsafeMutablePointer<Float>,
                               bias dB: UnsafeMutablePointer<Float>? = nil) -> Bool {
        precondition(x.rank == 4 && dy.rank == 4 && x.n == dy.n && x.h == dy.h && x.w == dy.w
                     && skip.map { $0.rank == 4 && $0.n == x.n && $0.h == x.h && $0.w == x.w } ?? true,
                     "EngineConvolution.weightGradient: x \(x.shape.shapeDescription) + \(skip?.shape.shapeDescription ?? "[]"), dy \(dy.shape.shapeDescription)")
        let cin = x.c + (skip?.c ?? 0)
        guard cin * dy.c <= directWeightGradientMaxChannelProduct else {
            winogradWeightGradient(x, skip: skip, dy: dy, into: dW)
            if let dB { addBiasGradient(dy, into: dB) }
            return true
        }
        var planeSums = [Double](repeating: 0, count: dB == nil ? 0 : dy.n * dy.c)
        let second = skip ?? Tensor(zeros: [0])
        let status = x.data.withUnsafeBufferPointer { xp in
            second.data.withUnsafeBufferPointer { sp in
                dy.data.withUnsafeBufferPointer { dp in
                    planeSums.withUnsafeMutableBufferPointer { pp in
                        f2a_conv3x3_weight_grad(xp.baseAddress!, Int32(x.c), skip == nil ? nil : sp.baseAddress!, dp.baseAddress!,
                                                Int32(x.n), Int32(cin), Int32(dy.c), Int32(x.h), Int32(x.w), dW,
                                                dB == nil ? nil : pp.baseAddress!, Int32(Conv2d.threadCount))
                    }
                }
            }
        }
        guard status == 0 else { return false }
        if let dB { addBiasGradient(planeSums: planeSums, images: dy.n, channels: dy.c, into: dB) }
        return true
    }

    /// Floats of the transformed tiles (input and output gradient together) per chunk of
    /// `winogradWeightGradient`: 32 MB, so that a wide layer's tiles are not all held at
    /// once (128 channels at 64², batch 8: 2048 tiles, 75 MB).
    static let winogradChunkFloats = 8 << 20

    /// `weightGradient` in the Winograd domain of F(4x4, 3x3) (CKernels/weight_grad_winograd.c):
    /// per chunk of tiles, the input and output-gradient tiles are transformed and
    /// dU[xi] += dM[xi] · V[xi]ᵀ is one GEMM [out × tiles] × [tiles × in] per transform
    /// position xi, 36 multiplies per tile and channel pair where im2col + GEMM does 144;
    /// then dW += Gᵀ dU G.
    /// `chunkTiles` overrides the tiles per chunk (tests).
    static func winogradWeightGradient(_ x: Tensor, skip: Tensor? = nil, dy: Tensor, into dW: UnsafeMutablePointer<Float>,
                                       chunkTiles: Int? = nil) {
        let cin = x.c + (skip?.c ?? 0), cout = dy.c, threads = Int32(Conv2d.threadCount)
        let second = skip ?? Tensor(zeros: [0])
        let tiles = Int(f2a_winograd_tiles(Int32(x.n), Int32(x.h), Int32(x.w)))
        let chunk = min(tiles, chunkTiles ?? max(16, winogradChunkFloats / (36 * (cin + cout)) / 16 * 16))
        // No zero fill (37 MB of dU alone at 512 × 512 channels): the transforms write every
        // tile column the GEMMs read, and the first chunk's GEMMs store dU with beta 0.
        var du = uninitializedFloats(36 * cout * cin), v = uninitializedFloats(36 * cin * chunk)
        var dm = uninitializedFloats(36 * cout * chunk)
        x.data.withUnsafeBufferPointer { xp in
            second.data.withUnsafeBufferPointer { sp in
                dy.data.withUnsafeBufferPointer { dp in
                    v.withUnsafeMutableBufferPointer { vp in
                        dm.withUnsafeMutableBufferPointer { mp in
                            du.withUnsafeMutableBufferPointer { up in
                                var t0 = 0
                                while t0 < tiles {
                                    let count = min(chunk, tiles - t0)
                                    // x's channels into the first rows of every v[xi], the skip's after them.
                                    f2a_winograd_dw_input(xp.baseAddress!, Int32(x.c), Int32(x.h), Int32(x.w), Int32(t0),
                                                          Int32(count), vp.baseAddress!, Int32(chunk), Int32(cin), threads)
                                    if let skip {
                                        f2a_winograd_dw_input(sp.baseAddress!, Int32(skip.c), Int32(x.h), Int32(x.w), Int32(t0),
                                                              Int32(count), vp.baseAddress! + x.c * chunk, Int32(chunk), Int32(cin),
                                                              threads)
                                    }
                                    f2a_winograd_dw_gradient(dp.baseAddress!, Int32(cout), Int32(x.h), Int32(x.w),
                                                             Int32(t0), Int32(count), mp.baseAddress!, Int32(chunk), threads)
                                    GemmBatch.run(36, multipliesEach: cout * cin * count) { xi in
                                        sgemm(transB: true, m: cout, n: cin, k: count,
                                              a: mp.baseAddress! + xi * cout * chunk, lda: chunk,
                                              b: vp.baseAddress! + xi * cin * chunk, ldb: chunk,
                                              beta: t0 == 0 ? 0 : 1, c: up.baseAddress! + xi * cout * cin, ldc: cin)
                                    }
                                    t0 += count
                                }
                                f2a_winograd_dw_finish(up.baseAddress!, Int32(cout), Int32(cin), dW, threads)
                            }
                        }
                    }
                }
            }
        }
    }

    /// The gradient with respect to the first `channels` input channels of a 3x3 conv
    /// whose output gradient is dy: [N, out, H, W] → [N, channels, H, W]. With `gate` (the
    /// ReLU output that was this conv's input, [N, channels, H, W]) it is the gradient
    /// through that ReLU as well, gated in the kernel's store instead of a pass of its own.
    static func inputGradient(_ dy: Tensor, weight: [Float], shape: [Int], channels: Int, gate: Tensor? = nil) -> Tensor {
        let cout = shape[0], cin = shape[1]
        precondition(shape.count == 4 && shape[2] == 3 && shape[3] == 3 && dy.c == cout && (1...cin).contains(channels),
                     "EngineConvolution.inputGradient: dy \(dy.shape.shapeDescription), weight \(shape.shapeDescription)")
        var rotated = [Float](repeating: 0, count: channels * cout * 9)
        weight.withUnsafeBufferPointer { w in
            rotated.withUnsafeMutableBufferPointer { r in
                for c in 0..<channels {
                    for o in 0..<cout {
                        let src = w.baseAddress! + (o * cin + c) * 9, dst = r.baseAddress! + (c * cout + o) * 9
                        for k in 0..<9 { dst[k] = src[8 - k] }
                    }
                }
            }
        }
        let conv = Conv2d(weight: Tensor(shape: [channels, cout, 3, 3], data: rotated),
                          bias: Tensor(zeros: [channels]), padding: 1)
        return conv(dy, gate: gate)
    }
}
