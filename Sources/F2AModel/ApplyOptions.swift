import F2ACore

/// How a whole photograph goes through the network.
public enum ApplyMode: String, Sendable, CaseIterable {
    /// `full` up to `ApplyOptions.fullMaxSize` on the long side, else `guided`.
    case auto
    /// The whole image through the network (memory grows with the image).
    case full
    /// Overlapping `tileSize` tiles cross-faded over `tileOverlap` pixels:
    /// full-resolution network output with memory bounded by the tile size.
    case tiled
    /// The network at `workingSize`, its effect carried to full resolution by
    /// a guided filter (`GuidedUpsampling`): fixed network cost per photo.
    case guided
}

/// Options of `Generator.apply(_:to:outputRowStride:options:progress:)`.
public struct ApplyOptions: Sendable {
    public var mode: ApplyMode = .auto
    /// Blend with the input: 0 = input, 1 = generator output.
    public var strength: Float = 1
    /// Long side, in pixels, at which `guided` runs the network.
    public var workingSize: Int = 512
    /// Largest long side `auto` still runs in `full` mode.
    public var fullMaxSize: Int = 1024
    /// Tile side of `tiled` mode, pixels (a multiple of the model's size multiple runs fastest).
    public var tileSize: Int = 512
    /// Cross-fade width between neighbouring tiles, pixels.
    public var tileOverlap: Int = 128
    public var guided = GuidedUpsampling()

    public init(mode: ApplyMode = .auto, strength: Float = 1, workingSize: Int = 512, fullMaxSize: Int = 1024,
                tileSize: Int = 512, tileOverlap: Int = 128) {
        self.mode = mode
        self.strength = strength
        self.workingSize = workingSize
        self.fullMaxSize = fullMaxSize
        self.tileSize = tileSize
        self.tileOverlap = tileOverlap
    }

    /// The mode actually used for an image of this size.
    public func resolvedMode(width: Int, height: Int) -> ApplyMode {
        switch mode {
        case .auto: return max(width, height) <= fullMaxSize ? .full : .guided
        case .guided: return max(width, height) <= workingSize ? .full : .guided
        case .tiled: return width <= tileSize && height <= tileSize ? .full : .tiled
        case .full: return .full
        }
    }
}

extension Generator {
    /// Applies the generator to a photograph of any size in the chosen mode.
    /// `output` may alias `input` (same stride). Progress runs 0 → 1 once.
    public func apply(_ input: RGBImageView, to output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                      options: ApplyOptions, progress: ((Double) -> Bool)? = nil) throws(Cancelled) {
        switch options.resolvedMode(width: input.width, height: input.height) {
        case .full, .auto:
            try apply(input, to: output, outputRowStride: outputRowStride, strength: options.strength, progress: progress)
        case .guided:
            try applyGuided(input, to: output, outputRowStride: outputRowStride, options: options, progress: progress)
        case .tiled:
            if output == UnsafeMutablePointer(mutating: input.base) {
                // Later tiles read context rows that earlier bands would already have overwritten.
                let copy = (0..<input.height).flatMap { y in Array(UnsafeBufferPointer(start: input.base + y * input.rowStride, count: 3 * input.width)) }
                try copy.withUnsafeBufferPointer { c throws(Cancelled) in
                    try applyTiled(RGBImageView(base: c.baseAddress!, width: input.width, height: input.height, rowStride: 3 * input.width),
                                   to: output, outputRowStride: outputRowStride, options: options, progress: progress)
                }
            } else {
                try applyTiled(input, to: output, outputRowStride: outputRowStride, options: options, progress: progress)
            }
        }
    }

    func applyGuided(_ input: RGBImageView, to output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                     options: ApplyOptions, progress: ((Double) -> Bool)?) throws(Cancelled) {
        let W = input.width, H = input.height
        let scale = Double(options.workingSize) / Double(max(W, H))
        let w = max(1, Int((Double(W) * scale).rounded())), h = max(1, Int((Double(H) * scale).rounded()))
        let small = areaDownscale(input, width: w, height: h)
        var network = [Float](repeating: 0, count: w * h * 3)
        try small.withUnsafeBufferPointer { s throws(Cancelled) in
            try network.withUnsafeMutableBufferPointer { o throws(Cancelled) in
                try apply(RGBImageView(base: s.baseAddress!, width: w, height: h, rowStride: 3 * w),
                          to: o.baseAddress!, outputRowStride: 3 * w, strength: 1,
                          progress: progress.map { p in { p(0.9 * $0) } })
            }
        }
        let coeffs = options.guided.coefficients(guide: small, target: network, width: w, height: h)
        if let progress, !progress(0.95) { throw Cancelled() }

        // Bilinear sampling positions (pixel centres aligned) along x, shared by all rows.
        let xs = (0..<W).map { X -> (Int, Int, Float) in
            let u = min(max((Double(X) + 0.5) * Double(w) / Double(W) - 0.5, 0), Double(w - 1))
            let x0 = Int(u)
            return (x0, min(x0 + 1, w - 1), Float(u - Double(x0)))
        }
        let strength = options.strength
        // Raw addresses cross into the worker threads; each writes disjoint rows.
        let inBase = Int(bitPattern: input.base), inStride = input.rowStride
        let outBase = Int(bitPattern: output)
        parallelFor(H) { rows in
            let src0 = UnsafePointer<Float>(bitPattern: inBase)!, dst0 = UnsafeMutablePointer<Float>(bitPattern: outBase)!
            var line = [Float](repeating: 0, count: 12 * w)
            for Y in rows {
                let v = min(max((Double(Y) + 0.5) * Double(h) / Double(H) - 0.5, 0), Double(h - 1))
                let y0 = Int(v), y1 = min(y0 + 1, h - 1), fy = Float(v - Double(y0))
                for k in 0..<12 {
                    for x in 0..<w {
                        line[k * w + x] = coeffs[k][y0 * w + x] * (1 - fy) + coeffs[k][y1 * w + x] * fy
                    }
                }
                let src = src0 + Y * inStride, dst = dst0 + Y * outputRowStride
                line.withUnsafeBufferPointer { l in
                    for X in 0..<W {
                        let (x0, x1, fx) = xs[X]
                        @inline(__always) func at(_ k: Int) -> Float { l[k * w + x0] * (1 - fx) + l[k * w + x1] * fx }
                        let r = Generator.sanitize(src[3 * X]), g = Generator.sanitize(src[3 * X + 1]), b = Generator.sanitize(src[3 * X + 2])
                        let f = (r, g, b)
                        for c in 0..<3 {
                            let a = at(3 * c) * r + at(3 * c + 1) * g + at(3 * c + 2) * b + at(9 + c)
                            let fc = c == 0 ? f.0 : (c == 1 ? f.1 : f.2)
                            dst[3 * X + c] = min(max(fc + strength * (a - fc), 0), 1)
                        }
                    }
                }
            }
        }
        if let progress, !progress(1) { throw Cancelled() }
    }
}
