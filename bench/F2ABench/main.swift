// f2a-bench: forward-pass timings of this engine (medians after warm-up).
// Usage: f2a-bench [--width W | --model FILE] [--size N|HxW ...] [--runs R]
//                  [--layers [--layer-runs K] [--cpu-time]] [--evict MB]
// --model times a weights file (the VGG-16 cell's, the shipped one) instead of a randomly
// initialised generator of width W; --size takes a square side N or a height x width.
// --layers prints the time of each progress step (one per layer evaluation) of
// one extra pass; --layer-runs K makes that K passes and prints per-step medians;
// --cpu-time adds each step's process CPU time (all threads) to its line.
// --evict MB writes MB megabytes of other memory before every timed pass, so that each
// starts with the caches as `make bench` leaves them (its peers run in between): which
// steps pay for a cold cache shows side by side with the default warm runs.
import F2ACore
import Foundation
import F2AModel
#if canImport(Glibc)
import Glibc
#endif

func now() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func cpuNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func median(_ xs: [Double]) -> Double { let s = xs.sorted(); return s[s.count / 2] }

/// Writes every cache line of `evictBuffer` (nothing when it is empty).
@MainActor func evictCaches() {
    evictBuffer.withUnsafeMutableBufferPointer { b in
        for i in stride(from: 0, to: b.count, by: 16) { b[i] += 1 }
    }
}
var evictBuffer: [Float] = []

var widths: [Double] = []
var modelPaths: [String] = []
var sizes: [(h: Int, w: Int)] = []
var runs = 5
var layers = false
var layerRuns = 1
var cpuTime = false
var evictBytes = 0
var args = CommandLine.arguments.dropFirst().makeIterator()
while let a = args.next() {
    switch a {
    case "--width": widths.append(Double(args.next()!)!)
    case "--model": modelPaths.append(args.next()!)
    case "--size":
        let v = args.next()!.split(separator: "x").map { Int($0)! }
        sizes.append((v[0], v.count > 1 ? v[1] : v[0]))
    case "--runs": runs = Int(args.next()!)!
    case "--layers": layers = true
    case "--layer-runs": layerRuns = max(1, Int(args.next()!)!)
    case "--cpu-time": cpuTime = true
    case "--evict": evictBytes = Int(args.next()!)! << 20
    default: print("unknown argument \(a)"); exit(2)
    }
}
if widths.isEmpty && modelPaths.isEmpty { widths = [0.25] }
evictBuffer = [Float](repeating: 0, count: evictBytes / 4)
if sizes.isEmpty { sizes = [(256, 256), (512, 512)] }

let models = try widths.map { w in
    (String(format: "%5.3f", w), WeightsFile.randomlyInitialised(GeneratorConfig(width: w, levels: 5), seed: 1))
} + modelPaths.map { path in ((path as NSString).lastPathComponent, try WeightsFile.read(path: path)) }

print("model  size   GFLOP   median s   GFLOP/s")
for (name, file) in models {
    let g = try Generator(file: file)
    let config = g.config
    for (h, w) in sizes {
        var x = Tensor(zeros: [1, 3, h, w])
        for i in x.data.indices { x.data[i] = Float(i % 255) / 255 }
        let gflop = config.flops(height: h, width: w) / 1e9
        // The output's storage goes back to the pool, as f2a_apply's does (ImageApply).
        var y = try g.forward(x)
        Tensor.recycle(&y)
        var times: [Double] = []
        for _ in 0..<runs {
            evictCaches()
            let t0 = now()
            y = try g.forward(x)
            times.append(now() - t0)
            Tensor.recycle(&y)
        }
        let m = median(times)
        print(name, String(format: "%4dx%-4d %7.2f %10.4f %9.1f", h, w, gflop, m, gflop / m))
        if layers {
            var steps: [[Double]] = [], cpuSteps: [[Double]] = []
            for _ in 0..<layerRuns {
                evictCaches()
                var last = now(), lastCPU = cpuNow()
                var i = 0
                y = try g.forward(x) { _ in
                    let t = now(), c = cpuNow()
                    if i == steps.count { steps.append([]); cpuSteps.append([]) }
                    steps[i].append(t - last)
                    cpuSteps[i].append(c - lastCPU)
                    last = t; lastCPU = c; i += 1
                    return true
                }
                Tensor.recycle(&y)
            }
            for (i, ts) in steps.enumerated() {
                let line = String(format: "  step %2d %8.2f ms", i, median(ts) * 1000)
                print(cpuTime ? line + String(format: " %8.2f ms cpu", median(cpuSteps[i]) * 1000) : line)
            }
        }
    }
}
