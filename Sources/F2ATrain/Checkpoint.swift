import F2ACore
import F2AModel

/// A training checkpoint: generator and discriminator parameters, both Adam
/// states, the step, the run's configuration and its best validation score.
/// Stored in the weights-file container (docs/WEIGHTS_FORMAT.md), so it is
/// checksummed and written atomically; tensors are f32 and round-trip exactly.
public struct Checkpoint {
    public static let kind = "f2a-train-checkpoint"
    static let chunk = 3000

    public var config: TrainConfig
    public var step: Int
    public var bestPSNR: Double
    public var bestStep: Int
    /// (prefix, parameters, Adam) for "G" and, when present, "D".
    public var generator: [String: [Float]]
    public var generatorAdam: (m: [String: [Float]], v: [String: [Float]], t: Int)
    public var discriminator: [String: [Float]]?
    public var discriminatorAdam: (m: [String: [Float]], v: [String: [Float]], t: Int)?

    static func entries(_ params: ParameterSet, prefix: String, adam: Adam) -> [(name: String, tensor: Tensor)] {
        var out: [(name: String, tensor: Tensor)] = []
        for (i, n) in params.names.enumerated() {
            out.append(("\(prefix)/\(n)", Tensor(shape: params.shapes[i], data: params.values[i])))
            out.append(("\(prefix).adam_m/\(n)", Tensor(shape: params.shapes[i], data: adam.m[i])))
            out.append(("\(prefix).adam_v/\(n)", Tensor(shape: params.shapes[i], data: adam.v[i])))
        }
        return out
    }

    /// Writes a checkpoint of live training state atomically.
    public static func write(path: String, config: TrainConfig, step: Int, bestPSNR: Double, bestStep: Int,
                             generator: ParameterSet, adamG: Adam,
                             discriminator: ParameterSet?, adamD: Adam?) throws(TrainError) {
        var cfg: [(key: String, value: ConfigValue)] = [
            ("kind", .string(kind)), ("step", .int(Int64(step))),
            ("best_psnr", .float(bestPSNR)), ("best_step", .int(Int64(bestStep))),
            ("adam_t_g", .int(Int64(adamG.t))), ("adam_t_d", .int(Int64(adamD?.t ?? 0))),
        ]
        let json = Array(config.json.utf8)
        let parts = stride(from: 0, to: max(json.count, 1), by: chunk).map { String(decoding: json[$0..<min($0 + chunk, json.count)], as: UTF8.self) }
        cfg.append(("train_config_parts", .int(Int64(parts.count))))
        for (i, p) in parts.enumerated() { cfg.append(("train_config.\(i)", .string(p))) }
        var tensors = entries(generator, prefix: "G", adam: adamG)
        if let discriminator, let adamD { tensors += entries(discriminator, prefix: "D", adam: adamD) }
        do { try WeightsFile(config: cfg, tensors: tensors).write(path: path) } catch {
            throw .checkpoint(path: path, reason: "cannot write: \(error)")
        }
    }

    /// Reads and checks a checkpoint; every failure names the file.
    public static func read(path: String) throws(TrainError) -> Checkpoint {
        let file: WeightsFile
        do { file = try WeightsFile.read(path: path) } catch { throw .checkpoint(path: path, reason: "\(error)") }
        return try parse(file, path: path)
    }

    static func parse(_ file: WeightsFile, path: String) throws(TrainError) -> Checkpoint {
        func int(_ k: String) throws(TrainError) -> Int {
            guard case .int(let v) = file[config: k] else { throw .checkpoint(path: path, reason: "missing integer '\(k)'") }
            return Int(v)
        }
        guard case .string(let k) = file[config: "kind"], k == kind else {
            throw .checkpoint(path: path, reason: "not a training checkpoint (no kind = \(kind); is it an exported weights file?)")
        }
        let nParts = try int("train_config_parts")
        var json = ""
        for i in 0..<nParts {
            guard case .string(let s) = file[config: "train_config.\(i)"] else { throw .checkpoint(path: path, reason: "missing train_config.\(i)") }
            json += s
        }
        let config: TrainConfig
        do { config = try TrainConfig.merging(TrainConfig(), jsonObject: json, source: "configuration stored in \(path)") } catch {
            throw .checkpoint(path: path, reason: "\(error)")
        }
        var byName: [String: [Float]] = [:]
        for (n, t) in file.tensors { byName[n] = t.data }
        func group(_ prefix: String) -> [String: [Float]] {
            var out: [String: [Float]] = [:]
            for (n, v) in byName where n.hasPrefix(prefix + "/") { out[String(n.dropFirst(prefix.count + 1))] = v }
            return out
        }
        guard case .float(let best) = file[config: "best_psnr"] else { throw .checkpoint(path: path, reason: "missing best_psnr") }
        var ck = Checkpoint(config: config, step: try int("step"), bestPSNR: best, bestStep: try int("best_step"),
                            generator: group("G"), generatorAdam: (group("G.adam_m"), group("G.adam_v"), try int("adam_t_g")),
                            discriminator: nil, discriminatorAdam: nil)
        let d = group("D")
        if !d.isEmpty {
            ck.discriminator = d
            ck.discriminatorAdam = (group("D.adam_m"), group("D.adam_v"), try int("adam_t_d"))
        }
        return ck
    }

    /// Copies stored values into live parameters and Adam state, checking that
    /// every tensor is present with the right size.
    static func restore(_ values: [String: [Float]], adam: (m: [String: [Float]], v: [String: [Float]], t: Int),
                        into params: ParameterSet, _ opt: inout Adam, what: String, path: String) throws(TrainError) {
        for (i, n) in params.names.enumerated() {
            let count = params.values[i].count
            guard let p = values[n], let m = adam.m[n], let v = adam.v[n], p.count == count, m.count == count, v.count == count else {
                throw .checkpoint(path: path, reason: "\(what) tensor '\(n)' (or its Adam state) is missing or has the wrong size")
            }
            params.values[i] = p; opt.m[i] = m; opt.v[i] = v
        }
        if values.count != params.names.count {
            throw .checkpoint(path: path, reason: "\(what) has \(values.count) tensors, the configured model \(params.names.count)")
        }
        opt.t = adam.t
    }
}
