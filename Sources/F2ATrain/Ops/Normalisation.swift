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

/// Which values share a mean and a variance, for forward and backward alike:
/// instance norm has one group per sample and channel (one plane), batch norm
/// one per channel (that channel's plane in every sample, the segments).
struct NormGroups {
    let kind: NormKind, n: Int, c: Int, plane: Int
    init(_ kind: NormKind, _ t: Tensor) { self.kind = kind; n = t.n; c = t.c; plane = t.h * t.w }
    var count: Int { kind == .instance ? n * c : c }
    var segments: Int { kind == .instance ? 1 : n }
    /// Values per group.
    var size: Double { Double(segments * plane) }
    /// Where segment `s` of group `g` starts.
    @inline(__always) func offset(_ g: Int, _ s: Int) -> Int { kind == .instance ? g * plane : (s * c + g) * plane }
    /// The channel whose gamma and beta group `g` uses.
    @inline(__always) func channel(_ g: Int) -> Int { kind == .instance ? g % c : g }
}

/// Instance norm (statistics per sample and channel) or batch norm
/// (statistics per channel over the batch, training mode), with affine
/// gamma/beta, eps 1e-5, biased variance, then LeakyReLU with `leakySlope` if
/// given (in the same pass: the discriminator's norm + LeakyReLU). The statistics
/// groups run in parallel, each summed in the same order as on one thread. Both
/// outputs are written whole, so neither is zero-filled first.
public func normForward(_ x: Tensor, kind: NormKind, gamma: [Float], beta: [Float], eps: Float = 1e-5,
                        leakySlope: Float? = nil) -> (Tensor, NormCache) {
    precondition(kind != .none && gamma.count == x.c && beta.count == x.c)
    let groups = NormGroups(kind, x), plane = groups.plane
    var xhat = Tensor(zeros: [0])
    var inv = [Float](repeating: 0, count: groups.count)
    let slope = leakySlope ?? 1
    let y = Tensor(shape: x.shape) { yb in
        xhat = Tensor(shape: x.shape) { hb in
            x.data.withUnsafeBufferPointer { xb in
                inv.withUnsafeMutableBufferPointer { ib in
                    let xp = xb.baseAddress!, hp = hb.baseAddress!, yp = yb.baseAddress!, ip = ib.baseAddress!
                    parallelChunks(groups.count, work: 3 * x.count) { range in
                        for gi in range {
                            var s = 0.0
                            for si in 0..<groups.segments { s += laneSum(xp + groups.offset(gi, si), plane) }
                            let mean = s / groups.size
                            var v = 0.0
                            for si in 0..<groups.segments {
                                v += laneSquaredDeviation(xp + groups.offset(gi, si), plane, from: Float(mean))
                            }
                            let invStd = Float(1 / (v / groups.size + Double(eps)).squareRoot())
                            ip[gi] = invStd
                            let ch = groups.channel(gi)
                            let m = Float(mean), ga = gamma[ch], be = beta[ch]
                            for si in 0..<groups.segments {
                                let o = groups.offset(gi, si)
                                for i in 0..<plane {
                                    let h = (xp[o + i] - m) * invStd
                                    hp[o + i] = h
                                    let v = ga * h + be
                                    yp[o + i] = Pointwise.leakyRelu(v, slope: slope)
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

/// Backward of `normForward`. `leaky`: dy is the gradient of the LeakyReLU's output
/// (`output`, with `slope`), as `normForward(leakySlope:)` applied it; each group's dy goes
/// through it first, into the group's part of the result, where the rest then works in
/// cache (a pass of its own took the discriminator's gradients through memory once more).
/// The same bits as `Pointwise.leakyReluBackward` and then this.
public func normBackward(_ dy: Tensor, cache: NormCache, kind: NormKind, gamma: [Float],
                         dGamma: UnsafeMutablePointer<Float>, dBeta: UnsafeMutablePointer<Float>,
                         leaky: (output: Tensor, slope: Float)? = nil) -> Tensor {
    precondition(leaky.map { $0.output.shape == dy.shape } ?? true, "normBackward: LeakyReLU output of another shape")
    let groups = NormGroups(kind, dy), plane = groups.plane
    // Per group Σdy and Σdy·xhat, added into dGamma and dBeta afterwards in group order
    // (instance norm's groups share a channel's gamma).
    var sums = [Double](repeating: 0, count: 2 * groups.count)
    let dx = Tensor(shape: dy.shape) { xb in
        dy.data.withUnsafeBufferPointer { db in
            cache.xhat.data.withUnsafeBufferPointer { hb in
                (leaky?.output.data ?? []).withUnsafeBufferPointer { ob in
                    sums.withUnsafeMutableBufferPointer { sb in
                        let hp = hb.baseAddress!, xp = xb.baseAddress!, sp = sb.baseAddress!
                        let gated = leaky != nil, slope = leaky?.slope ?? 1
                        // Through the LeakyReLU, dy is read from the result, where it was gated.
                        let dp = gated ? UnsafePointer(xp) : db.baseAddress!
                        parallelChunks(groups.count, work: 3 * dy.count) { range in
                            for gi in range {
                                let ch = groups.channel(gi)
                                if gated {
                                    let d = db.baseAddress!, y = ob.baseAddress!
                                    for si in 0..<groups.segments {
                                        let o = groups.offset(gi, si)
                                        for i in 0..<plane { xp[o + i] = Pointwise.leakyReluGradient(d[o + i], output: y[o + i], slope: slope) }
                                    }
                                }
                                var sdy = 0.0, sdyh = 0.0
                                for si in 0..<groups.segments {
                                    let o = groups.offset(gi, si)
                                    sdy += laneSum(dp + o, plane)
                                    sdyh += laneDot(dp + o, hp + o, plane)
                                }
                                sp[2 * gi] = sdy; sp[2 * gi + 1] = sdyh
                                // dxhat = gamma·dy; dx = invStd·(dxhat − mean(dxhat) − xhat·mean(dxhat·xhat))
                                let g = gamma[ch], inv = cache.invStd[gi]
                                let m1 = Float(sdy / groups.size) * g, m2 = Float(sdyh / groups.size) * g
                                for si in 0..<groups.segments {
                                    let o = groups.offset(gi, si)
                                    for i in 0..<plane { xp[o + i] = inv * (g * dp[o + i] - m1 - hp[o + i] * m2) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    for gi in 0..<groups.count {
        let ch = groups.channel(gi)
        dGamma[ch] += Float(sums[2 * gi + 1])
        dBeta[ch] += Float(sums[2 * gi])
    }
    return dx
}
