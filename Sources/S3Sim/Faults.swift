import Foundation

/// Faults the simulator injects, switchable while it runs.
public struct SimFaults: Sendable, Equatable {
    public enum Latency: Sendable, Equatable {
        case none
        case fixed(milliseconds: Double)
        case uniform(minMilliseconds: Double, maxMilliseconds: Double)
        /// Exponential with this mean: a long tail, as real services have.
        case exponential(meanMilliseconds: Double)
    }

    public var latency = Latency.none
    /// Above this many requests/s (token bucket), answer 503 SlowDown. nil: no limit.
    public var throttleRPS: Double?
    /// Per bucket, as S3 throttles one prefix partition while others run free: above this many requests/s to that
    /// bucket, 503 SlowDown.
    public var bucketThrottleRPS: [String: Double] = [:]
    /// The same, with the KMS variant of the SlowDown message.
    public var kmsThrottleRPS: Double?
    /// Share of data requests answered 500 InternalError.
    public var errorRate = 0.0
    /// Share of data requests whose connection is reset without an answer.
    public var resetRate = 0.0
    /// Share of data requests answered only after `slowSeconds` (to outlast a client's timeout).
    public var slowRate = 0.0
    public var slowSeconds = 60.0
    /// Share of UpdateObjectEncryption requests answered 200 with an `<Error>` body.
    public var errorIn200Rate = 0.0
    /// Added to the simulator's clock (for clock-skew tests).
    public var clockOffsetSeconds = 0.0

    public init() {}
}

/// A token bucket for the simulator's throttling: `rate` tokens per second, a burst of 50 ms worth.
struct SimTokenBucket {
    var rate: Double
    var tokens: Double
    var last: Double

    init(rate: Double, now: Double) {
        self.rate = rate
        tokens = max(1, rate * 0.05)
        last = now
    }

    mutating func take(now: Double) -> Bool {
        let capacity = max(1, rate * 0.05)
        tokens = min(capacity, tokens + (now - last) * rate)
        last = now
        if tokens >= 1 {
            tokens -= 1
            return true
        }
        return false
    }
}

/// SplitMix64: fast, seedable randomness for fault injection (not for anything secret).
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
