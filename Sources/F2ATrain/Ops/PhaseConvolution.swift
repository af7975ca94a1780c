import CKernels
import F2ACore

/// 4x4 stride-2 convolutions with padding 1 (the PatchGAN's downsampling layers) as GEMMs
/// over the phases of the padded input, without im2col's column matrix.
///
/// Split the zero-padded input (x with one zero row and column on every side) into its
/// four phases: channel 4c + 2·py + px holds padded[c][2i + py][2j + px] (`phases`). Kernel
/// tap (2a + py, 2b + px) then reads phase (py, px) at (i + a, j + b), so
///
///     y[o][i][j] = bias[o] + Σ over a, b in {0, 1} of (W_ab · P)[o] at (i + a, j + b)
///
/// with W_ab [out × 4·in] the taps (2a + py, 2b + px) (`shiftWeights`). With the phases
/// of all images side by side, P [4·in × images·ph·pw], P shifted by (a, b) is P itself
/// from column a·pw + b on, so each term is one GEMM reading P in place. Outputs are
/// computed on the ph × pw phase grid of every image; its rows and columns past the
/// output's (one, or two for an odd input size) are dropped. Backwards, dY goes onto the same grid (zero off the
/// outputs): dP (shifted) += W_abᵀ · dY and dW_ab = dY · (P shifted)ᵀ.
///
/// im2col wrote a column matrix 4x the input for every pass with a strided gather, and
/// col2im scattered one back: in the width-0.25 + PatchGAN ×0.5 bench (crop 128, batch 8)
/// as much time as the GEMMs of these layers. P is the input's size plus its padding.
///
/// The forward pass and the input gradient are the same kind of 2x2 convolution on a grid,
/// done by Winograd F(2x2, 2x2) where the CPU has AVX2/FMA (`f2a_phase_conv2x2`,
/// CKernels/winograd_phase.c: 9 products per output and channel pair, not 16), else as the
/// four shifted GEMMs, which `f2a_shifted_gemm` (CKernels/shifted_gemm.c) sums in one pass,
/// or as BLAS GEMMs in column chunks. The shifted GEMMs in one pass against BLAS, 16 images,
/// median of 13 alternating in one process (ms): forward 32 → 64 channels at 64² 9.8 → 7.9,
/// 64 → 128 at 32² 8.8 → 6.5; backward with both gradients 18.7 → 16.3 and 16.3 → 15.8.
/// Winograd against them, f2a-train bench --layers, old and new binaries alternating: ×16
/// forward (ms) 6 → 32 channels 4.1–4.8 → 3.5–3.9, 32 → 64 8.0–8.7 → 5.6–6.5, 64 → 128
/// 6.7–7.3 → 4.7–5.2; the three layers' forward and backward, ×16 and ×8, 65.8–70.5 →
/// 58.7–60.1 ms per step. The weight gradient has a shifted kernel of its own
/// (`weightGradient`).
enum PhaseConvolution {
    static func applies(_ g: ConvGeometry) -> Bool {
        g.kernel == 4 && g.stride == 2 && g.padding == 1 && g.outChannels > 1
    }

    /// Rows (columns) of a phase of the padded input of an image of n rows (columns).
    @inline(__always) static func phaseSize(_ n: Int) -> Int { (n + 3) / 2 }

    /// The grid of x's phases: columns of P per image and in all.
    private struct Grid {
        let ph: Int, pw: Int, plane: Int, columns: Int
        /// Columns of the GEMMs: the shifted reads of the last one end at P's last column,
        /// and every output lies before it.
        var gemmColumns: Int { columns - pw - 1 }
        init(_ x: Tensor) {
            ph = PhaseConvolution.phaseSize(x.h); pw = PhaseConvolution.phaseSize(x.w)
            plane = ph * pw; columns = x.n * plane
        }
        /// Column offset of the shift s = 2a + b.
        func offset(_ s: Int) -> Int { (s >> 1) * pw + (s & 1) }
    }

    /// x [N, C, H, W] → P [4C, N · ph · pw] (see the type's comment).
    static func phases(_ x: Tensor) -> [Float] {
        let h = x.h, w = x.w, grid = Grid(x), ph = grid.ph, pw = grid.pw, cols = grid.columns
        return [Float](unsafeUninitializedCapacity: 4 * x.c * cols) { out, count in
            count = 4 * x.c * cols
            let dst = out.baseAddress!
            x.data.withUnsafeBufferPointer { xb in
                let src = xb.baseAddress!
                parallelChunks(4 * x.c, work: 4 * x.c * cols) { rows in
                    for r in rows {
                        let c = r >> 2, py = (r >> 1) & 1, px = r & 1
                        // Phase row i is padded row 2i + py, input row 2i + py − 1; columns alike:
                        // phase columns j0..<j1 lie inside the input.
                        let j0 = 1 - px, j1 = (w - px) / 2 + 1
                        for b in 0..<x.n {
                            let plane = src + (b * x.c + c) * h * w, d = dst + r * cols + b * grid.plane
                            for i in 0..<ph {
                                let line = d + i * pw, y = 2 * i + py - 1
                                guard y >= 0 && y < h else { line.update(repeating: 0, count: pw); continue }
                                let input = plane + y * w + j0   // line[j] = input column 2j + px − 1
                                if j0 > 0 { line[0] = 0 }
                                for j in j0..<j1 { line[j] = input[2 * (j - j0)] }
                                if j1 < pw { (line + j1).update(repeating: 0, count: pw - j1) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// W [out, in, 4, 4] → [out × 16·in]: W_ab, for the shift s = 2a + b, is columns
    /// s·4·in ..< (s + 1)·4·in (a matrix of leading dimension 16·in).
    static func shiftWeights(_ weight: [Float], _ g: ConvGeometry) -> [Float] {
        var out = [Float](repeating: 0, count: weight.count)
        forEachTap(g) { w, s in out[s] = weight[w] }
        return out
    }

    /// body(index into W [out, in, 4, 4], index of the same tap in `shiftWeights`' layout).
    @inline(__always) private static func forEachTap(_ g: ConvGeometry, _ body: (Int, Int) -> Void) {
        let k = 4 * g.inChannels
        for o in 0..<g.outChannels {
            for c in 0..<g.inChannels {
                for ky in 0..<4 {
                    for kx in 0..<4 {
                        let shift = (ky >> 1) * 2 + (kx >> 1), column = 4 * c + (ky & 1) * 2 + (kx & 1)
                        body(((o * g.inChannels + c) * 4 + ky) * 4 + kx, (o * 4 + shift) * k + column)
                    }
                }
            }
        }
    }

    /// y = conv(x) + bias, x: [N, in, H, W] → [N, out, ⌊H/2⌋, ⌊W/2⌋], and x's phases (for
    /// `backward`'s `phases:`). `leakySlope`: y = LeakyReLU(conv(x) + bias) with that slope,
    /// in the pass that drops the grid's padding (the discriminator's first layer, which has
    /// no normalisation; a pass of its own over 2 M floats per 16 images took 1.1–1.6 ms).
    /// Where the CPU has AVX2/FMA the layer is Winograd F(2x2, 2x2) on the phase grid
    /// (`f2a_phase_conv2x2`: 9 products per output and channel pair instead of 16), else
    /// BLAS GEMMs. `shiftedKernel` false: BLAS GEMMs even where the kernels run;
    /// `winograd` false: the shifted GEMMs even where Winograd runs (tests of each).
    static func forward(_ x: Tensor, weight: [Float], bias: [Float], _ g: ConvGeometry, leakySlope: Float? = nil,
                        shiftedKernel: Bool = true, winograd: Bool = true) -> (y: Tensor, phases: [Float]) {
        let grid = Grid(x), cols = grid.columns, pw = grid.pw
        let oh = g.outSize(x.h), ow = g.outSize(x.w), o = g.outChannels, k = 4 * g.inChannels
        let p = phases(x), wab = shiftWeights(weight, g)
        var ext = uninitializedFloats(o * cols)
        p.withUnsafeBufferPointer { pb in
            wab.withUnsafeBufferPointer { wb in
                ext.withUnsafeMutableBufferPointer { eb in
                    let p = pb.baseAddress!, w = wb.baseAddress!, e = eb.baseAddress!
                    if shiftedKernel && winograd
                        && f2a_phase_conv2x2(p, cols, Int32(k), Int32(x.n), Int32(grid.ph), Int32(pw), Int32(oh), Int32(ow), w,
                                             Int32(o), e, cols, Int32(Conv2d.threadCount)) == 0 { return }
                    let offsets = (0..<4).map { grid.offset($0) }
                    if shiftedKernel && f2a_shifted_gemm(w, 4 * k, k, 1, Int32(o), Int32(k), p, cols, offsets, Int32(grid.gemmColumns),
                                                         e, cols, Int32(Conv2d.threadCount)) == 0 { return }
                    columnChunks(grid.gemmColumns, multipliesPerColumn: 4 * o * k) { q in
                        for s in 0..<4 {
                            sgemm(m: o, n: q.count, k: k, a: w + s * k, lda: 4 * k,
                                  b: p + grid.offset(s) + q.lowerBound, ldb: cols, beta: s == 0 ? 0 : 1,
                                  c: e + q.lowerBound, ldc: cols)
                        }
                    }
                }
            }
        }
        let y = Tensor(shape: [x.n, o, oh, ow]) { yb in
            ext.withUnsafeBufferPointer { eb in
                bias.withUnsafeBufferPointer { bb in
                    let e = eb.baseAddress!, y = yb.baseAddress!, bp = bb.baseAddress!, slope = leakySlope ?? 1
                    parallelChunks(x.n * o, work: x.n * o * oh * ow) { planes in
                        for q in planes {
                            let (b, oc) = q.quotientAndRemainder(dividingBy: o)
                            let src = e + oc * cols + b * grid.plane, dst = y + q * oh * ow, v = bp[oc]
                            for i in 0..<oh {
                                for j in 0..<ow { dst[i * ow + j] = Pointwise.leakyRelu(src[i * pw + j] + v, slope: slope) }
                            }
                        }
                    }
                }
            }
        }
        return (y, p)
    }

    /// Backward of `forward`: accumulates dW and dB (if given) and returns the gradient of
    /// the input channels `inputGradient` ([N, inputGradient.count, H, W]), or nil.
    /// `phases`: x's phases as `forward` returned them (made again from x if nil).
    /// `leaky`: dy is the gradient of `forward`'s LeakyReLU output (`output`, with `slope`):
    /// it is taken through the LeakyReLU on its way onto the phase grid.
    /// `shiftedKernel`, `winograd`: as in `forward` (the input gradient is the same kind of
    /// 2x2 convolution, of dY on the grid padded by one row and column before it, with the
    /// kernel flipped and transposed).
    static func backward(_ x: Tensor, dy: Tensor, weight: [Float], _ g: ConvGeometry,
                         dW: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
                         inputGradient: Range<Int>?, phases kept: [Float]? = nil,
                         leaky: (output: Tensor, slope: Float)? = nil, shiftedKernel: Bool = true,
                         winograd: Bool = true) -> Tensor? {
        let grid = Grid(x), cols = grid.columns, pw = grid.pw, n = grid.gemmColumns
        let oh = g.outSize(x.h), ow = g.outSize(x.w), o = g.outChannels, k = 4 * g.inChannels
        precondition(dy.shape == [x.n, o, oh, ow], "PhaseConvolution.backward: dy \(dy.shape.shapeDescription)")
        precondition(kept.map { $0.count == k * cols } ?? true, "PhaseConvolution.backward: phases of another input")
        precondition(leaky.map { $0.output.shape == dy.shape } ?? true, "PhaseConvolution.backward: LeakyReLU output of another shape")
        if let dB, leaky == nil { addBiasGradient(dy, into: dB) }
        // dY on the phase grid, zero off the outputs (written here, plane by plane, rather
        // than in a memset of the whole grid first), each row after `lead` zero columns: the
        // input gradient's shifted reads (`f2a_shifted_gemm`) start up to that far before it.
        // Through a LeakyReLU, the bias gradient is summed from the gated planes here too.
        let lead = pw + 1, stride = lead + cols
        var dext = uninitializedFloats(o * stride)
        let sumPlanes = leaky != nil && dB != nil
        var planeSums = [Double](repeating: 0, count: sumPlanes ? x.n * o : 0)
        dext.withUnsafeMutableBufferPointer { eb in
            dy.data.withUnsafeBufferPointer { db in
                (leaky?.output.data ?? []).withUnsafeBufferPointer { ob in
                    planeSums.withUnsafeMutableBufferPointer { sb in
                        // (An empty array's buffer may have a base address: `gated` decides, not that.)
                        let e = eb.baseAddress! + lead, d = db.baseAddress!, slope = leaky?.slope ?? 1, gated = leaky != nil
                        parallelChunks(x.n * o, work: x.n * o * grid.plane) { planes in
                            for q in planes {
                                let (b, oc) = q.quotientAndRemainder(dividingBy: o)
                                if b == 0 { (e + oc * stride - lead).update(repeating: 0, count: lead) }
                                let dst = e + oc * stride + b * grid.plane, src = d + q * oh * ow
                                for i in 0..<oh {
                                    if gated {
                                        let y = ob.baseAddress! + q * oh * ow + i * ow, g = src + i * ow, line = dst + i * pw
                                        for j in 0..<ow { line[j] = Pointwise.leakyReluGradient(g[j], output: y[j], slope: slope) }
                                    } else {
                                        (dst + i * pw).update(from: src + i * ow, count: ow)
                                    }
                                    (dst + i * pw + ow).update(repeating: 0, count: pw - ow)
                                }
                                (dst + oh * pw).update(repeating: 0, count: (grid.ph - oh) * pw)
                                if sumPlanes { sb[q] = laneSum(dst, grid.plane) }
                            }
                        }
                    }
                }
            }
        }
        if let dB, sumPlanes {
            addBiasGradient(planeSums: planeSums, images: x.n, channels: o, into: dB)
        }
        if let dW {
            let p = kept ?? phases(x)
            var shifted = uninitializedFloats(4 * o * k)
            p.withUnsafeBufferPointer { pb in
                dext.withUnsafeBufferPointer { eb in
                    shifted.withUnsafeMutableBufferPointer { wb in
                        weightGradient(dext: eb.baseAddress! + lead, dextStride: stride, phases: pb.baseAddress!, grid,
                                       outChannels: o, k: k, into: wb.baseAddress!, shiftedKernel: shiftedKernel)
                    }
                }
            }
            forEachTap(g) { w, s in dW[w] += shifted[s] }
        }
        guard let range = inputGradient else { return nil }
        let rows = 4 * range.count
        var dp = uninitializedFloats(rows * cols)
        let wab = shiftWeights(weight, g)
        if shiftedKernel && winograd && f2a_kernels_available() != 0 { // (the kernel declines elsewhere: no flipped copy for it)
            // dP(i, j) = Σ over a, b of W_abᵀ dY(i − a, j − b): from the start of dext's rows (its
            // `lead` = pw + 1 zeros, then dY on the grid) an image's plane holds dY shifted by
            // one row and column, so that is the 2x2 convolution of that plane with the
            // kernel W'_{a'b'} = W_{1−a', 1−b'}ᵀ, over the whole grid.
            var flipped = uninitializedFloats(rows * 4 * o)
            flipped.withUnsafeMutableBufferPointer { fb in
                for r in 0..<rows {
                    for s in 0..<4 {
                        for d in 0..<o { fb[(r * 4 + s) * o + d] = wab[(d * 4 + 3 - s) * k + 4 * range.lowerBound + r] }
                    }
                }
            }
            let status = dext.withUnsafeBufferPointer { eb in
                flipped.withUnsafeBufferPointer { fb in
                    dp.withUnsafeMutableBufferPointer { pb in
                        f2a_phase_conv2x2(eb.baseAddress!, stride, Int32(o), Int32(x.n), Int32(grid.ph), Int32(pw), Int32(grid.ph),
                                          Int32(pw), fb.baseAddress!, Int32(rows), pb.baseAddress!, cols, Int32(Conv2d.threadCount))
                    }
                }
            }
            if status == 0 { return inputGradientFromPhases(dp, x, range, grid) }
        }
        wab.withUnsafeBufferPointer { wb in
            dext.withUnsafeBufferPointer { eb in
                dp.withUnsafeMutableBufferPointer { pb in
                    let w = wb.baseAddress! + 4 * range.lowerBound, e = eb.baseAddress!, p = pb.baseAddress!
                    // dP column j gathers W_sᵀ · dY column j − offset(s) for every shift: dY read
                    // from `lead` − offset(s) columns into its padded rows (zeros before column 0).
                    let offsets = (0..<4).map { lead - grid.offset($0) }
                    if shiftedKernel && f2a_shifted_gemm(w, 1, k, 4 * k, Int32(rows), Int32(o), e, stride, offsets, Int32(cols),
                                                         p, cols, Int32(Conv2d.threadCount)) == 0 { return }
                    // Shift s adds W_sᵀ · dY column j into dP column j + offset(s), j < n. Shift 0
                    // (offset 0) writes columns ..< n first; the last pw + 1, which only the other
                    // shifts reach, start from zero.
                    columnChunks(cols, multipliesPerColumn: 4 * rows * o) { q in
                        let tail = max(q.lowerBound, n)
                        if tail < q.upperBound {
                            for r in 0..<rows { (p + r * cols + tail).update(repeating: 0, count: q.upperBound - tail) }
                        }
                        for s in 0..<4 {
                            let off = grid.offset(s), lo = max(q.lowerBound, off), hi = min(q.upperBound, off + n)
                            guard lo < hi else { continue }
                            sgemm(transA: true, m: rows, n: hi - lo, k: o, a: w + s * k, lda: 4 * k,
                                  b: e + lead + lo - off, ldb: stride, beta: s == 0 ? 0 : 1, c: p + lo, ldc: cols)
                        }
                    }
                }
            }
        }
        return inputGradientFromPhases(dp, x, range, grid)
    }

    /// dx of the input channels `range`: dP ([4 · range.count, grid columns]) at the input's
    /// places, the padding dropped.
    private static func inputGradientFromPhases(_ dp: [Float], _ x: Tensor, _ range: Range<Int>, _ grid: Grid) -> Tensor {
        let h = x.h, w = x.w, cols = grid.columns, pw = grid.pw
        return Tensor(shape: [x.n, range.count, h, w]) { xb in
            dp.withUnsafeBufferPointer { pb in
                let src = pb.baseAddress!, dst = xb.baseAddress!
                parallelChunks(range.count * x.n, work: range.count * x.n * h * w) { planes in
                    for q in planes {
                        let (b, c) = q.quotientAndRemainder(dividingBy: range.count)
                        for y in 0..<h {
                            // Input row y is padded row y + 1: phase (y + 1) & 1, phase row (y + 1) >> 1;
                            // even input columns are in phase column px = 1, odd ones in px = 0.
                            let py = (y + 1) & 1, i = (y + 1) >> 1, line = dst + (q * h + y) * w
                            let odd = src + (4 * c + 2 * py) * cols + b * grid.plane + i * pw, even = odd + cols
                            for j in 0..<(w / 2) { line[2 * j] = even[j]; line[2 * j + 1] = odd[j + 1] }
                            if w & 1 == 1 { line[w - 1] = even[w / 2] }
                        }
                    }
                }
            }
        }
    }

    /// Columns per chunk of `columnChunks`: a chunk's rows of output and of P stay in L2.
    static let columnChunk = 512

    /// body(columns) for chunks of 0..<n, side by side on the pool with OpenBLAS single-threaded
    /// (`GemmBatch`) where a chunk's GEMMs are small enough for that (`multipliesPerColumn`
    /// multiply-adds per column); else body(0..<n) once, for OpenBLAS's threads. Every output
    /// element is the same dot product either way, so the results do not change.
    /// Why: each of the four shifted GEMMs, thousands of columns wide, made a pass over the
    /// whole output; chunk by chunk it stays in cache. 16 images, 6 → 32 channels at 128²:
    /// forward 3.6–3.9 → 2.7–2.8 ms; 8 images, the gradient of 3 input channels 2.3–2.8 →
    /// 1.0–1.1 ms; 32 → 64 at 64², forward 5.6–5.7 → 5.3–5.4 ms (best of 8, in one process).
    private static func columnChunks(_ n: Int, multipliesPerColumn: Int, _ body: (Range<Int>) -> Void) {
        let chunk = columnChunk, count = (n + chunk - 1) / chunk
        guard count > 1, multipliesPerColumn * chunk <= GemmBatch.sideBySideMaxMultiplies else { body(0..<n); return }
        GemmBatch.run(count, multipliesEach: multipliesPerColumn * chunk) { i in body(i * chunk..<min(n, (i + 1) * chunk)) }
    }

    /// Column slices of `weightGradient`: a slice's columns are 1 / slices of the GEMMs' depth.
    static let weightGradientSlices = 4
    /// Whether the shifted kernel takes the weight gradient of k phase rows (4 × input
    /// channels) where the CPU runs it; OpenBLAS's GEMMs otherwise. Its register block is 48
    /// rows wide: from 48 rows on, or 16–24 with the shifts in pairs (the first layer's 24,
    /// 6 input channels). With 24 rows padded to 48 it lost to the GEMMs (16 images,
    /// backward ms per step, GEMMs / kernel: 4.8–4.9 / 5.6–5.8).
    static func weightGradientTakesKernel(rows k: Int) -> Bool { k >= 48 || (16...24).contains(k) }
    /// Columns per GEMM within a slice.
    static let weightGradientChunk = 1024

    /// dW in `shiftWeights`' layout [out × 4k]: dW_s = dY · (P shifted by s)ᵀ, a GEMM
    /// [out × columns] · [columns × k] per shift, reading P in place (ldb = P's row length)
    /// and dY on the phase grid (`dext`, its rows `dextStride` apart).
    ///
    /// The GEMMs are a few hundred outputs deep in thousands of columns, which OpenBLAS's
    /// threads share badly (they split the outputs, not the depth). So the columns are cut
    /// into `weightGradientSlices` slices, each summed into its own partial dW side by side
    /// on the pool, in chunks that stay in cache; the partials are then added in slice order.
    /// The slices depend only on the column count, so the result does not depend on the
    /// threads. Where the CPU runs it, `f2a_shifted_weight_grad` (CKernels/shifted_gemm.c)
    /// does a slice's four shifts in one pass over each chunk, packing the chunk of dY and
    /// of P once where OpenBLAS packed both for every shift: the width-0.25 PatchGAN's second
    /// and third layers (16 images), backward ms per step, 3 alternating processes
    /// (f2a-train bench --layers): 15.2–16.2 → 13.0–14.1 and 13.7–14.8 → 12.4–13.7. Elsewhere
    /// (and where `weightGradientTakesKernel` says no) OpenBLAS single-threaded
    /// (`GemmBatch.sideBySide`) in chunks of `weightGradientChunk` columns. That used to copy
    /// each chunk's four shifted views one above the other for one GEMM of all shifts on
    /// OpenBLAS's threads: 16 images, 6 → 32 channels at 128², 32 → 64 at 64², 64 → 128 at
    /// 32², dW alone 6.9 / 9.8 / 7.8 → 4.6 / 7.5 / 6.9 ms (best of 20, alternating in one
    /// process).
    private static func weightGradient(dext: UnsafePointer<Float>, dextStride: Int, phases p: UnsafePointer<Float>, _ grid: Grid,
                                       outChannels o: Int, k: Int, into dW: UnsafeMutablePointer<Float>,
                                       shiftedKernel: Bool) {
        let n = grid.gemmColumns, cols = grid.columns, size = o * 4 * k
        let slices = max(1, min(weightGradientSlices, n / weightGradientChunk))
        if shiftedKernel && weightGradientTakesKernel(rows: k) {
            let offsets = (0..<4).map { grid.offset($0) }
            if f2a_shifted_weight_grad(dext, dextStride, p, cols, offsets, Int32(o), Int32(k), Int32(n), Int32(slices), dW, 4 * k,
                                       Int32(Conv2d.threadCount)) == 0 { return }
        }
        var partials = uninitializedFloats((slices - 1) * size)
        partials.withUnsafeMutableBufferPointer { pb in
            let rest = pb.baseAddress
            let partial = { (slice: Int) in slice == 0 ? dW : rest! + (slice - 1) * size }
            GemmBatch.sideBySide(slices) { slice in
                let out = partial(slice), first = n * slice / slices, end = n * (slice + 1) / slices
                for q0 in stride(from: first, to: end, by: weightGradientChunk) {
                    let count = min(weightGradientChunk, end - q0)
                    for s in 0..<4 {
                        sgemm(transB: true, m: o, n: k, k: count, a: dext + q0, lda: dextStride, b: p + grid.offset(s) + q0, ldb: cols,
                              beta: q0 == first ? 0 : 1, c: out + s * k, ldc: 4 * k)
                    }
                }
            }
            for slice in 1..<slices {
                let src = partial(slice)
                for i in 0..<size { dW[i] += src[i] }
            }
        }
    }
}
