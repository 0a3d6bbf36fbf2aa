import Domain
@testable import Engine
@testable import JobStore
import XCTest

/// The adaptive limiter against a model server with a fixed capacity, on a simulated clock (no real time).
final class AdaptiveRateTests: XCTestCase {
    /// Drives one limiter for `seconds` against a server that throttles whatever exceeds `capacity` per 100 ms slot.
    func simulate(capacity: Double, seconds: Double, concurrencyBurst: Int = 200) -> (goodput: Double, throttledShare: Double, finalRate: Double?) {
        var limiter = AdaptiveRate()
        var bucket = TokenBucket(rate: 0, now: 0)
        let dt = 0.001
        var t = 0.0
        var served = 0.0, throttled = 0.0, sentInSlot = 0.0, slot = 0.0
        var measuredServed = 0.0, measuredThrottled = 0.0
        var inFlight: [(sentAt: Double, throttled: Bool)] = []
        while t < seconds {
            if let r = limiter.fillRate, bucket.rate != r { bucket.setRate(r, now: t) }
            if limiter.fillRate == nil { bucket = TokenBucket(rate: 0, now: t) }
            // The client would send up to `concurrencyBurst` per ms if unlimited (hundreds in flight).
            var sends = 0
            while sends < concurrencyBurst && bucket.available(now: t) {
                bucket.take(now: t)
                limiter.recordSend(now: t)
                if (t * 10).rounded(.down) != slot { slot = (t * 10).rounded(.down); sentInSlot = 0 }
                sentInSlot += 1
                inFlight.append((t, sentInSlot > capacity / 10))
                sends += 1
            }
            // Answers arrive 20 ms after sending.
            while let first = inFlight.first, t - first.sentAt >= 0.02 {
                inFlight.removeFirst()
                limiter.recordResponse(throttled: first.throttled, sentAt: first.sentAt, now: t)
                if first.throttled { throttled += 1 } else { served += 1 }
                if t > 10 { if first.throttled { measuredThrottled += 1 } else { measuredServed += 1 } }
            }
            t += dt
        }
        return (measuredServed / (seconds - 10), measuredThrottled / max(1, measuredServed + measuredThrottled), limiter.fillRate)
    }

    func testConvergesNearCapacityWithFewThrottles() {
        let r = simulate(capacity: 2000, seconds: 60)
        XCTAssertGreaterThanOrEqual(r.goodput, 0.9 * 2000, "goodput after the first 10 s")
        XCTAssertLessThanOrEqual(r.throttledShare, 0.05, "share of answers throttled after the first 10 s")
        XCTAssertNotNil(r.finalRate)
    }

    func testOneBurstOfThrottlesCutsOnceNotPerAnswer() {
        var limiter = AdaptiveRate()
        for i in 0..<1000 { limiter.recordSend(now: Double(i) / 1000) }  // ~1000/s
        for _ in 0..<100 { limiter.recordResponse(throttled: true, sentAt: 0.5, now: 1.01) }
        let rate = limiter.fillRate ?? 0
        XCTAssertGreaterThan(rate, 300, "a hundred throttles of one window cut once (0.7x), not a hundred times")
        XCTAssertLessThan(rate, 1000)
        XCTAssertEqual(limiter.throttles, 100)
    }

    func testUnlimitedUntilTheFirstThrottleThenRecoversAlongCubic() {
        var limiter = AdaptiveRate()
        limiter.recordResponse(throttled: false, sentAt: 0, now: 0)
        XCTAssertNil(limiter.fillRate)
        for i in 0..<2000 { limiter.recordSend(now: Double(i) / 1000) }
        limiter.recordResponse(throttled: true, sentAt: 1.9, now: 2)
        let cut = limiter.fillRate!
        for i in 0..<100 { limiter.recordSend(now: 2 + Double(i) / 100) }
        limiter.recordResponse(throttled: false, sentAt: 2.5, now: 3)
        let early = limiter.fillRate!
        limiter.recordResponse(throttled: false, sentAt: 10, now: 12)
        XCTAssertLessThan(early, cut * 1.5)
        XCTAssertGreaterThanOrEqual(limiter.fillRate!, early, "the rate grows back after the throttle")
    }

    /// At bulk-job rates the climb back to the rate where throttling began takes `recoverySeconds`, not ∛(0.75·rate)
    /// seconds (21 s at 10,000/s with botocore's constant); and a first measurement window cut short by its
    /// half-second boundary still reads the real rate.
    func testClimbBackIsBoundedAtHighRatesAndTheFirstWindowReadsTheRealRate() {
        var limiter = AdaptiveRate()
        // 10,000/s for 0.2 s, starting 0.3 s into a half-second window.
        for i in 0..<2000 { limiter.recordSend(now: 100.3 + Double(i) / 10_000) }
        limiter.recordSend(now: 100.5)  // the window closes
        XCTAssertGreaterThan(limiter.measuredRate, 5000, "the first window counts from the first send")
        for i in 0..<5000 { limiter.recordSend(now: 100.5 + Double(i) / 10_000) }
        limiter.recordSend(now: 101.0)
        limiter.recordResponse(throttled: true, sentAt: 100.99, now: 101.0)
        let wMax = limiter.fillRate! / AdaptiveRate.beta
        limiter.recordResponse(throttled: false, sentAt: 101.0 + AdaptiveRate.recoverySeconds, now: 101.0 + AdaptiveRate.recoverySeconds)
        XCTAssertEqual(limiter.fillRate!, wMax, accuracy: wMax * 0.01, "back at the pre-throttle rate after recoverySeconds")
    }

    func testRetryBudgetCountsThrottlesAsAQuarter() {
        let p = RetryPolicy(maxAttempts: 10, base: 0.1, cap: 20)
        XCTAssertFalse(p.exhausted(errors: 9, throttles: 3))
        XCTAssertTrue(p.exhausted(errors: 9, throttles: 4))
        XCTAssertTrue(p.exhausted(errors: 10, throttles: 0))
        XCTAssertFalse(p.exhausted(errors: 0, throttles: 39))
        XCTAssertTrue(p.exhausted(errors: 0, throttles: 40))
        var rng = SystemRandomNumberGenerator()
        for retries in 0..<30 {
            let d = p.delay(retries: retries, retryAfterMilliseconds: nil, using: &rng)
            XCTAssertLessThanOrEqual(d, min(20, 0.1 * pow(2, Double(retries))))
            XCTAssertGreaterThanOrEqual(d, 0)
        }
        XCTAssertGreaterThanOrEqual(p.delay(retries: 0, retryAfterMilliseconds: 1500, using: &rng), 1.5, "x-amz-retry-after is honoured")
    }
}

extension AdaptiveRateTests {
    /// Several buckets, each with its own limiter, sharing one server capacity (S3's limit as bench (c) sets it up).
    func simulateShared(buckets: Int, capacity: Double, seconds: Double) -> (goodput: Double, throttledShare: Double) {
        var limiters = [AdaptiveRate](repeating: AdaptiveRate(), count: buckets)
        var tokenBuckets = (0..<buckets).map { _ in TokenBucket(rate: 0, now: 0) }
        let dt = 0.001
        var t = 0.0
        var slot = -1.0, sentInSlot = 0.0
        var inFlight: [(bucket: Int, sentAt: Double, throttled: Bool)] = []
        var served = 0.0, throttled = 0.0
        while t < seconds {
            for b in 0..<buckets {
                if let r = limiters[b].fillRate { if tokenBuckets[b].rate != r { tokenBuckets[b].setRate(r, now: t) } }
                var sends = 0
                while sends < 50 && tokenBuckets[b].available(now: t) {
                    tokenBuckets[b].take(now: t)
                    limiters[b].recordSend(now: t)
                    if (t * 20).rounded(.down) != slot { slot = (t * 20).rounded(.down); sentInSlot = 0 }
                    sentInSlot += 1
                    inFlight.append((b, t, sentInSlot > capacity / 20))
                    sends += 1
                }
            }
            while let first = inFlight.first, t - first.sentAt >= 0.02 {
                inFlight.removeFirst()
                limiters[first.bucket].recordResponse(throttled: first.throttled, sentAt: first.sentAt, now: t)
                if t > 10 { if first.throttled { throttled += 1 } else { served += 1 } }
            }
            t += dt
        }
        return (served / (seconds - 10), throttled / max(1, served + throttled))
    }

    func testBucketsSharingOneLimitConvergeNearIt() {
        let r = simulateShared(buckets: 4, capacity: 2000, seconds: 70)
        XCTAssertGreaterThanOrEqual(r.goodput, 0.9 * 2000)
        XCTAssertLessThanOrEqual(r.throttledShare, 0.05)
    }

    /// A bucket's lane may be dropped only when a new one would act the same: nothing queued or out, nothing learnt,
    /// a token ready, and a second since its last call.
    func testALaneIsIdleOnlyWithNothingQueuedOutOrLearnt() {
        let lane = BucketLane(name: "b", maxRate: 0, now: 100)
        XCTAssertFalse(lane.isIdle(now: 100.5), "made (or last sent) under a second ago")
        XCTAssertTrue(lane.isIdle(now: 101))
        lane.calls = 1
        XCTAssertFalse(lane.isIdle(now: 101), "a call is out")
        lane.calls = 0
        lane.ready.append(Lease(taskID: 1, jobID: 1, object: ObjectRef(bucket: "b", key: "k"), attempts: 0, errors: 0, throttles: 0))
        lane.inRotation = true
        XCTAssertFalse(lane.isIdle(now: 101), "a task is queued")
        lane.ready.removeAll()
        lane.inRotation = false

        let slow = BucketLane(name: "s", maxRate: 0.5, now: 100)
        slow.ceiling.take(now: 100)
        XCTAssertFalse(slow.isIdle(now: 101.5), "no token yet: a new lane would start with one")
        XCTAssertTrue(slow.isIdle(now: 102))

        let throttled = BucketLane(name: "t", maxRate: 0, now: 100)
        for i in 0..<50 { throttled.adaptive.recordSend(now: 100 + Double(i) * 0.02) }
        throttled.adaptive.recordResponse(throttled: true, sentAt: 100.9, now: 101)
        XCTAssertNotNil(throttled.adaptive.fillRate)
        XCTAssertFalse(throttled.isIdle(now: 200), "its learnt rate would be lost")
    }
}
