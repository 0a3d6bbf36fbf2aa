import Foundation

/// A token bucket: `rate` tokens per second, holding at most `capacity`. Not thread-safe: the engine's queue owns it.
struct TokenBucket {
    private(set) var rate: Double
    private var tokens: Double
    private var last: Double

    /// `rate` 0 or infinite means no limit.
    init(rate: Double, now: Double) {
        self.rate = rate
        tokens = 1
        last = now
    }

    var isUnlimited: Bool { rate <= 0 || !rate.isFinite }
    /// A tenth of a second's worth, at least one: smooth pacing without stalling slow rates.
    var capacity: Double { max(1, rate * 0.1) }

    mutating func setRate(_ newRate: Double, now: Double) {
        refill(now)
        rate = newRate
        tokens = min(tokens, capacity)
    }

    private mutating func refill(_ now: Double) {
        guard !isUnlimited else { return }
        tokens = min(capacity, tokens + max(0, now - last) * rate)
        last = now
    }

    /// Whether a token is available now, without taking it.
    mutating func available(now: Double) -> Bool {
        if isUnlimited { return true }
        refill(now)
        return tokens >= 1
    }

    mutating func take(now: Double) {
        guard !isUnlimited else { return }
        refill(now)
        tokens -= 1
    }

    /// Seconds until a token is available (0 if one is).
    func wait(now: Double) -> Double {
        if isUnlimited { return 0 }
        let have = min(capacity, tokens + max(0, now - last) * rate)
        return have >= 1 ? 0 : (1 - have) / rate
    }
}

/// Adaptive rate control as the AWS SDKs' adaptive retry mode (botocore `retries/adaptive.py`, `throttling.py`):
/// unlimited until the first throttle; on a throttle the rate drops to 0.7× the measured send rate; afterwards it grows
/// along a CUBIC curve back towards (and past) the rate where throttling began, capped at twice the measured send rate.
/// The engine keeps one per bucket and one per KMS key.
///
/// Three departures from botocore, all because hundreds of requests are in flight here rather than a handful:
/// a throttle cuts the rate at most once per round trip (throttles of requests sent before the last cut only count),
/// as TCP applies one multiplicative decrease per window; and before the first half-second measurement completes, the
/// send rate is estimated from the partial window instead of taken as zero (which would collapse the rate to 0.5/s);
/// and the CUBIC curve is scaled with the rate so the climb back takes at most `recoverySeconds` (see `scale`).
struct AdaptiveRate {
    static let beta = 0.7
    static let scale = 0.4
    static let minimumRate = 0.5
    /// Seconds to climb back to the rate where throttling began, at most.
    static let recoverySeconds = 2.0

    /// botocore's 0.4, or more for large rates: with 0.4 the climb back takes ∛(0.75·rate) seconds (11 s at 2,000/s,
    /// 21 s at 10,000/s), which at the rates a bulk job runs spends most of each cycle far below the limit. Scaling
    /// the curve with the rate keeps its shape and caps the climb at `recoverySeconds`.
    private var scale: Double {
        max(Self.scale, lastMaxRate * (1 - Self.beta) / (Self.recoverySeconds * Self.recoverySeconds * Self.recoverySeconds))
    }

    /// nil until the first throttle: no adaptive limit yet.
    private(set) var fillRate: Double?
    private var lastMaxRate = 0.0
    private var lastThrottle = 0.0
    private var k = 0.0
    // Send-rate measurement in half-second buckets, smoothed 0.8 new / 0.2 old.
    private(set) var measuredRate = 0.0
    private var bucketStart = 0.0
    private var bucketCount = 0.0
    /// Throttles seen (metrics and logs).
    private(set) var throttles = 0

    mutating func recordSend(now: Double) {
        let t = (now * 2).rounded(.down) / 2
        bucketCount += 1
        if !started {
            started = true
            bucketStart = t
            firstSend = now
        } else if t > bucketStart {
            // The first window counts from the first send, not from its half-second boundary: a window that began
            // 10 ms before the boundary would otherwise read as a fiftieth of the real rate.
            let current = bucketCount / max(0.05, t - max(bucketStart, firstSend))
            measuredRate = measuredRate == 0 ? current : current * 0.8 + measuredRate * 0.2
            bucketCount = 0
            bucketStart = t
        }
    }

    private var firstSend = 0.0
    private var started = false

    /// The smoothed send rate, or an estimate from the sends so far while no window has completed.
    func sendRate(now: Double) -> Double {
        if measuredRate > 0 { return measuredRate }
        return bucketCount / max(0.05, now - firstSend)
    }

    /// - Parameter sentAt: when the answered request was sent; throttles of requests sent before the last cut do not
    ///   cut again.
    mutating func recordResponse(throttled: Bool, sentAt: Double, now: Double) {
        if throttled {
            throttles += 1
            if fillRate != nil && sentAt < lastThrottle { return }
            let measured = sendRate(now: now)
            let base = fillRate.map { min(measured, $0) } ?? measured
            let rateToUse = max(base, Self.minimumRate)
            lastMaxRate = rateToUse
            lastThrottle = now
            k = cbrt(lastMaxRate * (1 - Self.beta) / scale)
            fillRate = max(Self.minimumRate, rateToUse * Self.beta)
        } else if fillRate != nil {
            let t = now - lastThrottle - k
            var next = scale * t * t * t + lastMaxRate
            let measured = sendRate(now: now)
            if measured > 0 { next = min(next, 2 * measured) }
            fillRate = max(Self.minimumRate, next)
        }
    }
}
