#if canImport(Glibc)
import Glibc
#endif
import F2ACore

// MARK: Normalisation

public enum NormKind: String, Codable, Sendable, CaseIterable { case instance, batch, none }

/// What the normalisation backward needs.
public struct NormCache {
    var xhat: Tensor
    var invStd: [Float]
}

/// Instance norm (statistics per sample and channel) or batch norm
/// (statistics per channel over the batch, training mode), with affine
/// gamma/beta, eps 1e-5, biased variance. The statistics groups run in
/// parallel, each summed in the same order as on one thread.
public func normForward(_ x: Tensor, kind: NormKind, gamma: [Float], beta: [Float], eps: Float = 1e-5) -> (Tensor, NormCache) {
    precondition(kind != .none && gamma.count == x.c && beta.count == x.c)
    let n = x.n, c = x.c, plane = x.h * x.w
    var y = Tensor(zeros: x.shape), xhat = Tensor(zeros: x.shape)
    let groups = kind == .instance ? n * c : c
    var inv = [Float](repeating: 0, count: groups)
    // Segments of a statistics group: instance → one plane; batch → one plane per sample.
    let segmentCount = kind == .instance ? 1 : n
    x.data.withUnsafeBufferPointer { xb in
        xhat.data.withUnsafeMutableBufferPointer { hb in
            y.data.withUnsafeMutableBufferPointer { yb in
                inv.withUnsafeMutableBufferPointer { ib in
                    let xp = xb.baseAddress!, hp = hb.baseAddress!, yp = yb.baseAddress!, ip = ib.baseAddress!
                    parallelChunks(groups, work: 3 * x.count) { range in
                        for gi in range {
                            @inline(__always) func segment(_ s: Int) -> Int { kind == .instance ? gi * plane : (s * c + gi) * plane }
                            let count = Double(segmentCount * plane)
                            var s = 0.0
                            for si in 0..<segmentCount { let o = segment(si); for i in 0..<plane { s += Double(xp[o + i]) } }
                            let mean = s / count
                            var v = 0.0
                            for si in 0..<segmentCount { let o = segment(si); for i in 0..<plane { let d = Double(xp[o + i]) - mean; v += d * d } }
                            let invStd = Float(1 / (v / count + Double(eps)).squareRoot())
                            ip[gi] = invStd
                            let ch = kind == .instance ? gi % c : gi
                            let m = Float(mean), ga = gamma[ch], be = beta[ch]
                            for si in 0..<segmentCount {
                                let o = segment(si)
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
        }
    }
    return (y, NormCache(xhat: xhat, invStd: inv))
}

public func normBackward(_ dy: Tensor, cache: NormCache, kind: NormKind, gamma: [Float],
                         dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>) -> Tensor {
    let n = dy.n, c = dy.c, plane = dy.h * dy.w
    var dx = Tensor(zeros: dy.shape)
    let groups = kind == .instance ? n * c : c
    let segmentCount = kind == .instance ? 1 : n
    // Per group Σdy and Σdy·xhat, added into dGamma and dBeta afterwards in group order
    // (instance norm's groups share a channel's gamma).
    var sums = [Double](repeating: 0, count: 2 * groups)
    dy.data.withUnsafeBufferPointer { db in
        cache.xhat.data.withUnsafeBufferPointer { hb in
            dx.data.withUnsafeMutableBufferPointer { xb in
                sums.withUnsafeMutableBufferPointer { sb in
                    let dp = db.baseAddress!, hp = hb.baseAddress!, xp = xb.baseAddress!, sp = sb.baseAddress!
                    parallelChunks(groups, work: 3 * dy.count) { range in
                        for gi in range {
                            @inline(__always) func segment(_ s: Int) -> Int { kind == .instance ? gi * plane : (s * c + gi) * plane }
                            let count = Double(segmentCount * plane)
                            let ch = kind == .instance ? gi % c : gi
                            var sdy = 0.0, sdyh = 0.0
                            for si in 0..<segmentCount { let o = segment(si); for i in 0..<plane { sdy += Double(dp[o + i]); sdyh += Double(dp[o + i] * hp[o + i]) } }
                            sp[2 * gi] = sdy; sp[2 * gi + 1] = sdyh
                            // dxhat = gamma·dy; dx = invStd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat))
                            let g = gamma[ch], inv = cache.invStd[gi]
                            let m1 = Float(sdy / count) * g, m2 = Float(sdyh / count) * g
                            for si in 0..<segmentCount {
                                let o = segment(si)
                                for i in 0..<plane { xp[o + i] = inv * (g * dp[o + i] - m1 - hp[o + i] * m2) }
                            }
                        }
                    }
                }
            }
        }
    }
    for gi in 0..<groups {
        let ch = kind == .instance ? gi % c : gi
        dGamma[ch] += Float(sums[2 * gi + 1])
        dBeta[ch] += Float(sums[2 * gi])
    }
    return dx
}
