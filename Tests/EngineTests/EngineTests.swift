import Domain
@testable import Engine
import Foundation
@testable import JobStore
import S3
import S3Sim
import XCTest

final class EngineTests: XCTestCase {
    /// A mixed population covering every outcome class, under throttling, 500s, resets and errors inside 200s:
    /// every task ends with its class, and the simulator's state agrees with the store.
    func testEveryTaskEndsWithTheRightClassUnderFaultsAndTheSimulatorAgrees() throws {
        let h = try EngineHarness(objects: 1500) { spec in
            spec.unencrypted = 0.03; spec.sseC = 0.02; spec.dsseKMS = 0.02; spec.governance = 0.02; spec.compliance = 0.02
            spec.legalHold = 0.02; spec.denied = 0.03; spec.missing = 0.03; spec.badVersion = 0.02; spec.broken = 0.01
            spec.foreignOwner = 0.02
        }
        var faults = SimFaults()
        faults.throttleRPS = 800
        faults.errorRate = 0.02
        faults.resetRate = 0.01
        faults.errorIn200Rate = 0.01
        h.simulator.service.faults = faults
        XCTAssertEqual(h.run(), .idle)
        let outcomes = try h.outcomes()
        XCTAssertEqual(outcomes.count, 1500)
        var seen = Set<OutcomeClass>()
        for e in h.population.entries {
            let got = outcomes[e.object] ?? nil
            XCTAssertEqual(got, e.expectedViaCSV, "\(e.object)")
            if let got { seen.insert(got) }
            // The simulator's view: succeeded objects were updated (at least once; a retry after a lost answer may
            // update twice, which is harmless); nothing else was.
            if let v = h.simulator.state.version(bucket: e.object.bucket, key: e.object.key, versionID: e.object.versionId) {
                if got == .succeeded {
                    XCTAssertEqual(v.encryption, .sseKMS(keyARN: h.population.targetKeyARN, bucketKey: true))
                    XCTAssertGreaterThanOrEqual(v.updates, 1)
                } else {
                    XCTAssertEqual(v.updates, 0, "\(e.object) ended \(String(describing: got)) but was updated")
                }
            }
        }
        XCTAssertEqual(seen, Set([.succeeded] + OutcomeClass.failureClasses), "every call-time class occurs")
        let counters = h.simulator.state.snapshotCounters
        XCTAssertGreaterThan(counters.throttled + counters.injectedErrors + counters.injectedResets, 0, "faults were exercised")
        XCTAssertTrue(try h.store.countersAgreeWithTasks())
        XCTAssertEqual(try h.store.job(named: "job")?.state, .complete)
        // retries-exhausted keeps the last error.
        try h.store.forEachTask(job: "job", failedOnly: true) { t in
            if t.outcome == .retriesExhausted {
                XCTAssertEqual(t.errorCode, "InternalError")
                XCTAssertGreaterThanOrEqual(t.attempts, 4, "4 errors (throttles on the way cost a quarter each)")
            }
        }
        // Terminal classes are never retried: each such object saw exactly one call that reached it (injected faults
        // answer before the object is looked at, and are retried).
        for e in h.population.entries where [.objectLock, .accessDenied, .unsupportedEncryption, .kmsKeyDenied].contains(e.expectedViaCSV) {
            XCTAssertEqual(h.simulator.state.version(bucket: e.object.bucket, key: e.object.key, versionID: e.object.versionId)?.calls, 1,
                           "\(e.object)")
        }
    }

    /// A send the client refuses at once (no credentials) is answered on the thread that sent it: sometimes the
    /// engine's queue, sometimes a transport driver completing a batch of answers there. Either way the answer is
    /// completed and retried, and every task ends with its class.
    func testAnswersGivenAtOnceAreCompletedWhicheverThreadGivesThem() throws {
        let credentials = FlakyCredentials(failEvery: 3, after: 300)
        let h = try EngineHarness(objects: 600, credentials: credentials)
        var configuration = EngineHarness.fastConfiguration()
        configuration.retry = RetryPolicy(maxAttempts: 40, base: 0.001, cap: 0.005)
        let engine = Engine(store: h.store, client: h.client, configuration: configuration, logger: h.quietLogger)
        // A lost answer leaves its task in flight for good and the run never ends.
        XCTAssertEqual(EngineHarness.run(engine, within: 120, stuck: "the run did not finish: an answer was lost"), .idle)
        XCTAssertGreaterThan(credentials.refusedOnDriver, 0, "refusals on a driver thread")
        XCTAssertGreaterThan(credentials.refusedElsewhere, 0, "refusals on the engine's queue")
        let outcomes = try h.outcomes()
        for e in h.population.entries { XCTAssertEqual(outcomes[e.object] ?? nil, e.expectedViaCSV, "\(e.object)") }
        XCTAssertTrue(try h.store.countersAgreeWithTasks())
    }

    func testRetryPutsChosenFailuresBackAndTheyCanSucceed() throws {
        let h = try EngineHarness(objects: 300) { $0.denied = 0.2 }
        XCTAssertEqual(h.run(), .idle)
        let denied = h.population.entries.filter { $0.expectedViaCSV == .accessDenied }.map(\.object)
        XCTAssertFalse(denied.isEmpty)
        // The operator fixes the policy, then retries only access-denied.
        h.simulator.state.withLock { buckets, _ in
            for o in denied { buckets[o.bucket]!.objects[o.key]![0].denyUpdate = false }
        }
        XCTAssertEqual(try h.store.retry(job: "job", outcomes: [.accessDenied], now: Date().timeIntervalSince1970), denied.count)
        XCTAssertEqual(try h.store.job(named: "job")?.state, .active)
        XCTAssertEqual(h.run(), .idle)
        let outcomes = try h.outcomes()
        for o in denied { XCTAssertEqual(outcomes[o] ?? nil, .succeeded) }
        XCTAssertTrue(try h.store.countersAgreeWithTasks())
    }

    func testFailureThresholdPausesTheJobWithAReason() throws {
        let h = try EngineHarness(objects: 400) { $0.denied = 0.9 }
        var faults = SimFaults()
        faults.latency = .fixed(milliseconds: 5)
        h.simulator.service.faults = faults
        var c = EngineHarness.fastConfiguration()
        c.failureThresholdMinTasks = 50
        c.failureThresholdPercent = 50
        c.concurrency = 8
        XCTAssertEqual(h.run(c), .idle)
        let job = try XCTUnwrap(h.store.job(named: "job"))
        XCTAssertEqual(job.state, .failed)
        let reason = try XCTUnwrap(job.stateReason)
        XCTAssertTrue(reason.contains("failure threshold crossed"), reason)
        // It names what to fix (the commonest failure, with an example of its error) and how to go on.
        XCTAssertTrue(reason.contains("most of them access-denied ("), reason)
        XCTAssertTrue(reason.contains("e.g. HTTP 403 AccessDenied: "), reason)
        XCTAssertTrue(reason.contains("`reencryptd retry --job job`"), reason)
        let summary = try XCTUnwrap(h.store.summaries(now: 0).first)
        XCTAssertGreaterThan(summary.tasks[.pending] ?? 0, 0, "the job stopped before burning through every object")
        // `retry` puts the failures back and the job goes on.
        XCTAssertGreaterThan(try h.store.retry(job: "job", outcomes: [], now: Date().timeIntervalSince1970), 0)
        XCTAssertEqual(try h.store.job(named: "job")?.state, .active)
    }

    /// S3 resets every connection for a while: the engine holds its calls instead of letting every task use up its
    /// retry budget, probes, and once S3 answers again every task ends with the class its object calls for.
    func testAnOutageHoldsCallsAndCostsNoRetryBudget() throws {
        let h = try EngineHarness(objects: 600) { $0.broken = 0 }
        var outage = SimFaults()
        outage.resetRate = 1
        h.simulator.service.faults = outage
        let engine = Engine(store: h.store, client: h.client, configuration: EngineHarness.fastConfiguration(),
                            logger: h.quietLogger)
        let stop = LockedValue<EngineStop?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            stop.set(EngineHarness.run(engine, within: 60, stuck: "the run never finished after the outage"))
            done.signal()
        }
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !engine.snapshot.s3Unreachable { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertTrue(engine.snapshot.s3Unreachable, "the engine saw the outage")
        // With 4 attempts and backoff of at most 50 ms, a second of outage would otherwise exhaust every task.
        Thread.sleep(forTimeInterval: 1.5)
        h.simulator.service.faults = SimFaults()
        done.wait()
        XCTAssertEqual(stop.get(), .idle)
        XCTAssertFalse(engine.snapshot.s3Unreachable)
        let outcomes = try h.outcomes()
        for e in h.population.entries { XCTAssertEqual(outcomes[e.object] ?? nil, e.expectedViaCSV, "\(e.object)") }
        XCTAssertTrue(try h.store.countersAgreeWithTasks())
        // Only the answers before the breaker opened cost an attempt, and the failed probes (one a cool-down: 1, 2, 4 s,
        // a few in the 1.5 s or so it lasted), not the many answers of calls in flight when it opened.
        let sum = try Database(path: h.storePath).prepare("SELECT sum(errors) FROM tasks")
        XCTAssertTrue(try sum.step())
        XCTAssertGreaterThanOrEqual(sum.int(0), EndpointBreaker.tripAfter - 1)
        XCTAssertLessThanOrEqual(sum.int(0), EndpointBreaker.tripAfter - 1 + 3)
        // And S3 was not hammered meanwhile: the first round of calls, the ones sent in the slots the answers before the
        // opening freed, then one probe per cool-down (1, 2, 4 s: a few in the 1.5 s or so it lasted). Sending on would
        // have made thousands.
        let injected = h.simulator.state.snapshotCounters.injectedResets
        XCTAssertLessThanOrEqual(injected, EngineHarness.fastConfiguration().concurrency + EndpointBreaker.tripAfter + 5)
    }

    /// Objects that always answer 500 (a broken partition) are S3 answering, not an outage: with dozens of them left
    /// at the tail, where every answer is a 500, the run still ends, each of them `retries-exhausted`.
    func testATailOfObjectsThatAlwaysFailEndsRetriesExhaustedWithoutHoldingTheRun() throws {
        let h = try EngineHarness(objects: 400) { $0.broken = 0.25 }
        XCTAssertGreaterThan(h.population.entries.filter { $0.expectedViaCSV == .retriesExhausted }.count,
                             2 * EndpointBreaker.tripAfter)
        let engine = Engine(store: h.store, client: h.client, configuration: EngineHarness.fastConfiguration(),
                            logger: h.quietLogger)
        XCTAssertEqual(EngineHarness.run(engine, within: 60, stuck: "the run was held by the broken objects"), .idle)
        let outcomes = try h.outcomes()
        for e in h.population.entries { XCTAssertEqual(outcomes[e.object] ?? nil, e.expectedViaCSV, "\(e.object)") }
    }

    func testBackoffIsStoredAsTheNextAttemptTime() throws {
        let h = try EngineHarness(objects: 20) { $0.broken = 1 }  // every call answers 500
        var c = EngineHarness.fastConfiguration()
        // Full jitter draws the first delay from [0, base]: with base 30 s, one of the 20 tasks came due again within
        // the test's fraction of a second in a few percent of runs (CI saw it); with 10^6 s, in about one run in 10^5.
        c.retry = RetryPolicy(maxAttempts: 3, base: 1_000_000, cap: 1_000_000)
        c.untilIdle = false
        let engine = Engine(store: h.store, client: h.client, configuration: c, logger: .init(label: "t"))
        let stop = EngineHarness.start(engine)
        // Wait (bounded) until every task has failed once and gone back to pending with a future next attempt.
        let deadline = Date().addingTimeInterval(20)
        var pending = 0
        while Date() < deadline {
            pending = try h.store.summaries(now: 0).first?.tasks[.pending] ?? 0
            if pending == 20 && h.simulator.state.snapshotCounters.updateCalls >= 20 { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        stop()
        XCTAssertEqual(pending, 20)
        // A new engine finds nothing due: the backoff survived in the store.
        XCTAssertEqual(try h.store.claim(owner: "other", limit: 100, now: Date().timeIntervalSince1970, leaseSeconds: 10).count, 0)
        XCTAssertEqual(try h.store.claim(owner: "other", limit: 100, now: Date().timeIntervalSince1970 + 1_000_001, leaseSeconds: 10).count, 20)
    }
}

final class DaemonModeTests: XCTestCase {
    /// A daemon reports its rate while it runs and clears it when it stops: `status` shows no rate or ETA for a job
    /// that nobody is working on.
    func testAStoppedDaemonLeavesNoRateOrETAInStatus() throws {
        let h = try EngineHarness(objects: 2_000) { $0.broken = 0 }
        var c = EngineHarness.fastConfiguration()
        c.untilIdle = false
        c.maxRPS = 200  // some 10 s of work: the job is still running when the daemon stops
        let engine = Engine(store: h.store, client: h.client, configuration: c, logger: h.quietLogger)
        let stop = EngineHarness.start(engine)
        // While it runs, status shows its rate and an ETA.
        let deadline = Date().addingTimeInterval(30)
        var running: JobSummary?
        while Date() < deadline {
            running = try h.store.summaries(now: Date().timeIntervalSince1970).first
            if let r = running, r.ratePerSecond > 0, r.etaSeconds != nil { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTAssertGreaterThan(running?.ratePerSecond ?? 0, 0, "a running daemon reports its rate")
        stop()
        let stopped = try XCTUnwrap(h.store.summaries(now: Date().timeIntervalSince1970).first)
        XCTAssertGreaterThan(stopped.remaining, 0, "the job must still have work left for the ETA to mean anything")
        XCTAssertEqual(stopped.ratePerSecond, 0)
        XCTAssertNil(stopped.etaSeconds)
    }

    /// Without --until-idle the daemon keeps running, and a job whose tasks have all finished becomes complete.
    func testARunningDaemonMarksFinishedJobsComplete() throws {
        let h = try EngineHarness(objects: 200) { $0.broken = 0 }
        var c = EngineHarness.fastConfiguration()
        c.untilIdle = false
        let engine = Engine(store: h.store, client: h.client, configuration: c, logger: .init(label: "t"))
        let stop = EngineHarness.start(engine)
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, try h.store.job(named: "job")?.state != .complete { Thread.sleep(forTimeInterval: 0.05) }
        stop()
        XCTAssertEqual(try h.store.job(named: "job")?.state, .complete)
        XCTAssertEqual(try h.store.summaries(now: 0).first?.remaining, 0)
    }
}

/// Refuses every `failEvery`-th request for credentials after the first `after`, to the end of the run (so some
/// refusals come with the last answers, where one left behind would end no run), noting on which kind of thread.
private final class FlakyCredentials: CredentialProvider, @unchecked Sendable {
    private let lock = NSLock()
    private let failEvery: Int
    private let after: Int
    private var calls = 0
    private var onDriver = 0
    private var elsewhere = 0

    init(failEvery: Int, after: Int) {
        self.failEvery = failEvery
        self.after = after
    }

    var refusedOnDriver: Int { lock.withLock { onDriver } }
    var refusedElsewhere: Int { lock.withLock { elsewhere } }

    func credentials() throws -> AWSCredentials {
        let refuse = lock.withLock { () -> Bool in
            calls += 1
            guard calls > after, calls % failEvery == 0 else { return false }
            if CurlTransport.onDriverThread { onDriver += 1 } else { elsewhere += 1 }
            return true
        }
        if refuse { throw S3ClientError.credentials("no credentials (test)") }
        return EngineHarness.credentials
    }

    func invalidate() {}
}
