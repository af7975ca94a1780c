import Testing
@testable import F2ATrain
import F2ACore

@Suite("Pointwise ops and lane reductions against scalar loops")
struct PointwiseTests {
    /// Sizes with a partial last chunk of the thread pool's 4096-element blocks, large
    /// enough that the blocks run on several threads, and a tiny one that does not.
    static let sizes = [7, 3 * 4096 + 5, 70_001]

    /// Mixed signs, and all negative: then every element changes, so a skipped one shows.
    @Test("ReLU and LeakyReLU masks, forward and backward", arguments: sizes, [false, true])
    func masks(_ n: Int, _ negative: Bool) {
        var R = Rand(UInt64(n))
        var x = R.tensor([n])
        let dy = R.tensor([n])
        if negative { x.data = x.data.map { -abs($0) - 0.1 } }
        var leaky = x
        Pointwise.leakyRelu(&leaky, slope: 0.2)
        #expect(leaky.data == x.data.map { $0 < 0 ? $0 * 0.2 : $0 })
        var dLeaky = dy
        Pointwise.leakyReluBackward(&dLeaky, output: leaky, slope: 0.2)
        #expect(dLeaky.data == zip(dy.data, leaky.data).map { $1 > 0 ? $0 : $0 * 0.2 })
        var relu = x
        Pointwise.relu(&relu)
        var dRelu = dy
        Pointwise.reluBackward(&dRelu, output: relu)
        #expect(dRelu.data == zip(dy.data, relu.data).map { $1 > 0 ? $0 : 0 })
    }

    @Test("Sums, squared deviations and dot products in lanes match float64 loops", arguments: [0, 1, 15, 16, 17, 1024, 1031])
    func reductions(_ n: Int) {
        var R = Rand(UInt64(100 + n))
        let a = R.array(n), b = R.array(n)
        let sum = a.reduce(0.0) { $0 + Double($1) }
        let dev = a.reduce(0.0) { $0 + (Double($1) - 0.25) * (Double($1) - 0.25) }
        let dot = zip(a, b).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                let pa = ap.baseAddress ?? UnsafePointer(bitPattern: 16)!, pb = bp.baseAddress ?? UnsafePointer(bitPattern: 16)!
                #expect(abs(laneSum(pa, n) - sum) <= 1e-5 * max(1, Double(n)))
                #expect(abs(laneSquaredDeviation(pa, n, from: 0.25) - dev) <= 1e-5 * max(1, Double(n)))
                #expect(abs(laneDot(pa, pb, n) - dot) <= 1e-5 * max(1, Double(n)))
            }
        }
    }
}
