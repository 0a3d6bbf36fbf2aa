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
final class ClaimRacingStore: TaskQueue, @unchecked Sendable {
    private let inner: SQLiteJobStore
    private let pausedJob: String
    private let lock = NSLock()
    private var claims = 0
    private var handedBack = 0

    init(_ inner: SQLiteJobStore, pausedJob: String) {
        self.inner = inner
        self.pausedJob = pausedJob
    }

    var pausedLeasesHandedBack: Int { lock.withLock { handedBack } }

    func claim(owner: String, limit: Int, perBucket: Int, queued: [String: Int], now: Double, leaseSeconds: Double) throws -> Claim {
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

    func submit(_ spec: JobSpec, now: Double, load: (any TaskSink) throws -> Void) throws -> SubmitResult {
        try inner.submit(spec, now: now, load: load)
    }
    func job(named name: String) throws -> Job? { try inner.job(named: name) }
    func jobs() throws -> [Job] { try inner.jobs() }
    func setState(ofJob name: String, to state: JobState, reason: String?, now: Double) throws -> Job {
        try inner.setState(ofJob: name, to: state, reason: reason, now: now)
    }
    func summaries(now: Double) throws -> [JobSummary] { try inner.summaries(now: now) }
    func record(_ results: [TaskResult], owner: String, now: Double) throws -> Int {
        try inner.record(results, owner: owner, now: now)
    }
    func release(taskIDs: [Int64], owner: String) throws { try inner.release(taskIDs: taskIDs, owner: owner) }
    func renewLeases(owner: String, until: Double) throws { try inner.renewLeases(owner: owner, until: until) }
    func expireLeases(now: Double) throws -> Int { try inner.expireLeases(now: now) }
    func recoverLeases(now: Double) throws -> Int { try inner.recoverLeases(now: now) }
    func endLease(owner: String) throws { try inner.endLease(owner: owner) }
    func retry(job: String, outcomes: [OutcomeClass], now: Double) throws -> Int {
        try inner.retry(job: job, outcomes: outcomes, now: now)
    }
    func completeFinishedJobs(now: Double) throws -> [Job] { try inner.completeFinishedJobs(now: now) }
    func applyFailureThreshold(percent: Double, minTasks: Int, now: Double) throws -> [Job] {
        try inner.applyFailureThreshold(percent: percent, minTasks: minTasks, now: now)
    }
    func reportRates(_ perSecond: [Int64: Double], now: Double) throws { try inner.reportRates(perSecond, now: now) }
    func runnableCount() throws -> Int { try inner.runnableCount() }
    func forEachTask(job: String, failedOnly: Bool, _ body: (TaskRecord) throws -> Void) throws {
        try inner.forEachTask(job: job, failedOnly: failedOnly, body)
    }
}
