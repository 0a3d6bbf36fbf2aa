import Domain
@testable import Engine
import Foundation
import JobStore
import S3
import XCTest

final class PauseDuringClaimTests: XCTestCase {
    /// A claim under way when a job is paused brings that job's tasks back anyway, queued ahead of another job's in
    /// the same buckets. The engine hands the paused job's tasks back to the store, and the other job's tasks behind
    /// them still get their turn: the run ends idle with every one of them finished.
    func testTasksOfAJobPausedDuringAClaimGoBackAndTheOtherJobStillFinishes() throws {
        let h = try EngineHarness(objects: 40)
        let now = Date().timeIntervalSince1970
        _ = try h.store.submit(JobSpec(name: "other", kmsKeyARN: try KMSKeyARN(h.population.targetKeyARN), bucketKeyEnabled: true),
                               now: now) { sink in
            for e in h.population.entries { _ = try sink.add(e.object, skippedAs: nil) }
        }
        try h.store.setState(ofJob: "job", to: .paused, reason: nil, now: now)
        let store = ClaimRacingStore(h.store, pausedJob: "job")
        let engine = Engine(store: store, client: h.client, configuration: EngineHarness.fastConfiguration(), logger: h.quietLogger)
        // The run takes well under a second when it can end at all.
        let stop = EngineHarness.run(engine, within: 30, stuck: "the run never went idle: tasks were stranded in the engine")
        XCTAssertEqual(store.pausedLeasesHandedBack, 40, "the raced claim took every task of the paused job")
        XCTAssertEqual(stop, .idle)
        let summaries = Dictionary(uniqueKeysWithValues: try h.store.summaries(now: 0).map { ($0.job.spec.name, $0.tasks) })
        let paused = try XCTUnwrap(summaries["job"])
        XCTAssertEqual(paused[.pending], 40, "the paused job's tasks went back untouched: \(paused)")
        let other = try XCTUnwrap(summaries["other"])
        XCTAssertEqual(other.filter { $0.key.isTerminal }.values.reduce(0, +), 40, "every task of the other job finished: \(other)")
    }
}

/// A store whose first claim races a pause: it claims while `pausedJob` is briefly active, pauses it again, and hands
/// back that job's leases first, as a claim that was under way when an operator paused the job would.
final class ClaimRacingStore: ForwardingTaskQueue, @unchecked Sendable {
    private let pausedJob: String
    private let lock = NSLock()
    private var claims = 0
    private var handedBack = 0

    init(_ inner: SQLiteJobStore, pausedJob: String) {
        self.pausedJob = pausedJob
        super.init(inner)
    }

    var pausedLeasesHandedBack: Int { lock.withLock { handedBack } }

    override func claim(owner: String, limit: Int, perBucket: Int, queued: [String: Int], now: Double, leaseSeconds: Double) throws -> Claim {
        let first = lock.withLock {
            claims += 1
            return claims == 1
        }
        guard first else {
            return try inner.claim(owner: owner, limit: limit, perBucket: perBucket, queued: queued, now: now, leaseSeconds: leaseSeconds)
        }
        try inner.setState(ofJob: pausedJob, to: .active, reason: nil, now: now)
        var claim = try inner.claim(owner: owner, limit: limit, perBucket: perBucket, queued: queued, now: now, leaseSeconds: leaseSeconds)
        let paused = try inner.setState(ofJob: pausedJob, to: .paused, reason: nil, now: now)
        let pausedLeases = claim.leases.filter { $0.jobID == paused.id }
        lock.withLock { handedBack = pausedLeases.count }
        claim.leases = pausedLeases + claim.leases.filter { $0.jobID != paused.id }
        return claim
    }
}
