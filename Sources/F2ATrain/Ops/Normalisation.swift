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
