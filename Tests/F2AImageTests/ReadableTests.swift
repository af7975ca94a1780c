import F2AImage
import Testing

/// The one duration formatter of f2a (timings: prose; batch ETA: clock) and f2a-train (ETA:
/// compact), at the edges where a unit or a field changes.
@Suite struct ReadableDurationTests {
    @Test(arguments: [
        // seconds, prose, clock, compact
        (0.0, "0 ms", "0:00", "0m00s"),
        (0.037548533, "37.5 ms", "0:00", "0m00s"),
        (1.5, "1.50 s", "0:02", "0m02s"),
        (59.9, "59.9 s", "1:00", "1m00s"),
        (61.0, "1 min 1 s", "1:01", "1m01s"),
        (75.2, "1 min 15 s", "1:15", "1m15s"),
        (3599.4, "59 min 59 s", "59:59", "59m59s"),
        (3600.0, "1 h 0 min", "1:00:00", "1h00m"),
        (3723.4, "1 h 2 min", "1:02:03", "1h02m"),
        (90061.0, "25 h 1 min", "25:01:01", "25h01m"),
    ])
    func styles(seconds: Double, prose: String, clock: String, compact: String) {
        #expect(Readable.duration(seconds: seconds) == prose)
        #expect(Readable.duration(seconds: seconds, .clock) == clock)
        #expect(Readable.duration(seconds: seconds, .compact) == compact)
    }

    /// Rounding to the shown precision may reach the next unit: the unit follows the
    /// rounded value ("1000 ms" and "60.0 s" were printed before).
    @Test func roundingReachesTheNextUnit() {
        #expect(Readable.duration(seconds: 0.9996) == "1.00 s")
        #expect(Readable.duration(seconds: 0.9994) == "999 ms")
        #expect(Readable.duration(seconds: 59.96) == "1 min 0 s")
        #expect(Readable.duration(seconds: 59.94) == "59.9 s")
        #expect(Readable.duration(seconds: 3599.6) == "1 h 0 min")
        #expect(Readable.duration(seconds: 3599.6, .clock) == "1:00:00")
        #expect(Readable.duration(seconds: 3599.6, .compact) == "1h00m")
    }

    /// An ETA from a rate of zero or a clock going backwards has no duration to show.
    @Test(arguments: [-1.0, .infinity, -.infinity, .nan, 1e30])
    func noSuchDuration(seconds: Double) {
        #expect(Readable.duration(seconds: seconds) == "?")
        #expect(Readable.duration(seconds: seconds, .clock) == "?")
        #expect(Readable.duration(seconds: seconds, .compact) == "?")
    }

    @Test func measuredDuration() {
        #expect(Readable.duration(.milliseconds(37.5)) == "37.5 ms")
        #expect(Readable.duration(.seconds(75)) == "1 min 15 s")
    }

    @Test func significantDigits() {
        #expect(Readable.significant(1.769996288) == "1.77")
        #expect(Readable.significant(110.4) == "110")
        #expect(Readable.significant(0.012345) == "0.0123")
        #expect(Readable.significant(123456) == "123456")
    }

    /// Rounding that carries into the next power of ten keeps three digits, not four.
    @Test func significantDigitsAfterACarry() {
        #expect(Readable.significant(9.996) == "10.0")
        #expect(Readable.significant(0.9996) == "1.00")
        #expect(Readable.significant(99.96) == "100")
        #expect(Readable.significant(0.009996) == "0.0100")
        #expect(Readable.significant(-9.996) == "-10.0")
        #expect(Readable.significant(999.6) == "1000")
    }
}
