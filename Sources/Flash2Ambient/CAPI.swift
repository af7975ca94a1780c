import CFlash2Ambient
import F2ACore
import F2AModel
#if canImport(Glibc)
import Glibc
#endif

// The C ABI of libflash2ambient. Each function implements a declaration of
// include/flash2ambient.h; `@c @implementation` makes the compiler reject any
// signature that drifts from the header. No function may trap on bad input:
// a trap here kills the host process (a libvips pipeline, a C application).

/// The object behind an `f2a_model *`: the generator plus C strings that
/// `f2a_model_get_info` hands out and that live as long as the model.
final class ModelBox {
    let generator: Generator
    let upsample: UnsafeMutablePointer<CChar>
    let activation: UnsafeMutablePointer<CChar>
    let formulation: UnsafeMutablePointer<CChar>
    let modelDescription: UnsafeMutablePointer<CChar>

    init(_ generator: Generator) {
        self.generator = generator
        let c = generator.config
        upsample = strdup(c.upsample.rawValue)
        activation = strdup(c.activation.rawValue)
        formulation = strdup(c.formulation.rawValue)
        modelDescription = strdup(c.description)
    }

    deinit {
        free(upsample); free(activation); free(formulation); free(modelDescription)
    }
}

/// Records `message` for f2a_last_error() and returns `status`.
@discardableResult
func fail(_ status: f2a_status, _ message: String) -> f2a_status {
    f2a__set_last_error(message)
    return status
}

// f2a_version() is C (CFlash2Ambient/version.c): spelled from the header's macros.

@c @implementation
public func f2a_status_string(_ status: f2a_status) -> UnsafePointer<CChar>? {
    let s: StaticString
    switch status {
    case F2A_OK: s = "ok"
    case F2A_ERR_INVALID_ARGUMENT: s = "invalid argument"
    case F2A_ERR_IO: s = "input/output error"
    case F2A_ERR_FORMAT: s = "invalid weights file"
    case F2A_ERR_OUT_OF_MEMORY: s = "out of memory"
    case F2A_ERR_CANCELLED: s = "cancelled"
    case F2A_ERR_INTERNAL: s = "internal error"
    default: s = "unknown status"
    }
    return UnsafeRawPointer(s.utf8Start).assumingMemoryBound(to: CChar.self)
}

@c @implementation
public func f2a_default_params() -> f2a_params {
    f2a_params(struct_size: MemoryLayout<f2a_params>.size, strength: 1, progress: nil, progress_user_data: nil,
               mode: F2A_MODE_AUTO, working_size: Int32(ApplyOptions.defaultWorkingSize),
               tile_size: Int32(ApplyOptions.defaultTileSize))
}

/// Smallest `struct_size` accepted: the layout of 0.2, the first with the
/// field. Later versions append fields and keep reading older callers'
/// structs, filling what they lack with defaults.
let minimumParamsSize = MemoryLayout<f2a_params>.size

/// The caller's parameters (defaults for NULL), reading no more bytes than
/// its `struct_size` says it has; nil (error recorded) when that is too small.
func readParams(_ params: UnsafePointer<f2a_params>?, _ function: String) -> f2a_params? {
    var p = f2a_default_params()
    guard let params else { return p }
    let size = UnsafeRawPointer(params).loadUnaligned(as: Int.self)
    guard size >= minimumParamsSize else {
        fail(F2A_ERR_INVALID_ARGUMENT, "\(function): params->struct_size is \(size), expected sizeof(f2a_params) = "
             + "\(MemoryLayout<f2a_params>.size) (initialise params with f2a_default_params())")
        return nil
    }
    withUnsafeMutableBytes(of: &p) { dst in
        dst.copyMemory(from: UnsafeRawBufferPointer(start: params, count: min(size, MemoryLayout<f2a_params>.size)))
    }
    p.struct_size = MemoryLayout<f2a_params>.size
    return p
}

/// Checks the parameters every entry point shares; nil when fine, else the
/// failing status (already recorded).
func checkParams(_ p: f2a_params, _ function: String) -> f2a_status? {
    guard [F2A_MODE_AUTO, F2A_MODE_FULL, F2A_MODE_GUIDED, F2A_MODE_TILED].contains(p.mode) else {
        return fail(F2A_ERR_INVALID_ARGUMENT,
                    "\(function): unknown mode \(p.mode.rawValue) (F2A_MODE_AUTO, FULL, GUIDED or TILED: 0 to 3)")
    }
    let ws = ApplyOptions.workingSizeRange, ts = ApplyOptions.tileSizeRange
    guard ws.contains(Int(p.working_size)) else {
        return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): working_size \(p.working_size) is outside \(ws.lowerBound) to \(ws.upperBound)")
    }
    guard ts.contains(Int(p.tile_size)) else {
        return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): tile_size \(p.tile_size) is outside \(ts.lowerBound) to \(ts.upperBound)")
    }
    guard p.strength.isFinite, p.strength >= 0, p.strength <= 1 else {
        return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): strength \(p.strength) is outside [0, 1]")
    }
    return nil
}

/// The caller's parameters, read and checked; nil (error recorded) when they are invalid.
func validParams(_ params: UnsafePointer<f2a_params>?, _ function: String) -> f2a_params? {
    guard let p = readParams(params, function), checkParams(p, function) == nil else { return nil }
    return p
}

/// Largest image one call accepts: keeps every size product far from
/// overflow and the float working set within reach of a 64-bit process.
let maxPixels = 1 << 30

/// nil when width x height is an image size the library takes, else the failing status (recorded).
func checkImageSize(_ function: String, _ width: Int32, _ height: Int32) -> f2a_status? {
    guard width >= 1, height >= 1 else {
        return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): image size \(width)x\(height) must be at least 1x1")
    }
    let (pixels, overflow) = Int(width).multipliedReportingOverflow(by: Int(height))
    guard !overflow, pixels <= maxPixels else {
        return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): image size \(width)x\(height) exceeds \(maxPixels) pixels")
    }
    return nil
}

@c @implementation
public func f2a_model_load(_ path: UnsafePointer<CChar>?, _ outModel: UnsafeMutablePointer<OpaquePointer?>?) -> f2a_status {
    guard let outModel else { return fail(F2A_ERR_INVALID_ARGUMENT, "f2a_model_load: out_model is NULL") }
    outModel.pointee = nil
    // Every model's GEMMs come after its load; the host may share this OpenBLAS.
    BLASKernels.keepOpenBLASChoice()
    let file = String(cString: path ?? f2a_default_model_path()!)
    do {
        let generator = try Generator(file: WeightsFile.read(path: file))
        outModel.pointee = OpaquePointer(Unmanaged.passRetained(ModelBox(generator)).toOpaque())
        return F2A_OK
    } catch {
        switch error {
        case .unreadable, .unwritable: return fail(F2A_ERR_IO, error.description)
        case .outOfMemory: return fail(F2A_ERR_OUT_OF_MEMORY, "\(file): \(error.description)")
        default: return fail(F2A_ERR_FORMAT, "\(file): \(error.description)")
        }
    }
}

@c @implementation
public func f2a_model_free(_ model: OpaquePointer?) {
    guard let model else { return }
    Unmanaged<ModelBox>.fromOpaque(UnsafeRawPointer(model)).release()
}

func box(_ model: OpaquePointer) -> ModelBox {
    Unmanaged<ModelBox>.fromOpaque(UnsafeRawPointer(model)).takeUnretainedValue()
}

/// Smallest `f2a_model_info.struct_size` accepted: the first layout with the field. Later
/// versions append fields and keep filling older callers' structs up to their size.
let minimumInfoSize = MemoryLayout<f2a_model_info>.size

@c @implementation
public func f2a_model_get_info(_ model: OpaquePointer?, _ outInfo: UnsafeMutablePointer<f2a_model_info>?) -> f2a_status {
    guard let model else { return fail(F2A_ERR_INVALID_ARGUMENT, "f2a_model_get_info: model is NULL") }
    guard let outInfo else { return fail(F2A_ERR_INVALID_ARGUMENT, "f2a_model_get_info: out_info is NULL") }
    let size = UnsafeRawPointer(outInfo).loadUnaligned(as: Int.self)
    guard size >= minimumInfoSize else {
        return fail(F2A_ERR_INVALID_ARGUMENT, "f2a_model_get_info: out_info->struct_size is \(size), expected "
                    + "sizeof(f2a_model_info) = \(MemoryLayout<f2a_model_info>.size) (set it before the call)")
    }
    let b = box(model)
    let c = b.generator.config
    // The caller's struct is at least this layout (checked above): writing all of it stays inside.
    outInfo.pointee = f2a_model_info(
        struct_size: size, width: Float(c.width), decoder_width: Float(c.decoderWidth), levels: Int32(c.levels),
        upsample: b.upsample, activation: b.activation, formulation: b.formulation,
        description: b.modelDescription, parameter_count: Int64(c.parameterCount),
        size_multiple: Int32(c.sizeMultiple))
    return F2A_OK
}

@c @implementation
public func f2a_memory_limit_parse(_ name: UnsafePointer<CChar>?, _ value: UnsafePointer<CChar>?,
                                   _ outBytes: UnsafeMutablePointer<UInt64>?) -> f2a_status {
    guard let name else { return fail(F2A_ERR_INVALID_ARGUMENT, "f2a_memory_limit_parse: name is NULL") }
    guard let outBytes else { return fail(F2A_ERR_INVALID_ARGUMENT, "f2a_memory_limit_parse: out_bytes is NULL") }
    do {
        outBytes.pointee = UInt64(try MemoryBudget.limit(setting: String(cString: name), value: value.map { String(cString: $0) }))
        return F2A_OK
    } catch {
        return fail(F2A_ERR_INVALID_ARGUMENT, error.description)
    }
}

/// Validates the common arguments of the apply functions. Returns nil when
/// they are fine, else the failing status (already recorded).
func checkApplyArguments(_ function: String, model: OpaquePointer?, input: UnsafeRawPointer?, output: UnsafeRawPointer?,
                         inStride: Int, outStride: Int, width: Int32, height: Int32,
                         bytesPerPixel: Int, params: UnsafePointer<f2a_params>?) -> f2a_status? {
    guard model != nil else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): model is NULL") }
    guard input != nil else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): in is NULL") }
    guard output != nil else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): out is NULL") }
    if let status = checkImageSize(function, width, height) { return status }
    let rowBytes = Int(width) * bytesPerPixel
    guard inStride >= rowBytes, outStride >= rowBytes else {
        return fail(F2A_ERR_INVALID_ARGUMENT,
                    "\(function): strides (in \(inStride), out \(outStride)) must be at least width*\(bytesPerPixel) = \(rowBytes) bytes")
    }
    guard inStride.multipliedReportingOverflow(by: Int(height)).overflow == false,
          outStride.multipliedReportingOverflow(by: Int(height)).overflow == false else {
        return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): stride x height overflows")
    }
    if bytesPerPixel == 3 * MemoryLayout<Float>.size {
        guard inStride % MemoryLayout<Float>.size == 0, outStride % MemoryLayout<Float>.size == 0,
              Int(bitPattern: input) % MemoryLayout<Float>.alignment == 0,
              Int(bitPattern: output) % MemoryLayout<Float>.alignment == 0 else {
            return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): float buffers and strides must be 4-byte aligned")
        }
    }
    // The u8 path converts the whole input before it writes any output, so overlap is harmless there.
    if bytesPerPixel == 12, let status = checkOverlap(function, input: input!, inStride: inStride, output: output!,
                                                      outStride: outStride, rowBytes: rowBytes, height: Int(height)) {
        return status
    }
    guard let p = validParams(params, function) else { return F2A_ERR_INVALID_ARGUMENT }
    // Checked before any allocation: the u8 path's float copy counts too.
    let needed = box(model!).generator.estimatedPeakBytes(width: Int(width), height: Int(height),
                                                           options: applyOptions(p), withFloatCopy: bytesPerPixel == 3)
    return checkMemory(function, needed: needed, what: "a \(width)x\(height) image")
}

@c @implementation
public func f2a_resolve_mode(_ model: OpaquePointer?, _ width: Int32, _ height: Int32,
                             _ params: UnsafePointer<f2a_params>?, _ outMode: UnsafeMutablePointer<f2a_mode>?) -> f2a_status {
    let function = "f2a_resolve_mode"
    guard model != nil else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): model is NULL") }
    guard let outMode else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): out_mode is NULL") }
    if let status = checkImageSize(function, width, height) { return status }
    guard let p = validParams(params, function) else { return F2A_ERR_INVALID_ARGUMENT }
    outMode.pointee = switch applyOptions(p).resolvedMode(width: Int(width), height: Int(height)) {
    case .auto, .guided: F2A_MODE_GUIDED
    case .full: F2A_MODE_FULL
    case .tiled: F2A_MODE_TILED
    }
    return F2A_OK
}

@c @implementation
public func f2a_estimate_bytes(_ model: OpaquePointer?, _ width: Int32, _ height: Int32,
                               _ params: UnsafePointer<f2a_params>?, _ outBytes: UnsafeMutablePointer<UInt64>?) -> f2a_status {
    let function = "f2a_estimate_bytes"
    guard let model else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): model is NULL") }
    guard let outBytes else { return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): out_bytes is NULL") }
    if let status = checkImageSize(function, width, height) { return status }
    guard let p = validParams(params, function) else { return F2A_ERR_INVALID_ARGUMENT }
    outBytes.pointee = UInt64(box(model).generator.estimatedPeakBytes(width: Int(width), height: Int(height),
                                                                      options: applyOptions(p)))
    return F2A_OK
}

/// The float paths read input rows after they have written output rows (guided mode runs the
/// transform row by row), so an output overlapping the input anywhere but exactly on it would
/// return F2A_OK with wrong pixels. The header allows in-place only as the same buffer with
/// equal strides; nil when the buffers are that or disjoint. Strides × height are known not to overflow.
func checkOverlap(_ function: String, input: UnsafeRawPointer, inStride: Int, output: UnsafeRawPointer,
                  outStride: Int, rowBytes: Int, height: Int) -> f2a_status? {
    if input == output && inStride == outStride { return nil }
    let inStart = UInt(bitPattern: Int(bitPattern: input)), outStart = UInt(bitPattern: Int(bitPattern: output))
    let inEnd = inStart.addingReportingOverflow(UInt(inStride * (height - 1) + rowBytes))
    let outEnd = outStart.addingReportingOverflow(UInt(outStride * (height - 1) + rowBytes))
    // A span that wraps past the top of the address space cannot be a real buffer; treat it as overlapping.
    guard inEnd.overflow || outEnd.overflow || inStart < outEnd.partialValue && outStart < inEnd.partialValue else {
        return nil
    }
    return fail(F2A_ERR_INVALID_ARGUMENT,
                "\(function): in and out overlap; they may only be the same buffer with equal strides (in place)")
}

/// Swift allocations cannot fail gracefully, so requests that would not fit
/// in `MemoryBudget.available()` ($F2A_MAX_MEMORY_MB or half the RAM, and
/// what `ulimit -v` leaves) are refused up front. nil when `needed` fits.
func checkMemory(_ function: String, needed: Int, what: String) -> f2a_status? {
    let limit: Int
    do { limit = try MemoryBudget.available() } catch {
        return fail(F2A_ERR_INVALID_ARGUMENT, "\(function): \(error.description)")
    }
    guard needed <= limit else {
        return fail(F2A_ERR_OUT_OF_MEMORY,
                    "\(function): \(what) needs about \(needed >> 20) MB, over the limit of \(limit >> 20) MB "
                    + "(F2A_MAX_MEMORY_MB, default half the RAM, and ulimit -v)")
    }
    return nil
}

func applyOptions(_ p: f2a_params) -> ApplyOptions {
    let mode: ApplyMode = switch p.mode {
    case F2A_MODE_FULL: .full
    case F2A_MODE_GUIDED: .guided
    case F2A_MODE_TILED: .tiled
    default: .auto
    }
    return ApplyOptions(mode: mode, strength: p.strength, workingSize: Int(p.working_size), tileSize: Int(p.tile_size))
}

/// Runs the generator on a float view and maps its outcome to a status.
func run(_ model: OpaquePointer, _ view: RGBImageView, _ out: UnsafeMutablePointer<Float>, outStride: Int,
         _ params: UnsafePointer<f2a_params>?, function: String) -> f2a_status {
    let generator = box(model).generator
    let p = readParams(params, function)!
    let callback = p.progress.map { fn in
        { (fraction: Double) -> Bool in fn(Float(fraction), p.progress_user_data) == 0 }
    }
    do {
        try generator.apply(view, to: out, outputRowStride: outStride, options: applyOptions(p), progress: callback)
        return F2A_OK
    } catch {
        return fail(F2A_ERR_CANCELLED, "\(function): cancelled by the progress callback")
    }
}

@c @implementation
public func f2a_apply_f32(_ model: OpaquePointer?,
                          _ input: UnsafePointer<Float>?, _ inStride: Int,
                          _ output: UnsafeMutablePointer<Float>?, _ outStride: Int,
                          _ width: Int32, _ height: Int32,
                          _ params: UnsafePointer<f2a_params>?) -> f2a_status {
    if let status = checkApplyArguments("f2a_apply_f32", model: model, input: input, output: output,
                                        inStride: inStride, outStride: outStride, width: width, height: height,
                                        bytesPerPixel: 12, params: params) {
        return status
    }
    let view = RGBImageView(base: input!, width: Int(width), height: Int(height), rowStride: inStride / 4)
    return run(model!, view, output!, outStride: outStride / 4, params, function: "f2a_apply_f32")
}

@c @implementation
public func f2a_apply_u8(_ model: OpaquePointer?,
                         _ input: UnsafePointer<UInt8>?, _ inStride: Int,
                         _ output: UnsafeMutablePointer<UInt8>?, _ outStride: Int,
                         _ width: Int32, _ height: Int32,
                         _ params: UnsafePointer<f2a_params>?) -> f2a_status {
    if let status = checkApplyArguments("f2a_apply_u8", model: model, input: input, output: output,
                                        inStride: inStride, outStride: outStride, width: width, height: height,
                                        bytesPerPixel: 3, params: params) {
        return status
    }
    let w = Int(width), h = Int(height), row = 3 * w
    var floats = [Float](repeating: 0, count: row * h)
    for y in 0..<h {
        let src = input! + y * inStride
        for i in 0..<row { floats[y * row + i] = Float(src[i]) / 255 }
    }
    let status = floats.withUnsafeMutableBufferPointer { buf in
        run(model!, RGBImageView(base: buf.baseAddress!, width: w, height: h, rowStride: row),
            buf.baseAddress!, outStride: row, params, function: "f2a_apply_u8")
    }
    guard status == F2A_OK else { return status }
    for y in 0..<h {
        let dst = output! + y * outStride
        for i in 0..<row { dst[i] = UInt8(min(max(floats[y * row + i] * 255 + 0.5, 0), 255)) }
    }
    return F2A_OK
}
