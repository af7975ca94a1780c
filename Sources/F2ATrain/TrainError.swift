/// Errors of the trainer, each naming the file or setting at fault.
public enum TrainError: Error, CustomStringConvertible, Sendable {
    case data(String)
    case checkpoint(path: String, reason: String)
    case weights(String)
    case config(String)
    case io(String)

    public var description: String {
        switch self {
        case .data(let m): return "data: \(m)"
        case .checkpoint(let path, let reason): return "checkpoint '\(path)': \(reason)"
        case .weights(let m): return "weights: \(m)"
        case .config(let m): return "configuration: \(m)"
        case .io(let m): return m
        }
    }
}
