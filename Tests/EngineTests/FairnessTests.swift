import Domain
@testable import Engine
import Foundation
import JobStore
import S3Sim
import XCTest

/// Fairness across buckets: S3 throttles one prefix partition while others run free, and a bucket held back by its
/// rate limit must not hold the rest of the job up.
final class FairnessTests: XCTestCase {
    /// The manifest lists the throttled bucket's objects first; the simulator lets it answer 20 requests/s. The other
    /// bucket still finishes all of its tasks while the throttled one has most of its own left.
    func testAThrottledBucketDoesNotStarveTheOthers() throws {
        let h = try EngineHarness(objects: 3000, spec: { $0 = .plain(objects: 3000, buckets: 2, seed: 7) },
                                  order: { $0.sorted { $0.object.bucket < $1.object.bucket } })
        let (slow, fast) = ("sim-bucket-0", "sim-bucket-1")
        XCTAssertEqual(h.population.entries.first?.object.bucket, slow)
        var faults = SimFaults()
        faults.bucketThrottleRPS = [slow: 20]
        h.simulator.service.faults = faults
        var c = EngineHarness.fastConfiguration()
        c.untilIdle = false
        c.retry = RetryPolicy(maxAttempts: 1000, base: 0.01, cap: 0.2)
        let engine = Engine(store: h.store, client: h.client, configuration: c, logger: .init(label: "t"))
        let stop = EngineHarness.start(engine)
        func finished(_ bucket: String) throws -> Int {
            try h.outcomes().filter { $0.key.bucket == bucket && $0.value != nil }.count
        }
        let total = h.population.entries.filter { $0.object.bucket == fast }.count
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try finished(fast) < total {
            Thread.sleep(forTimeInterval: 0.1)
        }
        let slowFinished = try finished(slow)
        stop()
        XCTAssertEqual(try finished(fast), total, "the unthrottled bucket did not finish")
        let slowTotal = h.population.entries.count - total
        XCTAssertLessThan(slowFinished, slowTotal / 2, "the throttled bucket was not held back, so nothing was tested")
        XCTAssertGreaterThan(h.simulator.state.snapshotCounters.throttled, 0)
    }

    /// Claims spread over buckets and leave out the ones whose queue is full, whatever order the rows were added in.
    func testClaimsSpreadAcrossBucketsAndSkipFullOnes() throws {
        let h = try EngineHarness(objects: 600, spec: { $0 = .plain(objects: 600, buckets: 3, seed: 3) },
                                  order: { $0.sorted { $0.object.bucket < $1.object.bucket } })
        let now = Date().timeIntervalSince1970
        let first = try h.store.claim(owner: "w", limit: 300, perBucket: 1000, queued: [:], now: now, leaseSeconds: 60)
        XCTAssertEqual(Dictionary(grouping: first.leases, by: \.object.bucket).mapValues(\.count),
                       ["sim-bucket-0": 100, "sim-bucket-1": 100, "sim-bucket-2": 100])
        XCTAssertEqual(first.bucketsWithPending, ["sim-bucket-0", "sim-bucket-1", "sim-bucket-2"])
        // The caller holds 20 of bucket 1 (its limit) and 5 of bucket 2: those have no or less room.
        let second = try h.store.claim(owner: "w", limit: 90, perBucket: 20, queued: ["sim-bucket-1": 20, "sim-bucket-2": 5],
                                       now: now, leaseSeconds: 60)
        XCTAssertEqual(Dictionary(grouping: second.leases, by: \.object.bucket).mapValues(\.count),
                       ["sim-bucket-0": 20, "sim-bucket-2": 15])
        XCTAssertEqual(Set((first.leases + second.leases).map(\.taskID)).count, 335, "a task was claimed twice")
    }

    /// With more buckets than a claim can serve in runs, it takes runs from some of them (each run dirties a leaf or
    /// two, where one task from each bucket dirtied two leaves per task), and the next claim goes on from the bucket
    /// after the last one served: over successive claims every bucket gets its turn, and the same share.
    func testWithManyBucketsClaimsTakeRunsAndTakeTurns() throws {
        let run = SQLiteJobStore.minimumClaimRun
        let h = try EngineHarness(objects: 20 * 2 * run, spec: { $0 = .plain(objects: 20 * 2 * run, buckets: 20, seed: 5) },
                                  order: { $0.sorted { $0.object.bucket < $1.object.bucket } })
        let now = Date().timeIntervalSince1970
        let limit = 4 * run  // an even share would be a fifth of a run from each of the 20 buckets
        var claims: [[Lease]] = []
        for _ in 0..<5 {
            claims.append(try h.store.claim(owner: "w", limit: limit, perBucket: 10 * run, queued: [:], now: now,
                                            leaseSeconds: 60).leases)
        }
        for leases in claims {
            XCTAssertEqual(Dictionary(grouping: leases, by: \.object.bucket).mapValues(\.count).values.sorted(),
                           [run, run, run, run], "each claim takes four runs")
        }
        let all = claims.flatMap { $0 }
        XCTAssertEqual(Set(all.map(\.taskID)).count, 20 * run, "a task was claimed twice")
        XCTAssertEqual(Set(all.map(\.object.bucket)).count, 20, "five claims took their turn at every bucket")
    }

    /// A claim looks at only as many buckets as it needs and says when it left some unseen: listing every bucket of
    /// the job cost an index seek per bucket per claim, most of the store's time at 100,000 buckets. Successive
    /// claims still reach every task, once.
    func testAClaimLooksAtOnlyTheBucketsItNeeds() throws {
        let h = try EngineHarness(objects: 400, spec: { $0 = .plain(objects: 400, buckets: 200, seed: 9) })
        let now = Date().timeIntervalSince1970
        var claims: [Claim] = []
        repeat {
            claims.append(try h.store.claim(owner: "w", limit: 128, perBucket: 1000, queued: [:], now: now, leaseSeconds: 60))
        } while !claims.last!.leases.isEmpty && claims.count < 50
        let first = claims[0]
        XCTAssertEqual(first.leases.count, 128)
        XCTAssertEqual(first.bucketsWithPending.count, Set(first.leases.map(\.object.bucket)).count,
                       "it looked at buckets it took nothing from")
        XCTAssertLessThan(first.bucketsWithPending.count, 200)
        XCTAssertFalse(first.sawEveryBucket)
        let all = claims.flatMap(\.leases)
        XCTAssertEqual(all.count, 400)
        XCTAssertEqual(Set(all.map(\.taskID)).count, 400, "a task was claimed twice")
        XCTAssertTrue(claims.last!.sawEveryBucket, "the empty claim at the end had looked everywhere")
    }

    /// The lanes of buckets that went idle are dropped, so a job over many buckets does not hold one per bucket it
    /// has touched for the rest of the run.
    func testLanesOfIdleBucketsAreDropped() throws {
        let h = try EngineHarness(objects: 600, spec: { $0 = .plain(objects: 600, buckets: 300, seed: 4) })
        var c = EngineHarness.fastConfiguration()
        c.untilIdle = false
        let engine = Engine(store: h.store, client: h.client, configuration: c, logger: h.quietLogger)
        let stop = EngineHarness.start(engine)
        var most = 0
        var deadline = Date().addingTimeInterval(60)
        while Date() < deadline, try h.outcomes().values.contains(where: { $0 == nil }) {
            most = max(most, engine.laneCount)
            Thread.sleep(forTimeInterval: 0.05)
        }
        most = max(most, engine.laneCount)
        deadline = Date().addingTimeInterval(20)
        while Date() < deadline, engine.laneCount > 0 { Thread.sleep(forTimeInterval: 0.1) }
        let left = engine.laneCount
        stop()
        XCTAssertFalse(try h.outcomes().values.contains(where: { $0 == nil }), "the run did not finish")
        XCTAssertGreaterThan(most, 0, "no lane was seen, so nothing was tested")
        XCTAssertEqual(left, 0, "lanes of idle buckets were kept")
    }
}
