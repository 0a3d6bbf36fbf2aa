import DequeModule
import Domain
import JobStore

/// One bucket's share of the engine: the claimed tasks waiting to be sent, the configured per-bucket ceiling, and the
/// bucket's adaptive rate. The engine finds a lane by name once per claimed task and then holds it (in its rotation,
/// and in each answer), so sending and answering hash no bucket names.
///
/// Only touched on the engine's queue; answers carry lanes across threads without touching them, which is what makes
/// `@unchecked Sendable` sound (as for `Engine` itself).
final class BucketLane: @unchecked Sendable {
    let name: String
    // Exempt from run-time exclusivity checks, as the engine's own per-task fields are (see `Engine`).
    @exclusivity(unchecked) var ready: Deque<Lease> = []
    /// In the engine's rotation: true exactly while `ready` holds tasks.
    @exclusivity(unchecked) var inRotation = false
    /// The configured ceiling (0: none).
    let maxRate: Double
    /// Enforces the configured ceiling, or the adaptive rate where that is lower.
    @exclusivity(unchecked) var ceiling: TokenBucket
    @exclusivity(unchecked) var adaptive = AdaptiveRate()
    /// Calls out for this bucket, and when the last one went.
    @exclusivity(unchecked) var calls = 0
    @exclusivity(unchecked) var lastSend: Double

    init(name: String, maxRate: Double, now: Double) {
        self.name = name
        self.maxRate = maxRate
        ceiling = TokenBucket(rate: maxRate, now: now)
        lastSend = now
    }

    /// Nothing queued or out for a second, nothing learnt (never throttled) and a token ready: a new lane made for
    /// the bucket later would behave the same (it starts with one token), so this one can go.
    func isIdle(now: Double) -> Bool {
        !inRotation && ready.isEmpty && calls == 0 && now - lastSend >= 1 && adaptive.fillRate == nil
            && ceiling.wait(now: now) == 0
    }

    /// Whether a call may go now, the ceiling first brought down to the adaptive rate (or back up) when that moved.
    func allows(now: Double, adaptive on: Bool) -> Bool {
        if on, let limit = adaptive.fillRate {
            let rate = maxRate > 0 ? min(limit, maxRate) : limit
            if ceiling.rate != rate { ceiling.setRate(rate, now: now) }
        }
        return ceiling.available(now: now)
    }
}

/// One KMS key's adaptive rate, shared by every bucket whose tasks use the key (a KMS throttle slows them all), and
/// once the key has throttled, the token bucket enforcing that rate. Threads: as `BucketLane`.
final class KeyLane: @unchecked Sendable {
    @exclusivity(unchecked) var adaptive = AdaptiveRate()
    @exclusivity(unchecked) var ceiling: TokenBucket?

    func allows(now: Double, adaptive on: Bool) -> Bool {
        guard on, let limit = adaptive.fillRate else { return true }
        if ceiling == nil { ceiling = TokenBucket(rate: limit, now: now) }
        if ceiling!.rate != limit { ceiling!.setRate(limit, now: now) }
        return ceiling!.available(now: now)
    }
}
