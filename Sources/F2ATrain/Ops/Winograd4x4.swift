import CKernels
import F2ACore

/// 4x4 stride-1 convolutions (the PatchGAN's widest layer, C512 at stride 1, and any
/// other with more than one output channel) in the Winograd domain of F(3x3, 4x4)
/// (CKernels/winograd_k4.c): 36 multiplies per 3x3 output tile and channel pair where
/// im2col + GEMM does 144, in 36 BLAS GEMMs per chunk of tiles.
///
/// The weights are transformed on every call (they change every step; 36 · out · in
/// floats, a small fraction of the layer's work).
///
/// The stride-2 layers stay on im2col + GEMM: as a 2x2 convolution over the input's four
/// phases by F(5x5, 2x2) (same points, 36 multiplies per 25 outputs instead of 100) they
/// measured slower in every layer (width 0.25 + PatchGAN ×0.5, crop 128: forward of the
/// 3 stride-2 layers 9/13/11 → 12/14/15 ms per step, step 378–413 → 408–447 ms): 5x5
/// tiles waste up to 56 % of a 16² output, and the transforms cost more than the GEMM
/// work they save at 6–128 channels.
enum Winograd4x4 {
    static func applies(_ g: ConvGeometry) -> Bool { g.kernel == 4 && g.stride == 1 && g.outChannels > 1 }

    /// Floats of transformed tiles (input and output side together) per chunk: 32 MB.
    static let chunkFloats = 8 << 20

    private static func chunkTiles(_ tiles: Int, _ g: ConvGeometry, override: Int?) -> Int {
        min(tiles, override ?? max(16, chunkFloats / (36 * (g.inChannels + g.outChannels)) / 16 * 16))
    }

    /// U[xi][out][in] = G g Gᵀ of every channel pair.
    private static func transformedWeights(_ weight: [Float], _ g: ConvGeometry, into u: UnsafeMutablePointer<Float>) {
        weight.withUnsafeBufferPointer {
            f2a_wk4_weights($0.baseAddress!, Int32(g.outChannels), Int32(g.inChannels), u, Int32(Conv2d.threadCount))
        }
    }

    /// U of `weight` ([36][out][in]), which `forward` and `backward` otherwise transform on
    /// every call: for a caller that runs both on the same weights (the discriminator, whose
    /// backward follows its forward before any update: 2 of the 4 transforms per step).
    static func transformedWeights(_ weight: [Float], _ g: ConvGeometry) -> [Float] {
        var u = uninitializedFloats(36 * g.outChannels * g.inChannels)
        u.withUnsafeMutableBufferPointer { transformedWeights(weight, g, into: $0.baseAddress!) }
        return u
    }

    /// Calls body with U: `transformed` (from `transformedWeights(_:_:)` of these weights)
    /// or the weights transformed into the workspace.
    private static func withTransformed<R>(_ transformed: [Float]?, _ weight: [Float], _ g: ConvGeometry, _ ws: Workspace,
                                           _ body: (UnsafePointer<Float>) -> R) -> R {
        if let transformed {
            precondition(transformed.count == 36 * g.outChannels * g.inChannels, "Winograd4x4: transformed weights of another shape")
            return transformed.withUnsafeBufferPointer { body($0.baseAddress!) }
        }
        return ws.withBuffer(3, count: 36 * g.outChannels * g.inChannels) { u in
            transformedWeights(weight, g, into: u)
            return body(u)
        }
    }

    /// y = conv(x) + bias. x: [N, in, H, W] → [N, out, H + 2·padding − 3, W + 2·padding − 3].
    /// `chunkTiles` overrides the tiles per chunk (tests).
    static func forward(_ x: Tensor, weight: [Float], bias: [Float], _ g: ConvGeometry, workspace ws: Workspace,
                        transformed: [Float]? = nil, chunkTiles override: Int? = nil) -> Tensor {
        let oh = g.outSize(x.h), ow = g.outSize(x.w), cin = g.inChannels, cout = g.outChannels
        let threads = Int32(Conv2d.threadCount)
        let tiles = Int(f2a_wk4_tiles(Int32(x.n), Int32(oh), Int32(ow)))
        let chunk = chunkTiles(tiles, g, override: override)
        // Every output pixel lies in exactly one tile, which writes it.
        return Tensor(shape: [x.n, cout, oh, ow]) { yb in
            x.data.withUnsafeBufferPointer { xb in
                bias.withUnsafeBufferPointer { bb in
                    withTransformed(transformed, weight, g, ws) { u in
                        ws.withBuffer(0, count: 36 * cin * chunk) { v in
                            ws.withBuffer(1, count: 36 * cout * chunk) { m in
                                var t0 = 0
                                while t0 < tiles {
                                    let count = min(chunk, tiles - t0)
                                    f2a_wk4_input(xb.baseAddress!, Int32(cin), Int32(x.h), Int32(x.w), Int32(g.padding), Int32(oh),
                                                  Int32(ow), Int32(t0), Int32(count), v, Int32(chunk), threads)
                                    GemmBatch.run(36, multipliesEach: cout * count * cin) { xi in
                                        sgemm(m: cout, n: count, k: cin, a: u + xi * cout * cin, lda: cin,
                                              b: v + xi * cin * chunk, ldb: chunk, c: m + xi * cout * chunk, ldc: chunk)
                                    }
                                    f2a_wk4_output(m, Int32(cout), Int32(oh), Int32(ow), Int32(t0), Int32(count), Int32(chunk),
                                                   bb.baseAddress!, yb.baseAddress!, threads)
                                    t0 += count
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Backward of `forward`: accumulates dW and dB (if given) and returns the gradient of
    /// the input channels `inputGradient` ([N, inputGradient.count, H, W]), or nil.
    static func backward(_ x: Tensor, dy: Tensor, weight: [Float], _ g: ConvGeometry,
                         dW: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
                         inputGradient: Range<Int>?, workspace ws: Workspace, transformed: [Float]? = nil,
                         chunkTiles override: Int? = nil) -> Tensor? {
        let oh = g.outSize(x.h), ow = g.outSize(x.w), cin = g.inChannels, cout = g.outChannels
        let threads = Int32(Conv2d.threadCount)
        let tiles = Int(f2a_wk4_tiles(Int32(x.n), Int32(oh), Int32(ow)))
        let chunk = chunkTiles(tiles, g, override: override)
        if let dB { addBiasGradient(dy, into: dB) }
        let rc = inputGradient?.count ?? 0, lo = inputGradient?.lowerBound ?? 0
        var dx = Tensor(zeros: inputGradient == nil ? [0] : [x.n, rc, x.h, x.w])
        // U (the transformed weights) only for the input gradient.
        func run(_ u: UnsafePointer<Float>?) {
            x.data.withUnsafeBufferPointer { xb in
                dy.data.withUnsafeBufferPointer { db in
                    dx.data.withUnsafeMutableBufferPointer { dxb in
                        ws.withBuffer(4, count: dW == nil ? 0 : 36 * cout * cin) { du in
                            ws.withBuffer(0, count: 36 * cin * chunk) { v in
                                ws.withBuffer(1, count: 36 * cout * chunk) { dm in
                                    var t0 = 0
                                    while t0 < tiles {
                                        let count = min(chunk, tiles - t0)
                                        f2a_wk4_output_grad(db.baseAddress!, Int32(cout), Int32(oh), Int32(ow), Int32(t0), Int32(count),
                                                            dm, Int32(chunk), threads)
                                        if dW != nil {
                                            f2a_wk4_input(xb.baseAddress!, Int32(cin), Int32(x.h), Int32(x.w), Int32(g.padding),
                                                          Int32(oh), Int32(ow), Int32(t0), Int32(count), v, Int32(chunk), threads)
                                            GemmBatch.run(36, multipliesEach: cout * cin * count) { xi in
                                                sgemm(transB: true, m: cout, n: cin, k: count, a: dm + xi * cout * chunk, lda: chunk,
                                                      b: v + xi * cin * chunk, ldb: chunk, beta: t0 == 0 ? 0 : 1,
                                                      c: du + xi * cout * cin, ldc: cin)
                                            }
                                        }
                                        if let u {
                                            // dV of the wanted channels, in v's buffer (its input tiles are used up).
                                            GemmBatch.run(36, multipliesEach: rc * count * cout) { xi in
                                                sgemm(transA: true, m: rc, n: count, k: cout, a: u + xi * cout * cin + lo, lda: cin,
                                                      b: dm + xi * cout * chunk, ldb: chunk, c: v + xi * rc * chunk, ldc: chunk)
                                            }
                                            f2a_wk4_input_grad(v, Int32(rc), Int32(x.h), Int32(x.w), Int32(g.padding), Int32(oh),
                                                               Int32(ow), Int32(t0), Int32(count), Int32(chunk), dxb.baseAddress!, threads)
                                        }
                                        t0 += count
                                    }
                                    if let dW { f2a_wk4_weight_grad_finish(du, Int32(cout), Int32(cin), dW, threads) }
                                }
                            }
                        }
                    }
                }
            }
        }
        if inputGradient == nil { run(nil) } else { withTransformed(transformed, weight, g, ws) { run($0) } }
        return inputGradient == nil ? nil : dx
    }
}
