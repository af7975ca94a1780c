// Fuzz target for the C ABI entry points (f2a_apply_f32 / f2a_apply_u8,
// f2a_resolve_mode / f2a_estimate_bytes, f2a_model_get_info,
// f2a_status_string, f2a_last_error): the input bytes
// choose the model, width, height, strides, NULL-vs-non-NULL pointers,
// alignment, in-place, mode, strength, working_size, tile_size, a cancelling
// progress callback and the pixel values (raw float bit patterns: NaN, Inf,
// denormals). Every call must
//   - return one of the documented status codes, with a message on failure;
//   - return F2A_ERR_INVALID_ARGUMENT exactly when the header's rules are
//     broken (checked against an independent reading of flash2ambient.h);
//   - on success write only the width*3 values of each row (the bytes between
//     rows and past the end keep a sentinel; AddressSanitizer sees any read or
//     write outside the buffers, which are allocated to the exact size), leave
//     the input unchanged, and produce finite values in [0, 1];
//   - never trap, hang or allocate without bound.
// Sizes are capped (long side <= 320, area <= ~2600 pixels) so one execution
// takes milliseconds with the tiny models of Tests/fuzz/models.
//
// Built two ways, like FuzzWeights:
//   swift build --product f2a-fuzz-capi              → a replayer: runs every corpus file given
//   make fuzz  (-sanitize=fuzzer,address -DFUZZING)  → a libFuzzer binary.
// Models: every *.f2aw in $F2A_FUZZ_MODELS (default Tests/fuzz/models: four tiny random
// models, levels 1/2/3/5, transpose/unpool, sigmoid/tanh, rgb/ratio-log, f32/f16).
import CFlash2Ambient
import Flash2Ambient
import F2AFuzzReplay
#if canImport(Glibc)
import Glibc
#endif

/// Reads the fuzz input as a stream of choices; zeros once it runs out.
struct Choices {
    let bytes: [UInt8]
    var index = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }
    mutating func byte() -> UInt8 {
        defer { index += 1 }
        return index < bytes.count ? bytes[index] : 0
    }
    mutating func u16() -> UInt16 { UInt16(byte()) | UInt16(byte()) << 8 }
    mutating func u32() -> UInt32 { UInt32(u16()) | UInt32(u16()) << 16 }
    var remaining: Int { max(0, bytes.count - index) }
}

nonisolated(unsafe) let models: [OpaquePointer] = {
    let dir = getenv("F2A_FUZZ_MODELS").map { String(cString: $0) } ?? "Tests/fuzz/models"
    var names: [String] = []
    if let d = opendir(dir) {
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
            }
            if name.hasSuffix(".f2aw") { names.append(dir + "/" + name) }
        }
        closedir(d)
    }
    var loaded: [OpaquePointer] = []
    for path in names.sorted() {
        var model: OpaquePointer? = nil
        if f2a_model_load(path, &model) == F2A_OK, let model { loaded.append(model) }
    }
    if loaded.isEmpty {
        printError("f2a-fuzz-capi: no loadable *.f2aw in \(dir) (set F2A_FUZZ_MODELS)")
        exit(2)
    }
    return loaded
}()

func printError(_ message: String) {
    (message + "\n").withCString { _ = write(2, $0, strlen($0)) }
}

func require(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition {
        printError("f2a-fuzz-capi: invariant broken: \(message())")
        abort()
    }
}

/// A cancelling progress callback: counts calls, asks to stop at `cancelAt` (0 = never).
struct ProgressState { var calls: Int32 = 0; var cancelAt: Int32 = 0; var last: Float = 0; var monotonic = true }

let onProgress: @convention(c) (Float, UnsafeMutableRawPointer?) -> Int32 = { fraction, user in
    let s = user!.assumingMemoryBound(to: ProgressState.self)
    if !(fraction >= s.pointee.last) { s.pointee.monotonic = false }
    s.pointee.last = fraction
    s.pointee.calls += 1
    return s.pointee.cancelAt > 0 && s.pointee.calls >= s.pointee.cancelAt ? 1 : 0
}

/// Image side: mostly small, sometimes one long side (for tiled / guided), sometimes hostile.
func side(_ v: UInt8, long: Bool) -> Int32 {
    switch v {
    case 252: return 0
    case 253: return -1
    case 254: return Int32.min
    case 255: return Int32.max
    default: return long ? 1 + Int32(v) * 320 / 252 : 1 + Int32(v % 40)
    }
}

/// Row stride: the tight row plus a small delta, or a hostile value.
func stride(_ v: UInt8, rowBytes: Int) -> Int {
    switch v {
    case 0: return 0
    case 1: return -1                         // SIZE_MAX
    case 2: return Int.max
    case 3: return 1 << 62
    case 4: return rowBytes - 1
    default: return rowBytes + (Int(v) - 5) % 40   // 0...39 spare bytes per row
    }
}

let sentinel: UInt8 = 0xA5

func exercise(_ data: [UInt8]) {
    var c = Choices(data)
    let flags = c.byte(), flags2 = c.byte()
    let useU8 = flags & 1 != 0
    let nullParams = flags & 2 != 0
    let nullModel = flags & 4 != 0
    let nullIn = flags & 8 != 0
    let nullOut = flags & 16 != 0
    let inPlace = flags & 32 != 0
    let withProgress = flags & 64 != 0 && flags & 2 == 0   // the callback travels in params
    let misalign = flags & 128 != 0 ? Int(flags2 & 3) : 0
    let longWidth = flags2 & 4 != 0, longHeight = flags2 & 8 != 0 && !longWidth
    let rawFloats = flags2 & 16 != 0
    let model = models[Int(c.byte()) % models.count]

    let width = side(c.byte(), long: longWidth)
    let height = side(c.byte(), long: longHeight)
    let bpp = useU8 ? 3 : 12
    let validSize = width >= 1 && height >= 1 && Int(width) * Int(height) <= 1 << 30
    let rowBytes = validSize ? Int(width) * bpp : 64
    let inStride = stride(c.byte(), rowBytes: rowBytes)
    let outStride = inPlace ? inStride : stride(c.byte(), rowBytes: rowBytes)

    var params = f2a_default_params()
    let m = c.byte()
    params.mode = f2a_mode(rawValue: m < 240 ? UInt32(m % 4) : [4, 5, 1000, UInt32.max][Int(m % 4)])
    let ws = c.u16()
    params.working_size = ws < 65000 ? 16 + Int32(ws % 64) : [0, 15, 8193, -5, Int32.max, Int32.min][Int(ws % 6)]
    let ts = c.u16()
    params.tile_size = ts < 65000 ? 256 + Int32(ts % 64) : [0, 255, 4097, -1, Int32.max, Int32.min][Int(ts % 6)]
    let s = c.byte()
    params.strength = s < 240 ? Float(s) / 239
        : [Float.nan, .infinity, -.infinity, -0.0, 1.0000001, -1e-30, 2, .leastNonzeroMagnitude][Int(s % 8)]
    // struct_size: too small is refused unread; larger (a newer caller) reads the known prefix.
    let size = MemoryLayout<f2a_params>.size
    if flags2 & 32 != 0 { params.struct_size = [0, 8, size - 1, size + 64][Int(flags2 >> 6)] }
    let progressState = UnsafeMutablePointer<ProgressState>.allocate(capacity: 1)
    progressState.initialize(to: ProgressState(cancelAt: Int32(c.byte() % 8)))
    defer { progressState.deallocate() }
    if withProgress {
        params.progress = onProgress
        params.progress_user_data = UnsafeMutableRawPointer(progressState)
    }

    // What flash2ambient.h says about these arguments.
    let modeValid = (0...3).contains(params.mode.rawValue)
    let sizeSane = validSize && Int(width) * Int(height) <= 4096 * 4
    let stridesOK = inStride >= rowBytes && outStride >= rowBytes
        && !inStride.multipliedReportingOverflow(by: Int(max(height, 1))).overflow
        && !outStride.multipliedReportingOverflow(by: Int(max(height, 1))).overflow
    let aligned = useU8 || (misalign == 0 && inStride % 4 == 0 && outStride % 4 == 0)
    let paramsValid = nullParams || (params.struct_size >= size && modeValid && (16...8192).contains(params.working_size)
        && (256...4096).contains(params.tile_size) && params.strength >= 0 && params.strength <= 1)
    let valid = !nullModel && !nullIn && !nullOut && validSize && stridesOK && aligned && paramsValid

    // Buffers of exactly the bytes the arguments describe (when they make sense), else a small
    // one the library must not touch. An extra 4 bytes in front allow misaligning the pointer.
    func bytesFor(_ stride: Int) -> Int {
        guard sizeSane, stride >= rowBytes else { return 64 }
        let (rows, overflow) = (Int(height) - 1).multipliedReportingOverflow(by: stride)
        return !overflow && rows < 1 << 24 ? rows + rowBytes : 64
    }
    if valid && !sizeSane { return }   // cannot happen with the caps above; never hand over short buffers
    let inBytes = bytesFor(inStride), outBytes = inPlace ? inBytes : bytesFor(outStride)
    // malloc from this executable is AddressSanitizer's (Swift's allocator goes through the
    // uninstrumented runtime library), so every byte outside these buffers is poisoned.
    let inRaw = malloc(inBytes + 4)!
    let outRaw = inPlace ? inRaw : malloc(outBytes + 4)!
    defer {
        free(inRaw)
        if !inPlace { free(outRaw) }
    }
    let inBase = inRaw + misalign, outBase = outRaw + misalign
    // Pixels from the rest of the input, cyclically (raw float bits or byte/255), sentinel in padding.
    let pixelBytes = Array(data[min(c.index, data.count)...])
    inBase.initializeMemory(as: UInt8.self, repeating: sentinel, count: inBytes)
    if !inPlace { outBase.initializeMemory(as: UInt8.self, repeating: sentinel, count: outBytes) }
    if valid {
        var k = 0
        func next() -> UInt8 {
            defer { k += 1 }
            return pixelBytes.isEmpty ? UInt8(truncatingIfNeeded: k * 37) : pixelBytes[k % pixelBytes.count]
        }
        for y in 0..<Int(height) {
            let row = inBase + y * inStride
            for i in 0..<Int(width) * 3 {
                if useU8 {
                    row.storeBytes(of: next(), toByteOffset: i, as: UInt8.self)
                } else {
                    let v: Float = rawFloats
                        ? Float(bitPattern: UInt32(next()) | UInt32(next()) << 8 | UInt32(next()) << 16 | UInt32(next()) << 24)
                        : Float(next()) / 255
                    row.storeBytes(of: v, toByteOffset: 4 * i, as: Float.self)
                }
            }
        }
    }
    let inputCopy = Array(UnsafeRawBufferPointer(start: inBase, count: inBytes))

    // The policy functions take the same model, size and params, under the same rules.
    var resolved = f2a_mode(rawValue: 99)
    var estimate: UInt64 = 0
    let (resolveStatus, estimateStatus) = withUnsafePointer(to: &params) { p in
        (f2a_resolve_mode(nullModel ? nil : model, width, height, nullParams ? nil : p, &resolved),
         f2a_estimate_bytes(nullModel ? nil : model, width, height, nullParams ? nil : p, &estimate))
    }
    let policyValid = !nullModel && validSize && paramsValid
    require(resolveStatus == (policyValid ? F2A_OK : F2A_ERR_INVALID_ARGUMENT)
            && estimateStatus == resolveStatus, "f2a_resolve_mode / f2a_estimate_bytes gave \(resolveStatus.rawValue) / "
            + "\(estimateStatus.rawValue) for model \(!nullModel) size \(width)x\(height) params valid \(paramsValid)")
    if policyValid {
        require([F2A_MODE_FULL, F2A_MODE_GUIDED, F2A_MODE_TILED].contains(resolved), "resolved mode \(resolved.rawValue)")
        require(estimate > 0, "estimate 0")
    }

    let status: f2a_status = withUnsafePointer(to: &params) { p in
        let pp = nullParams ? nil : p
        let m = nullModel ? nil : model
        if useU8 {
            return f2a_apply_u8(m, nullIn ? nil : inBase.assumingMemoryBound(to: UInt8.self), inStride,
                                nullOut ? nil : outBase.assumingMemoryBound(to: UInt8.self), outStride,
                                width, height, pp)
        } else {
            return f2a_apply_f32(m, nullIn ? nil : UnsafePointer(OpaquePointer(inBase)), inStride,
                                 nullOut ? nil : UnsafeMutablePointer(OpaquePointer(outBase)), outStride,
                                 width, height, pp)
        }
    }

    require((0...6).contains(status.rawValue), "status \(status.rawValue) is not a documented code")
    let message = String(cString: f2a_last_error())
    let name = String(cString: f2a_status_string(status))
    require(!name.isEmpty && name != "unknown status", "no name for status \(status.rawValue)")
    if status != F2A_OK { require(!message.isEmpty, "status \(status.rawValue) without a message") }
    if !valid {
        require(status == F2A_ERR_INVALID_ARGUMENT,
                "invalid arguments (w \(width) h \(height) strides \(inStride)/\(outStride) u8 \(useU8) misalign \(misalign) "
                + "mode \(params.mode.rawValue) ws \(params.working_size) ts \(params.tile_size) strength \(params.strength)) "
                + "gave status \(status.rawValue): \(message)")
        require(message.hasPrefix(useU8 ? "f2a_apply_u8" : "f2a_apply_f32"), "message names the function: \(message)")
        require(Array(UnsafeRawBufferPointer(start: inBase, count: inBytes)) == inputCopy, "rejected call changed the input")
        if !inPlace {
            require(UnsafeRawBufferPointer(start: outBase, count: outBytes).allSatisfy { $0 == sentinel },
                    "rejected call wrote to the output")
        }
        return
    }
    let progress = progressState.pointee
    let cancels = withProgress && progress.cancelAt > 0
    require(status == F2A_OK || (cancels && status == F2A_ERR_CANCELLED),
            "valid call (w \(width) h \(height) mode \(params.mode.rawValue)) gave status \(status.rawValue): \(message)")
    if withProgress {
        require(progress.monotonic, "progress went backwards")
        if status == F2A_OK { require(progress.last == 1, "progress ended at \(progress.last)") }
        if status == F2A_ERR_CANCELLED { require(progress.calls == progress.cancelAt, "callback called after cancelling") }
    }
    guard status == F2A_OK else { return }
    if !inPlace {
        require(Array(UnsafeRawBufferPointer(start: inBase, count: inBytes)) == inputCopy, "the input was modified")
    }
    let outRowBytes = Int(width) * bpp
    for y in 0..<Int(height) {
        let row = outBase + y * outStride
        if !useU8 {
            for i in 0..<Int(width) * 3 {
                let v = row.load(fromByteOffset: 4 * i, as: Float.self)
                require(v >= 0 && v <= 1, "output value \(v) at row \(y) is outside [0, 1]")
            }
        }
        if !inPlace && y < Int(height) - 1 {
            for b in outRowBytes..<outStride {
                require(row.load(fromByteOffset: b, as: UInt8.self) == sentinel, "padding after row \(y) overwritten")
            }
        }
    }
    if params.strength == 0 && !nullParams && useU8 && !inPlace {
        for y in 0..<Int(height) {
            require(memcmp(inBase + y * inStride, outBase + y * outStride, outRowBytes) == 0, "strength 0 changed row \(y)")
        }
    }
    var info = f2a_model_info()
    info.struct_size = MemoryLayout<f2a_model_info>.size
    require(f2a_model_get_info(model, &info) == F2A_OK && info.levels >= 1 && info.levels <= 5
            && info.decoder_width > 0, "model info")
}

#if FUZZING
@_cdecl("F2AFuzzCAPI_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    _ = models
    return runLibFuzzer(argc, argv, exercise)
}
#else
@main
struct Replay {
    static func main() {
        replayCorpus(Array(CommandLine.arguments.dropFirst()), through: "the C ABI without a broken invariant", exercise)
    }
}
#endif
