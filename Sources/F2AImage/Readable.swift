import Foundation

/// Numbers as people read them in messages, for f2a and f2a-train alike: three significant
/// digits and a unit (`37.5 ms`, `1.77 GFLOP`), never the nine digits of a Double or a Duration.
public enum Readable {
    /// `value` with `digits` significant digits, without an exponent: 1.769996288 → "1.77",
    /// 37.548 → "37.5", 110.4 → "110", 0.012345 → "0.0123", 9.996 → "10.0", 123456 → "123456".
    public static func significant(_ value: Double, digits: Int = 3) -> String {
        guard value.isFinite, value != 0 else { return value.isFinite ? "0" : "\(value)" }
        let magnitude = Int(floor(log10(abs(value))))
        let decimals = max(0, digits - 1 - magnitude)
        let text = String(format: "%.\(decimals)f", value)
        // Rounding can carry into the next power of ten (9.996 → "10.00"): one decimal fewer then.
        if decimals > 0, text.filter(\.isNumber).drop(while: { $0 == "0" }).count > digits {
            return String(format: "%.\(decimals - 1)f", value)
        }
        return text
    }

    /// How a duration is spelled where it is shown.
    public enum DurationStyle: Sendable {
        /// In sentences and timings: "37.5 ms", "1.50 s", "1 min 15 s", "2 h 5 min".
        case prose
        /// In a progress bar redrawn in place: "0:34", "1:02:03".
        case clock
        /// In a dense log line: "0m34s", "1h02m".
        case compact
    }

    /// `seconds` in `style`. From a minute on (clock and compact: always) it is rounded to
    /// whole seconds, so every style agrees on which second a duration is; prose below a
    /// minute has three significant digits, and picks its unit after rounding, so that
    /// 59.97 s reads "1 min 0 s", not "60.0 s". "?" when there is no such duration
    /// (negative, not finite, or beyond what an Int counts).
    public static func duration(seconds s: Double, _ style: DurationStyle = .prose) -> String {
        guard s.isFinite, s >= 0, s < 0x1p63 else { return "?" }
        if style == .prose {
            if s < 1 {
                let ms = significant(s * 1000)
                if Double(ms)! < 1000 { return ms + " ms" }
            }
            if s < 60 {
                let text = significant(s)
                if Double(text)! < 60 { return text + " s" }
            }
        }
        let t = Int(s.rounded())
        let (h, m, sec) = (t / 3600, t / 60 % 60, t % 60)
        switch style {
        case .prose: return t < 3600 ? "\(t / 60) min \(sec) s" : "\(h) h \(m) min"
        case .clock: return t < 3600 ? String(format: "%d:%02d", t / 60, sec) : String(format: "%d:%02d:%02d", h, m, sec)
        case .compact: return t < 3600 ? String(format: "%dm%02ds", t / 60, sec) : String(format: "%dh%02dm", h, m)
        }
    }

    /// A measured duration, in prose.
    public static func duration(_ d: Duration) -> String {
        let (s, attoseconds) = d.components
        return duration(seconds: Double(s) + Double(attoseconds) * 1e-18)
    }
}
