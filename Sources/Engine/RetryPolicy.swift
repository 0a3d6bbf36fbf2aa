import Foundation

/// When to try a task again, and when to stop.
///
/// The budget: a task may fail `maxAttempts` times with errors (5xx, timeouts, resets), but a throttle costs only a
/// quarter of an attempt, so a throttled job slows down rather than burning its tasks' attempts: with the default 10,
/// a task survives 40 throttles, or 10 errors, or any mix where errors + throttles/4 < 10.
/// Backoff: full jitter, `random(0, min(cap, base · 2^retries))`, never shorter than S3's `x-amz-retry-after`.
/// https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/ ; botocore retries/standard.py
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var base: Double
    public var cap: Double
    public static let throttleCost = 0.25

    public init(maxAttempts: Int, base: Double, cap: Double) {
        self.maxAttempts = maxAttempts
        self.base = base
        self.cap = cap
    }

    public func exhausted(errors: Int, throttles: Int) -> Bool {
        Double(errors) + Double(throttles) * Self.throttleCost >= Double(maxAttempts)
    }

    /// The delay before the next attempt, after `retries` retries so far.
    public func delay<R: RandomNumberGenerator>(retries: Int, retryAfterMilliseconds: Int?, using rng: inout R) -> Double {
        let ceiling = min(cap, base * pow(2, Double(min(retries, 40))))
        let jittered = Double.random(in: 0...max(ceiling, 0), using: &rng)
        return max(jittered, Double(retryAfterMilliseconds ?? 0) / 1000)
    }
}
