#if canImport(Glibc)
import Glibc
#endif
import F2ACore
import F2AModel

/// Loss values (accumulated in Double) and their gradients.
public enum Losses {
    /// mean |p − t| (optionally weighted per pixel by `attention` [N, 1, H, W]
    /// broadcast over channels). Returns the loss and d loss / d p.
    public static func l1(_ p: Tensor, _ t: Tensor, attention: Tensor? = nil) -> (Double, Tensor) {
        precondition(p.shape == t.shape)
        let n = Float(p.count), plane = p.h * p.w, c = p.c
        return elementwise(p, t) { pp, tp, i in
            var w: Float = 1
            if let attention { w = attention.data[(i / (c * plane)) * plane + i % plane] }
            let d = pp[i] - tp[i]
            return (w * abs(d), d > 0 ? w / n : (d < 0 ? -w / n : 0))
        }
    }

    /// mean (p − t)².
    public static func mse(_ p: Tensor, _ t: Tensor) -> (Double, Tensor) {
        precondition(p.shape == t.shape)
        let n = Float(p.count)
        return elementwise(p, t) { pp, tp, i in
            let d = pp[i] - tp[i]
            return (d * d, 2 * d / n)
        }
    }

    /// The mean over elements of term(i).loss and the gradient [term(i).gradient], for a loss
    /// that is a sum of per-element terms of p and t, on the thread pool. The losses are
    /// added in Double per block of `elementChunks` and the blocks in order, so the value
    /// does not depend on the threads.
    @inline(__always)
    private static func elementwise(_ p: Tensor, _ t: Tensor,
                                    _ term: (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> (loss: Float, gradient: Float))
        -> (Double, Tensor) {
        let count = p.count, block = elementChunkSize
        var sums = [Double](repeating: 0, count: (count + block - 1) / block)
        let g = Tensor(shape: p.shape) { gb in
            p.data.withUnsafeBufferPointer { pb in
                t.data.withUnsafeBufferPointer { tb in
                    sums.withUnsafeMutableBufferPointer { sb in
                        let pp = pb.baseAddress!, tp = tb.baseAddress!, gp = gb.baseAddress!, sp = sb.baseAddress!
                        elementChunks(count) { range in
                            for start in stride(from: range.lowerBound, to: range.upperBound, by: block) {
                                var s = 0.0
                                for i in start..<min(start + block, range.upperBound) {
                                    let (loss, gradient) = term(pp, tp, i)
                                    s += Double(loss)
                                    gp[i] = gradient
                                }
                                sp[start / block] = s
                            }
                        }
                    }
                }
            }
        }
        return (sums.reduce(0, +) / Double(count), g)
    }

    /// Squared error that does not count the output's overall brightness:
    /// per sample, the output is first scaled by the gain s = ⟨p, t⟩ / ⟨p, p⟩
    /// (clamped to ¼…4) that best matches the target, the sRGB counterpart
    /// of EA-PSNR's one gain in linear light. A share `anchor` of plain
    /// squared error keeps the output's exposure near the target's, which the
    /// scaled term alone leaves free. Returns mean over elements of
    /// (1 − anchor)·(s·p − t)² + anchor·(p − t)² and its gradient; s is
    /// treated as optimal, so its own derivative drops out (exactly where
    /// it is not clamped).
    public static func exposureFreeMSE(_ p: Tensor, _ t: Tensor, anchor: Float) -> (Double, Tensor) {
        precondition(p.shape == t.shape)
        var g = Tensor(zeros: p.shape)
        let n = Float(p.count), per = p.count / p.n
        var total = 0.0
        p.data.withUnsafeBufferPointer { pp in
            t.data.withUnsafeBufferPointer { tp in
                g.data.withUnsafeMutableBufferPointer { gp in
                    for b in 0..<p.n {
                        let r = (b * per)..<((b + 1) * per)
                        var pt = 0.0, ppSum = 0.0
                        for i in r { pt += Double(pp[i] * tp[i]); ppSum += Double(pp[i] * pp[i]) }
                        let s = Float(ppSum > 0 ? min(max(pt / ppSum, 0.25), 4) : 1)
                        for i in r {
                            let d = pp[i] - tp[i], ds = s * pp[i] - tp[i]
                            total += Double((1 - anchor) * ds * ds + anchor * d * d)
                            gp[i] = 2 * ((1 - anchor) * s * ds + anchor * d) / n
                        }
                    }
                }
            }
        }
        return (total / Double(p.count), g)
    }

    /// `exposureFreeMSE` of the two images box-averaged over `factor` × `factor` blocks
    /// ([N, C, H, W] → [N, C, H/factor, W/factor]; H and W multiples of `factor`): the
    /// error in the large-scale distribution of light, which the oracle analysis in the
    /// model card puts the headroom in, without the fine detail the guided filter takes
    /// from the photo anyway. Returns the loss and its gradient with respect to `p`
    /// (each pixel 1/factor² of its block's).
    public static func coarseExposureFreeMSE(_ p: Tensor, _ t: Tensor, factor f: Int, anchor: Float) -> (Double, Tensor) {
        precondition(p.shape == t.shape && f >= 1 && p.h % f == 0 && p.w % f == 0,
                     "coarseExposureFreeMSE: \(p.shape.shapeDescription) by \(f)")
        let (h, w) = (p.h / f, p.w / f)
        func pool(_ x: Tensor) -> Tensor {
            var y = Tensor(zeros: [x.n, x.c, h, w])
            let scale = 1 / Float(f * f)
            for plane in 0..<(x.n * x.c) {
                for yy in 0..<(h * f) {
                    for xx in 0..<(w * f) {
                        y.data[(plane * h + yy / f) * w + xx / f] += x.data[(plane * x.h + yy) * x.w + xx] * scale
                    }
                }
            }
            return y
        }
        let (loss, gc) = exposureFreeMSE(pool(p), pool(t), anchor: anchor)
        var g = Tensor(zeros: p.shape)
        let scale = 1 / Float(f * f)
        for plane in 0..<(p.n * p.c) {
            for yy in 0..<p.h {
                for xx in 0..<p.w { g.data[(plane * p.h + yy) * p.w + xx] = gc.data[(plane * h + yy / f) * w + xx / f] * scale }
            }
        }
        return (loss, g)
    }

    /// Binary cross-entropy with logits against a constant label, mean over
    /// all elements, in the stable form max(x, 0) − x·z + log(1 + e^−|x|).
    /// Gradient (σ(x) − z) / count.
    public static func bceWithLogits(_ x: Tensor, target z: Float) -> (Double, Tensor) {
        var g = Tensor(zeros: x.shape)
        let n = Float(x.count)
        var total = 0.0
        x.data.withUnsafeBufferPointer { xp in
            g.data.withUnsafeMutableBufferPointer { gp in
                for i in gp.indices {
                    let v = xp[i]
                    total += Double(max(v, 0) - v * z + log1pf(expf(-abs(v))))
                    let s: Float = v >= 0 ? 1 / (1 + expf(-v)) : expf(v) / (1 + expf(v))
                    gp[i] = (s - z) / n
                }
            }
        }
        return (total / Double(x.count), g)
    }

    /// The seed's attention map: att = 1 − mean over RGB of |F − A|, [N, 1, H, W].
    public static func attention(flash f: Tensor, ambient a: Tensor) -> Tensor {
        precondition(f.shape == a.shape && f.c == 3)
        var att = Tensor(zeros: [f.n, 1, f.h, f.w])
        let plane = f.h * f.w
        for b in 0..<f.n {
            for i in 0..<plane {
                var s: Float = 0
                for c in 0..<3 {
                    let k = (b * 3 + c) * plane + i
                    s += abs(f.data[k] - a.data[k])
                }
                att.data[b * plane + i] = 1 - s / 3
            }
        }
        return att
    }

    /// Ratio-log targets r = encode(A, F).
    public static func ratioTarget(ambient a: Tensor, flash f: Tensor) -> Tensor {
        var r = a
        for i in r.data.indices { r.data[i] = RatioLog.encode(ambient: a.data[i], flash: f.data[i]) }
        return r
    }
}
