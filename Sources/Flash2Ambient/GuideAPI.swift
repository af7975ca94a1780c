import CFlash2Ambient
import F2AModel
#if canImport(Glibc)
import Glibc
#endif

// f2a_guide_*: guided mode in two passes (see flash2ambient.h). The plan
// keeps its model alive by a strong reference, so freeing the model first
// is harmless even though the header asks callers not to.

final class GuideBox {
    let plan: GuidedPlan
    let model: ModelBox
    let progress: f2a_progress_fn?
    let progressUserData: UnsafeMutableRawPointer?

    init(plan: GuidedPlan, model: ModelBox, params: f2a_params) {
        self.plan = plan
        self.model = model
        progress = params.progress
        progressUserData = params.progress_user_data
    }
}

func guideBox(_ guide: OpaquePointer) -> GuideBox {
    Unmanaged<GuideBox>.fromOpaque(UnsafeRawPointer(guide)).takeUnretainedValue()
}

@c @implementation
public func f2a_guide_begin(_ model: OpaquePointer?, _ width: Int32, _ height: Int32,
                            _ params: UnsafePointer<f2a_params>?,
                            _ outGuide: UnsafeMutablePointer<OpaquePointer?>?) -> f2a_status {
    beginGuide("f2a_guide_begin", model, width, height, source: nil, params, outGuide)
}

@c @implementation
public func f2a_guide_begin_source(_ model: OpaquePointer?, _ width: Int32, _ height: Int32,
                                   _ sourceWidth: Int32, _ sourceHeight: Int32,
                                   _ params: UnsafePointer<f2a_params>?,
                                   _ outGuide: UnsafeMutablePointer<OpaquePointer?>?) -> f2a_status {
    beginGuide("f2a_guide_begin_source", model, width, height, source: (sourceWidth, sourceHeight), params, outGuide)
}

@c @implementation
public func f2a_guide_min_source(_ width: Int32, _ height: Int32, _ params: UnsafePointer<f2a_params>?,
                                 _ outWidth: UnsafeMutablePointer<Int32>?,
                                 _ outHeight: UnsafeMutablePointer<Int32>?) -> f2a_status {
    let function = "f2a_guide_min_source"
    guard let outWidth, let outHeight else {
        return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): out_width or out_height is NULL")
    }
    if let status = checkImageSize(function, width, height) { return status }
    guard let p = validParams(params, function) else { return F2A_ERR_INVALID_ARGUMENT }
    let smallest = GuidedPlan.smallestSource(width: Int(width), height: Int(height), options: applyOptions(p))
    outWidth.pointee = Int32(smallest.width)
    outHeight.pointee = Int32(smallest.height)
    return F2A_OK
}

/// f2a_guide_begin and f2a_guide_begin_source: a plan for a width x height photo whose
/// pass 1 is fed the photo, or a copy of `source` size (GuidedPlan.smallestSource up to the photo's).
private func beginGuide(_ function: String, _ model: OpaquePointer?, _ width: Int32, _ height: Int32,
                        source: (Int32, Int32)?, _ params: UnsafePointer<f2a_params>?,
                        _ outGuide: UnsafeMutablePointer<OpaquePointer?>?) -> f2a_status {
    guard let outGuide else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): out_guide is NULL") }
    outGuide.pointee = nil
    guard let model else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): model is NULL") }
    if let status = checkImageSize(function, width, height) { return status }
    guard let p = validParams(params, function) else { return F2A_ERR_INVALID_ARGUMENT }
    let owner = box(model)
    var options = applyOptions(p)
    options.mode = .guided
    var sourceSize: (width: Int, height: Int)? = nil
    if let source {
        let (sw, sh) = source
        let smallest = GuidedPlan.smallestSource(width: Int(width), height: Int(height), options: options)
        guard Int(sw) >= smallest.width, Int(sw) <= Int(width), Int(sh) >= smallest.height, Int(sh) <= Int(height) else {
            return fail(F2A_ERR_INVALID_ARGUMENT,
                        "\(function): source \(sw)x\(sh) is not between \(smallest.width)x\(smallest.height) "
                        + "(f2a_guide_min_source) and the photo's \(width)x\(height)")
        }
        sourceSize = (Int(sw), Int(sh))
    }
    let needed = owner.generator.estimatedPeakBytes(width: Int(width), height: Int(height), options: options)
    let (w, h) = GuidedPlan.workingSize(width: Int(width), height: Int(height), workingSize: options.workingSize)
    if let status = checkMemory(function, needed: needed, what: "working size \(w)x\(h)") { return status }
    let plan = GuidedPlan(generator: owner.generator, width: Int(width), height: Int(height), source: sourceSize,
                          options: options)
    outGuide.pointee = OpaquePointer(Unmanaged.passRetained(GuideBox(plan: plan, model: owner, params: p)).toOpaque())
    return F2A_OK
}

@c @implementation
public func f2a_guide_add_rows(_ guide: OpaquePointer?, _ rows: UnsafePointer<Float>?, _ stride: Int,
                               _ count: Int32) -> f2a_status {
    let function = "f2a_guide_add_rows"
    guard let guide else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): guide is NULL") }
    guard let rows else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): rows is NULL") }
    let plan = guideBox(guide).plan
    guard count >= 0 else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): count \(count) is negative") }
    let rowBytes = 12 * plan.sourceWidth
    guard stride >= rowBytes, stride % 4 == 0, Int(bitPattern: rows) % 4 == 0 else {
        return fail(F2A_ERR_INVALID_ARGUMENT,
                    "\(function): stride \(stride) must be a multiple of 4 and at least the source width*12 = \(rowBytes) bytes, rows 4-byte aligned")
    }
    do {
        try plan.addRows(rows, rowStride: stride / 4, count: Int(count))
    } catch {
        switch error {
        case .alreadyFinished: return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): the plan is already finished")
        case let .tooManyRows(expected, got):
            return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): \(got) rows would exceed the photo's \(expected)")
        default: return fail(F2A_ERR_INTERNAL, "\(function): \(error)")
        }
    }
    return F2A_OK
}

@c @implementation
public func f2a_guide_finish(_ guide: OpaquePointer?) -> f2a_status {
    let function = "f2a_guide_finish"
    guard let guide else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): guide is NULL") }
    let b = guideBox(guide)
    let callback = b.progress.map { fn in
        { [userData = b.progressUserData] (fraction: Double) -> Bool in fn(Float(fraction), userData) == 0 }
    }
    do {
        try b.plan.finish(progress: callback)
        return F2A_OK
    } catch {
        switch error {
        case .cancelled: return fail(F2A_ERR_CANCELLED, "\(function): cancelled by the progress callback")
        case .state(.alreadyFinished): return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): the plan is already finished")
        case let .state(.incomplete(expected, got)):
            return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): only \(got) of the photo's \(expected) rows were added")
        case .state: return fail(F2A_ERR_INTERNAL, "\(function): \(error)")
        }
    }
}

/// The checks of both region entry points, in one order and one wording: pointers, a
/// rectangle inside the photo, strides of at least a row of `pixelBytes`-byte pixels (for
/// floats also 4-byte multiples and aligned buffers), no overflow, no partial overlap. Then
/// `map` runs on the plan; its errors become statuses.
private func applyRegion(_ function: String, _ guide: OpaquePointer?,
                         _ input: UnsafeRawPointer?, _ inStride: Int, _ output: UnsafeMutableRawPointer?, _ outStride: Int,
                         _ x: Int32, _ y: Int32, _ width: Int32, _ height: Int32, pixelBytes: Int,
                         _ map: (GuidedPlan, UnsafeRawPointer, UnsafeMutableRawPointer) throws(GuidedPlan.StateError) -> Void)
    -> f2a_status {
    guard let guide else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): guide is NULL") }
    guard let input else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): in is NULL") }
    guard let output else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): out is NULL") }
    let plan = guideBox(guide).plan
    // Summed as Int (64-bit): x + width cannot overflow.
    guard x >= 0, y >= 0, width >= 1, height >= 1,
          Int(x) + Int(width) <= plan.width, Int(y) + Int(height) <= plan.height else {
        return fail(F2A_ERR_INVALID_ARGUMENT,
                    "\(function): rectangle \(width)x\(height) at (\(x), \(y)) is not inside the \(plan.width)x\(plan.height) photo")
    }
    let rowBytes = pixelBytes * Int(width)
    if pixelBytes == 12 {
        guard inStride >= rowBytes, outStride >= rowBytes, inStride % 4 == 0, outStride % 4 == 0,
              Int(bitPattern: input) % 4 == 0, Int(bitPattern: output) % 4 == 0 else {
            return fail(F2A_ERR_INVALID_ARGUMENT,
                        "\(function): strides (in \(inStride), out \(outStride)) must be multiples of 4 and at least "
                        + "width*12 = \(rowBytes) bytes, buffers 4-byte aligned")
        }
    } else {
        guard inStride >= rowBytes, outStride >= rowBytes else {
            return fail(F2A_ERR_INVALID_ARGUMENT,
                        "\(function): strides (in \(inStride), out \(outStride)) must be at least width*\(pixelBytes) = \(rowBytes) bytes")
        }
    }
    guard inStride.multipliedReportingOverflow(by: Int(height)).overflow == false,
          outStride.multipliedReportingOverflow(by: Int(height)).overflow == false else {
        return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): stride x height overflows")
    }
    if let status = checkOverlap(function, input: input, inStride: inStride, output: UnsafeRawPointer(output),
                                 outStride: outStride, rowBytes: rowBytes, height: Int(height)) {
        return status
    }
    do {
        try map(plan, input, output)
    } catch {
        switch error {
        case .notFinished: return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): call f2a_guide_finish first")
        default: return fail(F2A_ERR_INTERNAL, "\(function): \(error)")
        }
    }
    return F2A_OK
}

@c @implementation
public func f2a_guide_apply_f32(_ guide: OpaquePointer?,
                                _ input: UnsafePointer<Float>?, _ inStride: Int,
                                _ output: UnsafeMutablePointer<Float>?, _ outStride: Int,
                                _ x: Int32, _ y: Int32, _ width: Int32, _ height: Int32) -> f2a_status {
    applyRegion("f2a_guide_apply_f32", guide, input.map(UnsafeRawPointer.init), inStride,
                output.map(UnsafeMutableRawPointer.init), outStride, x, y, width, height, pixelBytes: 12) { plan, i, o throws(GuidedPlan.StateError) in
        try plan.apply(i.assumingMemoryBound(to: Float.self), inputRowStride: inStride / 4,
                       to: o.assumingMemoryBound(to: Float.self), outputRowStride: outStride / 4,
                       x: Int(x), y: Int(y), width: Int(width), height: Int(height))
    }
}

@c @implementation
public func f2a_guide_apply_u8(_ guide: OpaquePointer?,
                               _ input: UnsafePointer<UInt8>?, _ inStride: Int,
                               _ output: UnsafeMutablePointer<UInt8>?, _ outStride: Int,
                               _ x: Int32, _ y: Int32, _ width: Int32, _ height: Int32) -> f2a_status {
    applyRegion("f2a_guide_apply_u8", guide, input.map(UnsafeRawPointer.init), inStride,
                output.map(UnsafeMutableRawPointer.init), outStride, x, y, width, height, pixelBytes: 3) { plan, i, o throws(GuidedPlan.StateError) in
        try plan.apply(i.assumingMemoryBound(to: UInt8.self), inputRowStride: inStride,
                       to: o.assumingMemoryBound(to: UInt8.self), outputRowStride: outStride,
                       x: Int(x), y: Int(y), width: Int(width), height: Int(height))
    }
}

@c @implementation
public func f2a_guide_free(_ guide: OpaquePointer?) {
    guard let guide else { return }
    Unmanaged<GuideBox>.fromOpaque(UnsafeRawPointer(guide)).release()
}
