import Testing
@testable import F2ACore
import CKernels

struct ConvCase: CustomStringConvertible, Sendable {
    let n: Int, cin: Int, cout: Int, h: Int, w: Int, k: Int, stride: Int, padding: Int
    init(n: Int = 1, cin: Int, cout: Int, h: Int, w: Int, k: Int, stride: Int = 1, padding: Int) {
        (self.n, self.cin, self.cout, self.h, self.w, self.k, self.stride, self.padding) = (n, cin, cout, h, w, k, stride, padding)
    }
    var description: String { "n\(n) \(cin)->\(cout) \(h)x\(w) k\(k) s\(stride) p\(padding)" }
}

@Suite("Layers against naive loops")
struct LayerTests {
    @Test("Conv2d matches the naive convolution", arguments: [
        ConvCase(cin: 3, cout: 8, h: 16, w: 16, k: 3, padding: 1),
        ConvCase(n: 2, cin: 5, cout: 7, h: 9, w: 13, k: 3, padding: 1),
        ConvCase(cin: 4, cout: 6, h: 1, w: 1, k: 3, padding: 1),
        ConvCase(cin: 6, cout: 3, h: 10, w: 7, k: 1, padding: 0),
        ConvCase(cin: 3, cout: 4, h: 17, w: 12, k: 4, stride: 2, padding: 1),
        ConvCase(cin: 2, cout: 2, h: 5, w: 3, k: 3, stride: 1, padding: 0),
        // Winograd kernel edges: channel counts not multiples of 6 or 8, sizes not
        // multiples of 4 (tiles) or 32 (8-tile groups), 1xN and Nx1 images.
        ConvCase(cin: 19, cout: 13, h: 7, w: 37, k: 3, padding: 1),
        ConvCase(cin: 3, cout: 5, h: 1, w: 45, k: 3, padding: 1),
        ConvCase(cin: 5, cout: 3, h: 23, w: 1, k: 3, padding: 1),
        ConvCase(n: 2, cin: 8, cout: 16, h: 66, w: 70, k: 3, padding: 1),
    ])
    func conv(_ c: ConvCase) {
        let conv = Conv2d(weight: randomTensor([c.cout, c.cin, c.k, c.k], seed: 1), bias: randomTensor([c.cout], seed: 2),
                          stride: c.stride, padding: c.padding)
        let x = randomTensor([c.n, c.cin, c.h, c.w], seed: 3)
        let expected = naiveConv2d(x, weight: conv.weight, bias: conv.bias, stride: c.stride, padding: c.padding)
        #expect(maxAbsDifference(conv(x), expected) < 1e-4)
        var relu = expected
        Activation.relu.apply(&relu)
        #expect(maxAbsDifference(conv(x, activation: .relu), relu) < 1e-4)
    }

    /// Weights above this size (in the Winograd domain) take the shared-band mode in these
    /// tests, so that channel counts that keep the naive references quick reach it (the
    /// default limit is 10 MB: 36 · 280 · 270 floats).
    static let sharedLimit = 2 << 20

    /// Winograd's rounding error grows with the number of terms: compare
    /// relative to the output's magnitude (the naive reference is float64).
    static func winogradClose(_ got: Tensor, _ expected: Tensor) -> Bool {
        let scale = max(1, expected.data.map(abs).max() ?? 0)
        return maxAbsDifference(got, expected) / scale < 2e-5
    }

    @Test("3x3 kernel: many bands per thread, and bands shared by all threads (big weights)", arguments: [
        ConvCase(cin: 64, cout: 64, h: 72, w: 100, k: 3, padding: 1),   // U small: a band per thread
        ConvCase(cin: 130, cout: 131, h: 19, w: 45, k: 3, padding: 1),  // U > 2 MB: shared bands (limit below)
        ConvCase(cin: 96, cout: 97, h: 8, w: 12, k: 3, padding: 1),     // U 1.4 MB, 16 tile slots: shared too
        ConvCase(cin: 20, cout: 26, h: 12, w: 16, k: 3, padding: 1),    // U 75 KB, 24 tile slots (<= 1 panel per thread): shared
    ])
    func convBands(_ c: ConvCase) {
        let previous = f2a_conv3x3_set_shared_limit(Self.sharedLimit)
        defer { _ = f2a_conv3x3_set_shared_limit(previous) }
        let conv = Conv2d(weight: randomTensor([c.cout, c.cin, 3, 3], seed: 21, scale: 0.1),
                          bias: randomTensor([c.cout], seed: 22), padding: 1)
        let x = randomTensor([c.n, c.cin, c.h, c.w], seed: 23)
        let expected = naiveConv2d(x, weight: conv.weight, bias: conv.bias, stride: 1, padding: 1)
        #expect(Self.winogradClose(conv(x), expected))
    }

    /// A gate for an output of [n, cout, h, w]: values in [-1, 1] with exact zeros and NaNs
    /// among them (neither lets the output through).
    static func gate(_ n: Int, _ cout: Int, _ h: Int, _ w: Int, seed: UInt64) -> Tensor {
        var g = randomTensor([n, cout, h, w], seed: seed)
        for i in stride(from: 0, to: g.count, by: 7) { g.data[i] = 0 }
        for i in stride(from: 3, to: g.count, by: 11) { g.data[i] = .nan }
        return g
    }

    /// The trainer's input gradient through a ReLU (`gate:`): in the kernel's store for a
    /// lone image (edges not multiples of the tile or the group), in the unpacking of a
    /// mosaic for a batch of small ones. Where the gate is not positive the output is exactly 0.
    @Test("A gate zeroes the outputs where it is not positive, in the kernel's store and from a mosaic",
          arguments: [(1, 5, 7, 19, 37), (8, 6, 9, 8, 8), (2, 3, 4, 33, 40)])
    func convGate(_ n: Int, _ cin: Int, _ cout: Int, _ h: Int, _ w: Int) {
        let conv = Conv2d(weight: randomTensor([cout, cin, 3, 3], seed: 61), bias: randomTensor([cout], seed: 62), padding: 1)
        let x = randomTensor([n, cin, h, w], seed: 63), gate = Self.gate(n, cout, h, w, seed: 64)
        #expect((BatchMosaic(images: n, height: h, width: w) != nil) == (n == 8))
        for activation in [Activation.identity, .relu] {
            var expected = naiveConv2d(x, weight: conv.weight, bias: conv.bias, stride: 1, padding: 1)
            activation.apply(&expected)
            for i in expected.data.indices where !(gate.data[i] > 0) { expected.data[i] = 0 }
            let got = conv(x, activation: activation, gate: gate)
            #expect(Self.winogradClose(got, expected), "\(activation)")
            #expect(got.data.indices.allSatisfy { gate.data[$0] > 0 || got.data[$0].bitPattern == 0 }, "\(activation)")
        }
    }

    @Test("3x3 kernel reads a skip concatenation in place", arguments: [(5, 11, 9, 13, 17), (1, 2, 3, 1, 33)])
    func convConcat(_ ca: Int, _ cb: Int, _ cout: Int, _ h: Int, _ w: Int) {
        let conv = Conv2d(weight: randomTensor([cout, ca + cb, 3, 3], seed: 24), bias: randomTensor([cout], seed: 25), padding: 1)
        let a = randomTensor([2, ca, h, w], seed: 26), b = randomTensor([2, cb, h, w], seed: 27)
        var expected = naiveConv2d(concatChannels(a, b), weight: conv.weight, bias: conv.bias, stride: 1, padding: 1)
        Activation.relu.apply(&expected)
        #expect(Self.winogradClose(conv(concatenating: [a, b], activation: .relu), expected))
    }

    @Test("A batch of small images runs as one mosaic, every image as if alone", arguments: [
        (5, 7, 9), (8, 8, 8), (3, 1, 1), (7, 32, 32), (2, 1, 30),
    ])
    func convMosaic(_ n: Int, _ h: Int, _ w: Int) throws {
        let mosaic = try #require(BatchMosaic(images: n, height: h, width: w))
        #expect(mosaic.columns * mosaic.rows >= n && (mosaic.columns - 1) * mosaic.rows < n)
        let conv = Conv2d(weight: randomTensor([6, 7, 3, 3], seed: 28), bias: randomTensor([6], seed: 29), padding: 1)
        // Inputs far from zero at every image edge: a pixel read across a gutter from the
        // neighbouring image would show.
        let a = affine(randomTensor([n, 4, h, w], seed: 30), scale: 1, shift: 3)
        let b = affine(randomTensor([n, 3, h, w], seed: 31), scale: 1, shift: -3)
        let expected = naiveConv2d(concatChannels(a, b), weight: conv.weight, bias: conv.bias, stride: 1, padding: 1)
        #expect(Self.winogradClose(conv(concatenating: [a, b]), expected))
    }

    @Test("Mosaic layout: fewer tile slots than image by image, zero gutters, exact round trip")
    func mosaicLayout() throws {
        let m = try #require(BatchMosaic(images: 8, height: 8, width: 8))
        func slots(_ h: Int, _ w: Int) -> Int { ((w + 3) / 4 + 7) / 8 * 8 * ((h + 3) / 4) }
        #expect(slots(m.mosaicHeight, m.mosaicWidth) * 2 <= 8 * slots(8, 8))
        #expect(BatchMosaic(images: 1, height: 8, width: 8) == nil)
        #expect(BatchMosaic(images: 8, height: 64, width: 64) == nil)
        let x = affine(randomTensor([8, 2, 8, 8], seed: 32), scale: 0, shift: 1)   // all ones: the mosaic's zeros are exactly its gutters
        let packed = m.pack([x])
        #expect(packed.filter { $0 == 1 }.count == x.count)
        #expect(packed.count == 2 * m.mosaicHeight * m.mosaicWidth)
        let y = randomTensor([8, 2, 8, 8], seed: 33)
        var back = [Float](repeating: .nan, count: y.count)
        m.pack([y]).withUnsafeBufferPointer { p in back.withUnsafeMutableBufferPointer { m.unpack(p.baseAddress!, channels: 2, into: $0.baseAddress!) } }
        #expect(back == y.data)
    }

    @Test("Conv2d splits large images into row bands without changing the result")
    func convBanding() {
        // 64·9·oh·ow floats exceed the column budget so the forward pass must band.
        // Padding 0 keeps this on the im2col + GEMM path (padding-1 3x3 convs use the direct kernel).
        let conv = Conv2d(weight: randomTensor([2, 64, 3, 3], seed: 4, scale: 0.1), bias: randomTensor([2], seed: 5), padding: 0)
        let x = randomTensor([1, 64, 96, 97], seed: 6)
        #expect(conv.packed.isEmpty)
        #expect(64 * 9 * 94 * 95 > Conv2d.columnBudget)
        #expect(maxAbsDifference(conv(x), naiveConv2d(x, weight: conv.weight, bias: conv.bias, stride: 1, padding: 0)) < 1e-4)
    }

    @Test("ConvTranspose2d matches the naive transposed convolution", arguments: [
        (1, 4, 3, 5, 6), (2, 3, 5, 1, 1), (1, 8, 8, 4, 3),
        // Blocks of 64 pixels crossing rows, rows not multiples of 8, 4·cout not a multiple of 6,
        // a last block of 3 pixels, one of 46 (two full panels and part of a third).
        (2, 19, 13, 7, 37), (1, 5, 7, 1, 45), (1, 33, 16, 16, 16), (1, 6, 5, 10, 11),
    ])
    func convTranspose(_ n: Int, _ cin: Int, _ cout: Int, _ h: Int, _ w: Int) {
        let t = ConvTranspose2d(weight: randomTensor([cin, cout, 2, 2], seed: 7), bias: randomTensor([cout], seed: 8))
        let x = randomTensor([n, cin, h, w], seed: 9)
        let expected = naiveConvTranspose2x2(x, weight: t.weight, bias: t.bias)
        #expect(maxAbsDifference(t(x), expected) < 1e-4)
        var relu = expected
        Activation.relu.apply(&relu)
        #expect(maxAbsDifference(t(x, activation: .relu), relu) < 1e-4)
    }

    @Test("ConvTranspose2d's BLAS path (CPUs without AVX2/FMA, and the trainer) matches the naive one")
    func convTransposeBLAS() {
        let (n, cin, cout, h, w) = (2, 5, 3, 4, 7)
        let weight = randomTensor([cin, cout, 2, 2], seed: 30), bias = randomTensor([cout], seed: 31)
        let x = randomTensor([n, cin, h, w], seed: 32)
        var y = Tensor(zeros: [n, cout, 2 * h, 2 * w])
        x.data.withUnsafeBufferPointer { xp in
            y.data.withUnsafeMutableBufferPointer { yp in
                convTranspose2x2BLAS(xp.baseAddress!, batch: n, inChannels: cin, height: h, width: w, weight: weight.data,
                                     bias: bias.data, outChannels: cout, into: yp.baseAddress!)
            }
        }
        #expect(maxAbsDifference(y, naiveConvTranspose2x2(x, weight: weight, bias: bias)) < 1e-4)
    }

    /// U = G g Gᵀ of F(4x4, 3x3) in float64, laid out as winograd.c documents it:
    /// U[xi][cout padded to groups of `rows`][cin][rows], padding rows zero.
    static func referencePack(_ w: Tensor, rows: Int) -> [Float] {
        let g: [[Double]] = [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                             [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
        let cout = w.shape[0], cin = w.shape[1], groups = (cout + rows - 1) / rows, xiStride = groups * rows * cin
        var u = [Float](repeating: 0, count: 36 * xiStride)
        for o in 0..<cout {
            for c in 0..<cin {
                for i in 0..<6 {
                    for j in 0..<6 {
                        var s = 0.0
                        for a in 0..<3 {
                            for b in 0..<3 { s += g[i][a] * Double(w.data[((o * cin + c) * 3 + a) * 3 + b]) * g[j][b] }
                        }
                        u[(i * 6 + j) * xiStride + ((o / rows) * cin + c) * rows + o % rows] = Float(s)
                    }
                }
            }
        }
        return u
    }

    @Test("3x3 weights packed for Winograd: G g Gᵀ in the documented layout, the same on 1 and 2 threads, AVX2 or AVX-512",
          arguments: [(8, 3, 4), (13, 19, 6), (7, 5, 4), (131, 130, 6), (256, 96, 6)])
    func winogradPack(_ cout: Int, _ cin: Int, _ rows: Int) throws {
        try #require(simdKernelsAvailable)
        let w = randomTensor([cout, cin, 3, 3], seed: 41)
        let count = Int(f2a_conv3x3_packed_count(Int32(cout), Int32(cin)))
        #expect(count == 36 * ((cout + rows - 1) / rows * rows) * cin)
        func pack(_ threads: Int32) -> [Float] {
            [Float](unsafeUninitializedCapacity: count) { p, n in
                p.initialize(repeating: .nan)
                w.data.withUnsafeBufferPointer { f2a_conv3x3_pack($0.baseAddress!, Int32(cout), Int32(cin), p.baseAddress!, threads) }
                n = count
            }
        }
        let one = pack(1), two = pack(2), reference = Self.referencePack(w, rows: rows)
        #expect(one == two)
        // The AVX2 copy of the pack and the AVX-512 one (where the CPU has it): the same bits.
        let previous = f2a_kernels_set_avx512(0)
        let narrow = pack(2)
        _ = f2a_kernels_set_avx512(previous)
        #expect(zip(narrow, two).allSatisfy { $0.bitPattern == $1.bitPattern })
        // float64 in both: only the last rounding to float may differ.
        #expect(zip(one, reference).allSatisfy { abs($0 - $1) <= 1e-6 * max(1, abs($1)) })
    }

    @Test("A Conv2d is ready when constructed: a 3x3 same convolution is packed for the kernel")
    func convPackedAtInit() {
        let conv = Conv2d(weight: randomTensor([4, 3, 3, 3], seed: 33), bias: randomTensor([4], seed: 34), padding: 1)
        #expect(conv.packed.isEmpty == !simdKernelsAvailable)
        let t = ConvTranspose2d(weight: randomTensor([3, 4, 2, 2], seed: 35), bias: randomTensor([4], seed: 36))
        #expect(t.packed.isEmpty == !simdKernelsAvailable)
    }

    @Test("Max pooling picks the window maximum and unpooling puts it back")
    func poolUnpool() {
        let x = randomTensor([2, 3, 6, 8], seed: 10)
        let (y, idx) = maxPool2d(x)
        #expect(y.shape == [2, 3, 3, 4])
        for p in 0..<6 { for oy in 0..<3 { for ox in 0..<4 {
            let window = [(0, 0), (0, 1), (1, 0), (1, 1)].map { x.data[p * 48 + (2 * oy + $0.0) * 8 + 2 * ox + $0.1] }
            let o = p * 12 + oy * 4 + ox
            #expect(y.data[o] == window.max()!)
            #expect(x.data[p * 48 + Int(idx[o])] == y.data[o])
        }}}
        let u = maxUnpool2d(y, indices: idx, height: 6, width: 8)
        // Every pooled maximum returns to its place; everything else is zero.
        #expect(u.data.filter { $0 != 0 }.count == y.data.filter { $0 != 0 }.count)
        for i in u.data.indices where u.data[i] != 0 { #expect(u.data[i] == x.data[i]) }
    }

    @Test("Max pooling resolves ties to the first element in row-major order")
    func poolTies() {
        let x = Tensor(shape: [1, 1, 2, 2], data: [1, 1, 1, 1])
        #expect(maxPool2d(x).indices == [0])
    }

    // (2, 4, 128, 130): enough planes and pixels for the thread pool to share them out.
    @Test("Max pooling without indices gives the same values",
          arguments: [(2, 3, 6, 8), (1, 5, 7, 37), (1, 2, 64, 66), (1, 1, 1, 5), (2, 4, 128, 130)])
    func poolValues(_ n: Int, _ c: Int, _ h: Int, _ w: Int) {
        let x = randomTensor([n, c, h, w], seed: 13)
        #expect(maxPool2dValues(x) == maxPool2d(x).output)
    }

    @Test("Output head: 1x1 conv, activation and ratio-log decode in one pass",
          arguments: [Activation.identity, .relu, .sigmoid, .tanh], [false, true])
    func head(_ act: Activation, _ ratioLog: Bool) {
        let conv = Conv2d(weight: randomTensor([3, 8, 1, 1], seed: 14), bias: randomTensor([3], seed: 15), padding: 0)
        // 5 x 13: vector lanes and a scalar tail; 2 images; values up to +-8 for saturation.
        let x = randomTensor([2, 8, 5, 13], seed: 16, scale: 4)
        var flash = randomTensor([2, 3, 5, 13], seed: 17)
        flash.data = flash.data.map { abs($0) }
        var expected = conv(x, activation: act)
        if ratioLog {
            for i in expected.data.indices {
                expected.data[i] = min(max((flash.data[i] + 1) * exp2f(2 * expected.data[i] - 1) - 1, 0), 1)
            }
        }
        let got = conv.head(x, activation: act, ratioLogFlash: ratioLog ? flash : nil)
        #expect(got != nil)
        if let got { #expect(maxAbsDifference(got, expected) < 2e-6) }
    }

    @Test("Affine map, vector and tail elements")
    func affineMap() {
        let x = randomTensor([1, 3, 7, 11], seed: 18)
        #expect(affine(x, scale: 2, shift: -1).data == x.data.map { 2 * $0 - 1 })
    }

    @Test("Recycled storage comes back for a tensor of the same size, fully overwritten")
    func recycling() {
        var a = Tensor(shape: [1, 1, 3, 5]) { p in for i in p.indices { p[i] = 7 } }
        Tensor.recycle(&a)
        #expect(a.count == 0)
        let b = Tensor(shape: [1, 1, 5, 3]) { p in for i in p.indices { p[i] = Float(i) } }
        #expect(b.shape == [1, 1, 5, 3] && b.data == (0..<15).map(Float.init))
    }

    @Test("Recycled storage: kept across passes of one signature, all but the slack given back before another")
    func poolSignatures() throws {
        let pool = StoragePool(), block = 8 << 20   // 32 MB each
        pool.beginPass([1, 3, 512, 512])
        for _ in 0..<3 {
            var a = [Float](repeating: 0, count: block)
            pool.give(&a)
            #expect(a.isEmpty)
        }
        #expect(pool.bytes == 3 * block * 4)
        #expect(3 * block * 4 > StoragePool.missLimit)
        pool.beginPass([1, 3, 512, 512])
        #expect(pool.bytes == 3 * block * 4, "the same signature keeps everything")
        pool.beginPass([1, 3, 256, 256])
        #expect(pool.bytes <= StoragePool.missLimit && pool.bytes > 0, "another gives back down to the slack")
        let kept = pool.bytes / (block * 4)
        for _ in 0..<kept { #expect(try #require(pool.take(block)).count == block) }
        #expect(pool.take(block) == nil)
        #expect(pool.bytes == 0)
    }

    @Test("Channel concatenation keeps both inputs in order")
    func concat() {
        let a = randomTensor([2, 2, 3, 3], seed: 11), b = randomTensor([2, 3, 3, 3], seed: 12)
        let y = concatChannels(a, b)
        #expect(y.shape == [2, 5, 3, 3])
        #expect(Array(y.data[0..<18]) == Array(a.data[0..<18]))
        #expect(Array(y.data[18..<45]) == Array(b.data[0..<27]))
        #expect(Array(y.data[45..<63]) == Array(a.data[18..<36]))
    }

    @Test("Activations", arguments: Activation.allCases)
    func activations(_ act: Activation) {
        let xs: [Float] = [-100, -3, -0.5, 0, 0.5, 3, 100]
        var t = Tensor(shape: [xs.count], data: xs)
        act.apply(&t)
        for (x, y) in zip(xs, t.data) {
            let d = Double(x)
            let expected: Double = switch act {
            case .identity: d
            case .relu: max(d, 0)
            case .sigmoid: 1 / (1 + Foundation_exp(-d))
            case .tanh: Foundation_tanh(d)
            }
            #expect(abs(Double(y) - expected) < 1e-6, "\(act)(\(x)) = \(y), expected \(expected)")
        }
    }
}

#if canImport(Glibc)
import Glibc
func Foundation_exp(_ x: Double) -> Double { Glibc.exp(x) }
func Foundation_tanh(_ x: Double) -> Double { Glibc.tanh(x) }
#endif

@Suite("AVX-512 kernels: the bits of the AVX2 ones")
struct WideKernelTests {
    /// Runs `body` with the AVX-512 blocks off, then on (where the CPU has them).
    static func bothWays<T>(_ body: () -> T) -> (narrow: T, wide: T) {
        let previous = f2a_kernels_set_avx512(0)
        defer { _ = f2a_kernels_set_avx512(previous) }
        // The "shared bands" cases below are sized for this limit.
        let limit = f2a_conv3x3_set_shared_limit(LayerTests.sharedLimit)
        defer { _ = f2a_conv3x3_set_shared_limit(limit) }
        let narrow = body()
        _ = f2a_kernels_set_avx512(1)
        #expect(f2a_kernels_avx512() == f2a_cpu_has_avx512())
        return (narrow, body())
    }

    static func differing(_ a: Tensor, _ b: Tensor) -> Int {
        a.shape == b.shape ? zip(a.data, b.data).count { $0.bitPattern != $1.bitPattern } : -1
    }

    /// Same sums in the same order per element: bit-identical, not merely close. On a CPU
    /// without AVX-512 both runs take the AVX2 blocks (the naive-loop tests cover those).
    /// The GEMM blocks on their own, for every way gemm_panels splits a band into runs of 4,
    /// 3, 2 and a single panel (1 to 9 panels), both row blocks and a K of 1, odd and past
    /// one panel's L1 share: the same bits as the AVX2 blocks, and sums of the naive loop
    /// in double. A run that skipped or repeated a panel, or read a neighbour's, fails here.
    @Test("GEMM blocks: every run of panels", arguments: [4, 6])
    func gemmRuns(rows: Int) {
        for panels in 1...9 {
            for k in [1, 7, 300] {
                let cols = 16 * panels, ldm = cols + 5
                let u = randomTensor([k * rows], seed: UInt64(panels * 1000 + k)).data
                let v = randomTensor([k * cols], seed: UInt64(panels * 1000 + k + 1)).data
                let (narrow, wide) = Self.bothWays { () -> [Float] in
                    var m = [Float](repeating: .nan, count: rows * ldm)
                    f2a_gemm_panels(Int32(rows), Int32(k), u, v, &m, ldm, Int32(cols))
                    return m
                }
                #expect(zip(narrow, wide).allSatisfy { $0.bitPattern == $1.bitPattern },
                        "\(rows) rows, \(panels) panels, K \(k)")
                var worst = 0.0
                for r in 0..<rows {
                    for c in 0..<cols {
                        // Panel c / 16 is [K][16] at v[(c / 16) * 16 K]; u is [K][rows].
                        let exact = (0..<k).reduce(0.0) { $0 + Double(u[$1 * rows + r]) * Double(v[(c / 16) * 16 * k + $1 * 16 + c % 16]) }
                        worst = max(worst, abs(Double(wide[r * ldm + c]) - exact))
                    }
                }
                #expect(worst < 1e-4 * Double(k).squareRoot(), "\(rows) rows, \(panels) panels, K \(k): \(worst)")
            }
        }
    }

    /// The 16-lane transforms take two 8-tile groups (32 px each) of a band row per vector, or
    /// a group alone in its half of a V panel row: the last of an odd count, or with an odd
    /// count per band row and 2+ band rows the first of every other row. Band shapes below
    /// are those at 2 threads (this machine); other thread counts still cross most of them.
    @Test("3x3 convolution: the same bits with and without them", arguments: [
        ConvCase(cin: 19, cout: 8, h: 30, w: 70, k: 3, padding: 1),    // 4-row blocks
        ConvCase(cin: 19, cout: 8, h: 12, w: 32, k: 3, padding: 1),    // 4-row blocks, 1-panel bands: in pairs
        ConvCase(cin: 19, cout: 8, h: 24, w: 32, k: 3, padding: 1),    // 4-row blocks, small: bands of 2 panels
        ConvCase(cin: 19, cout: 13, h: 7, w: 37, k: 3, padding: 1),    // 6-row blocks, 1-panel bands: a pair, the last alone
        ConvCase(cin: 130, cout: 131, h: 19, w: 45, k: 3, padding: 1), // shared bands
        ConvCase(cin: 8, cout: 8, h: 64, w: 256, k: 3, padding: 1),    // 8 groups a row, all paired
        ConvCase(cin: 5, cout: 7, h: 33, w: 96, k: 3, padding: 1),     // 3 groups: the last alone
        ConvCase(cin: 4, cout: 4, h: 17, w: 129, k: 3, padding: 1),    // bands of 3 groups + 2, 1 px past 128
        ConvCase(cin: 3, cout: 5, h: 1, w: 200, k: 3, padding: 1),     // 1-row image, 4 bands across
        ConvCase(cin: 6, cout: 9, h: 23, w: 1, k: 3, padding: 1),      // 1 group a row: alone in either half
        ConvCase(n: 2, cin: 12, cout: 12, h: 40, w: 33, k: 3, padding: 1), // a 1-px second group
        ConvCase(cin: 131, cout: 133, h: 5, w: 200, k: 3, padding: 1), // shared, 7 groups, 2 rows: both halves alone
    ])
    func conv3x3(_ c: ConvCase) {
        let conv = Conv2d(weight: randomTensor([c.cout, c.cin, 3, 3], seed: 41, scale: 0.1),
                          bias: randomTensor([c.cout], seed: 42), padding: 1)
        let x = randomTensor([c.n, c.cin, c.h, c.w], seed: 43)
        let (narrow, wide) = Self.bothWays { conv(x, activation: .relu) }
        #expect(Self.differing(narrow, wide) == 0)
        #expect(LayerTests.winogradClose(wide, { var e = naiveConv2d(x, weight: conv.weight, bias: conv.bias, stride: 1, padding: 1)
            Activation.relu.apply(&e); return e }()))
        // Without ReLU: negative outputs, so a lane stored from the wrong tile cannot hide as 0.
        let (narrowLinear, wideLinear) = Self.bothWays { conv(x) }
        #expect(Self.differing(narrowLinear, wideLinear) == 0)
    }

    /// The gate in the 16-lane and the 8-lane output transforms: the same bits.
    @Test("3x3 convolution with a gate: the same bits with and without them", arguments: [
        ConvCase(cin: 7, cout: 9, h: 22, w: 70, k: 3, padding: 1),
        ConvCase(cin: 131, cout: 133, h: 5, w: 37, k: 3, padding: 1), // shared bands
    ])
    func conv3x3Gate(_ c: ConvCase) {
        let conv = Conv2d(weight: randomTensor([c.cout, c.cin, 3, 3], seed: 65, scale: 0.1),
                          bias: randomTensor([c.cout], seed: 66), padding: 1)
        let x = randomTensor([c.n, c.cin, c.h, c.w], seed: 67), gate = LayerTests.gate(c.n, c.cout, c.h, c.w, seed: 68)
        let (narrow, wide) = Self.bothWays { conv(x, gate: gate) }
        #expect(Self.differing(narrow, wide) == 0)
        #expect(wide.data.indices.allSatisfy { gate.data[$0] > 0 || wide.data[$0].bitPattern == 0 })
    }

    /// The input transform reads each source of a skip concatenation in place; the reference
    /// is the same convolution of the concatenated tensor, which must give the same bits.
    @Test("3x3 convolution of a skip concatenation: the same bits with and without them", arguments: [
        (5, 11, 9, 64, 96),    // 3 groups a row, 2-row bands: pairs, and groups alone in either half
        (1, 2, 3, 1, 33),      // 1-row image, a 1-px second group
        (66, 66, 133, 5, 200), // shared bands, 7 groups a row
    ])
    func conv3x3Concat(_ ca: Int, _ cb: Int, _ cout: Int, _ h: Int, _ w: Int) {
        let conv = Conv2d(weight: randomTensor([cout, ca + cb, 3, 3], seed: 47, scale: 0.1),
                          bias: randomTensor([cout], seed: 48), padding: 1)
        let a = randomTensor([2, ca, h, w], seed: 49), b = randomTensor([2, cb, h, w], seed: 50)
        let (narrow, wide) = Self.bothWays { conv(concatenating: [a, b], activation: .relu) }
        #expect(Self.differing(narrow, wide) == 0)
        let whole = concatChannels(a, b)
        #expect(Self.differing(wide, Self.bothWays { conv(whole, activation: .relu) }.wide) == 0)
    }

    /// 2109 pixels: a whole work item of 2048, then 61 = three 16-lane vectors, one of 8 lanes
    /// and a scalar tail of 5, which the 16-lane head leaves to the 8-lane code.
    @Test("Output head: the same bits with and without them",
          arguments: [Activation.identity, .relu, .sigmoid, .tanh], [false, true])
    func head(_ act: Activation, _ ratioLog: Bool) throws {
        let conv = Conv2d(weight: randomTensor([3, 8, 1, 1], seed: 71), bias: randomTensor([3], seed: 72), padding: 0)
        let x = randomTensor([1, 8, 19, 111], seed: 73, scale: 4)
        var flash = randomTensor([1, 3, 19, 111], seed: 74)
        flash.data = flash.data.map { abs($0) }
        let (narrow, wide) = Self.bothWays { conv.head(x, activation: act, ratioLogFlash: ratioLog ? flash : nil) }
        let n = try #require(narrow), w = try #require(wide)
        #expect(Self.differing(n, w) == 0)
    }

    @Test("2x2 transposed convolution: the same bits with and without them")
    func convTranspose() {
        let t = ConvTranspose2d(weight: randomTensor([37, 11, 2, 2], seed: 44), bias: randomTensor([11], seed: 45))
        let x = randomTensor([1, 37, 9, 23], seed: 46)
        let (narrow, wide) = Self.bothWays { t(x) }
        #expect(Self.differing(narrow, wide) == 0)
        #expect(maxAbsDifference(wide, naiveConvTranspose2x2(x, weight: t.weight, bias: t.bias)) < 1e-4)
    }
}
