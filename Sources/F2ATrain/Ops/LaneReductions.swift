// Reductions in 16 float lanes, the lanes added in Double in a fixed order (so a result
// does not depend on threads), for the group statistics of normalisation and the bias
// gradients. A scalar sum is one dependent add per element (4 cycles each) and does not
// vectorise; with 16 lanes a lane sums count / 16 values (64 for a 32² plane).

@inline(__always)
func laneSum(_ p: UnsafePointer<Float>, _ count: Int) -> Double {
    laneReduce(count, { i in UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self) }, { p[$0] })
}

/// Σ (p[i] − mean)².
@inline(__always)
func laneSquaredDeviation(_ p: UnsafePointer<Float>, _ count: Int, from mean: Float) -> Double {
    laneReduce(count, { i in
        let d = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self) - SIMD16(repeating: mean)
        return d * d
    }, { let d = p[$0] - mean; return d * d })
}

/// Σ a[i]·b[i].
@inline(__always)
func laneDot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Double {
    laneReduce(count, { i in
        UnsafeRawPointer(a + i).loadUnaligned(as: SIMD16<Float>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD16<Float>.self)
    }, { a[$0] * b[$0] })
}

@inline(__always)
func laneReduce(_ count: Int, _ vector: (Int) -> SIMD16<Float>, _ scalar: (Int) -> Float) -> Double {
    var lanes = SIMD16<Float>(repeating: 0)
    var i = 0
    while i + 16 <= count { lanes += vector(i); i += 16 }
    var s = 0.0
    for l in 0..<16 { s += Double(lanes[l]) }
    while i < count { s += Double(scalar(i)); i += 1 }
    return s
}
