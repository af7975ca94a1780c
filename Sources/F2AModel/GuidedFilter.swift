import F2ACore

/// Full-resolution output at the cost of a small network pass: run the
/// generator at a working resolution, explain its output there as a local
/// affine colour transform of its input (a colour guided filter, He et al.
/// 2013; used for learned operators by Wu et al., "Fast End-to-End
/// Trainable Guided Filter", CVPR 2018), and apply the upsampled transform to
/// the full-resolution photo, which keeps the photo's own detail and edges.
public struct GuidedFilter: Sendable {
    /// Box radius of the local fit, in working-resolution pixels.
    public var radius: Int = 2
    /// Regularisation of the fit (variance units of [0, 1] pixels): larger
    /// values make the transform smoother and flatter.
    public var epsilon: Float = 1e-4

    public init(radius: Int = 2, epsilon: Float = 1e-4) {
        self.radius = radius
        self.epsilon = epsilon
    }

    /// Per-pixel affine coefficients at working resolution: for output channel
    /// c, out_c = A[c][0]·R + A[c][1]·G + A[c][2]·B + b[c]. Returns 12 planes
    /// (A row-major, then b), each w*h floats, already box-smoothed.
    public func coefficients(guide: [Float], target: [Float], width w: Int, height h: Int) -> [[Float]] {
        let n = w * h
        // Moments: I (3), p (3), I·I (6 unique), I·p (9: I_a·p_c at 12 + 3a + c).
        var moments = [[Float]](repeating: [Float](repeating: 0, count: n), count: 21)
        for i in 0..<n {
            let r = guide[3 * i], g = guide[3 * i + 1], b = guide[3 * i + 2]
            let p0 = target[3 * i], p1 = target[3 * i + 1], p2 = target[3 * i + 2]
            moments[0][i] = r; moments[1][i] = g; moments[2][i] = b
            moments[3][i] = p0; moments[4][i] = p1; moments[5][i] = p2
            moments[6][i] = r * r; moments[7][i] = r * g; moments[8][i] = r * b
            moments[9][i] = g * g; moments[10][i] = g * b; moments[11][i] = b * b
            moments[12][i] = r * p0; moments[13][i] = r * p1; moments[14][i] = r * p2
            moments[15][i] = g * p0; moments[16][i] = g * p1; moments[17][i] = g * p2
            moments[18][i] = b * p0; moments[19][i] = b * p1; moments[20][i] = b * p2
        }
        let m = boxMeans(moments, width: w, height: h, radius: radius)

        // Plane k of the result at [k * n ..< (k + 1) * n]; rows split over threads.
        var flat = [Float](repeating: 0, count: 12 * n)
        let epsilon = epsilon
        flat.withUnsafeMutableBufferPointer { out in
            let outBase = Int(bitPattern: out.baseAddress)
            parallelFor(h) { rows in
                let coeffs = UnsafeMutablePointer<Float>(bitPattern: outBase)!
                for i in rows.lowerBound * w..<rows.upperBound * w {
                    let mI = (m[0][i], m[1][i], m[2][i])
                    // Covariance of the guide (+ε on the diagonal), solved in Double:
                    // flat regions make it nearly singular.
                    let srr = Double(m[6][i] - mI.0 * mI.0 + epsilon)
                    let srg = Double(m[7][i] - mI.0 * mI.1)
                    let srb = Double(m[8][i] - mI.0 * mI.2)
                    let sgg = Double(m[9][i] - mI.1 * mI.1 + epsilon)
                    let sgb = Double(m[10][i] - mI.1 * mI.2)
                    let sbb = Double(m[11][i] - mI.2 * mI.2 + epsilon)
                    // Inverse of the symmetric 3x3 matrix via cofactors.
                    let c00 = sgg * sbb - sgb * sgb, c01 = srb * sgb - srg * sbb, c02 = srg * sgb - srb * sgg
                    let c11 = srr * sbb - srb * srb, c12 = srg * srb - srr * sgb, c22 = srr * sgg - srg * srg
                    let det = srr * c00 + srg * c01 + srb * c02
                    let inv = det != 0 ? 1 / det : 0
                    for c in 0..<3 {
                        let mp = m[3 + c][i]
                        let v0 = Double(m[12 + c][i] - mI.0 * mp)
                        let v1 = Double(m[15 + c][i] - mI.1 * mp)
                        let v2 = Double(m[18 + c][i] - mI.2 * mp)
                        let a0 = Float((c00 * v0 + c01 * v1 + c02 * v2) * inv)
                        let a1 = Float((c01 * v0 + c11 * v1 + c12 * v2) * inv)
                        let a2 = Float((c02 * v0 + c12 * v1 + c22 * v2) * inv)
                        coeffs[(3 * c) * n + i] = a0; coeffs[(3 * c + 1) * n + i] = a1; coeffs[(3 * c + 2) * n + i] = a2
                        coeffs[(9 + c) * n + i] = mp - a0 * mI.0 - a1 * mI.1 - a2 * mI.2
                    }
                }
            }
        }
        return boxMeans((0..<12).map { k in Array(flat[k * n..<(k + 1) * n]) }, width: w, height: h, radius: radius)
    }
}

/// `boxMean` of every plane, planes spread over the threads.
func boxMeans(_ planes: [[Float]], width w: Int, height h: Int, radius r: Int) -> [[Float]] {
    let results = UnsafeMutableBufferPointer<[Float]>.allocate(capacity: planes.count)
    _ = results.initialize(from: repeatElement([], count: planes.count))
    defer { results.deinitialize(); results.deallocate() }
    let base = Int(bitPattern: results.baseAddress)
    parallelFor(planes.count) { ks in
        // Each thread stores only its own planes' slots.
        let out = UnsafeMutablePointer<[Float]>(bitPattern: base)!
        for k in ks { out[k] = boxMean(planes[k], width: w, height: h, radius: r) }
    }
    return Array(results)
}

/// Mean over a (2r+1)² window clipped to the image (separable running sums).
func boxMean(_ x: [Float], width w: Int, height h: Int, radius r: Int) -> [Float] {
    var tmp = [Float](repeating: 0, count: x.count)
    var out = [Float](repeating: 0, count: x.count)
    for y in 0..<h {
        var sum: Double = 0
        let row = y * w
        for i in 0..<min(r, w) { sum += Double(x[row + i]) }
        for i in 0..<w {
            if i + r < w { sum += Double(x[row + i + r]) }
            if i - r - 1 >= 0 { sum -= Double(x[row + i - r - 1]) }
            tmp[row + i] = Float(sum / Double(min(w - 1, i + r) - max(0, i - r) + 1))
        }
    }
    // Vertically all columns at once, row by row: the same sums in the same order per
    // column as a walk down each column, but over contiguous memory (a column walk strode
    // across the plane and was most of the fit's time).
    var sums = [Double](repeating: 0, count: w)
    tmp.withUnsafeBufferPointer { t in
        out.withUnsafeMutableBufferPointer { o in
            sums.withUnsafeMutableBufferPointer { s in
                for j in 0..<min(r, h) { for xi in 0..<w { s[xi] += Double(t[j * w + xi]) } }
                for j in 0..<h {
                    if j + r < h { for xi in 0..<w { s[xi] += Double(t[(j + r) * w + xi]) } }
                    if j - r - 1 >= 0 { for xi in 0..<w { s[xi] -= Double(t[(j - r - 1) * w + xi]) } }
                    let count = Double(min(h - 1, j + r) - max(0, j - r) + 1)
                    for xi in 0..<w { o[j * w + xi] = Float(s[xi] / count) }
                }
            }
        }
    }
    return out
}
