import Domain
@testable import Engine
import Foundation
import JobStore
import XCTest

final class ClaimPacingTests: XCTestCase {
    /// With every task backing off, a claim finds nothing due; the engine then waits 50 ms before asking again
    /// rather than asking on every 5 ms tick (an empty write transaction each time: 10% of a core while waiting).
    /// The gaps are judged by their median, so one claim held up behind other store work cannot make the test fail.
    func testAfterAnEmptyClaimTheNextWaits() throws {
        let h = try EngineHarness(objects: 20)
        let now = Date().timeIntervalSince1970
        let leased = try h.store.claim(owner: "setup", limit: 100, now: now, leaseSeconds: 60)
        XCTAssertEqual(leased.count, 20)
        try h.store.record(leased.map {
            TaskResult(taskID: $0.taskID, jobID: $0.jobID, disposition: .retry(notBefore: now + 3600), attempts: 1, errors: 1,
                       throttles: 0, httpStatus: 500, errorCode: "InternalError", errorMessage: "backing off", requestID: nil)
        }, owner: "setup", now: now)
        let store = ClaimTimingStore(h.store)
        var c = EngineHarness.fastConfiguration()
        c.untilIdle = false
        let engine = Engine(store: store, client: h.client, configuration: c, logger: h.quietLogger)
        let stop = EngineHarness.start(engine)
        Thread.sleep(forTimeInterval: 1.5)
        stop()
        let times = store.claimTimes
        XCTAssertGreaterThanOrEqual(times.count, 5, "the engine stopped asking for work, so nothing was tested")
        let gaps = zip(times.dropFirst(), times).map { $0 - $1 }.sorted()
        XCTAssertGreaterThanOrEqual(gaps[gaps.count / 2], 0.045, "claims that found nothing came back-to-back: \(gaps.prefix(10))")
    }

    /// With no work, the engine's timer slows from every 5 ms to every 50 ms (an idle daemon used 1.3% of a core
    /// waking up), and work submitted meanwhile is still picked up and finished. A busy machine can only make ticks
    /// fewer, never more, so the bound on them cannot fail through slowness.
    func testAnIdleEngineTicksSlowlyAndStillPicksUpNewWork() throws {
        let h = try EngineHarness(objects: 30)
        let now = Date().timeIntervalSince1970
        try h.store.setState(ofJob: "job", to: .paused, reason: nil, now: now)
        var c = EngineHarness.fastConfiguration()
        c.untilIdle = false
        let engine = Engine(store: h.store, client: h.client, configuration: c, logger: h.quietLogger)
        let stop = EngineHarness.start(engine)
        Thread.sleep(forTimeInterval: 0.5)
        let before = engine.tickCount
        Thread.sleep(forTimeInterval: 1)
        let idleTicks = engine.tickCount - before
        try h.store.setState(ofJob: "job", to: .active, reason: nil, now: Date().timeIntervalSince1970)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, try h.outcomes().values.contains(where: { $0 == nil }) { Thread.sleep(forTimeInterval: 0.05) }
        stop()
        XCTAssertGreaterThan(idleTicks, 0, "the engine's timer did not run")
        XCTAssertLessThanOrEqual(idleTicks, 40, "an idle engine ticked \(idleTicks) times in a second")
        XCTAssertFalse(try h.outcomes().values.contains(where: { $0 == nil }), "the resumed job's tasks were not all finished")
    }
}

/// Notes when each claim ran.
final class ClaimTimingStore: ForwardingTaskQueue, @unchecked Sendable {
    private let lock = NSLock()
    private var times: [Double] = []

    var claimTimes: [Double] { lock.withLock { times } }

    override func claim(owner: String, limit: Int, perBucket: Int, queued: [String: Int], now: Double, leaseSeconds: Double) throws -> Claim {
        lock.withLock { times.append(Date().timeIntervalSince1970) }
        return try inner.claim(owner: owner, limit: limit, perBucket: perBucket, queued: queued, now: now, leaseSeconds: leaseSeconds)
    }
}
