import Domain
@testable import Engine
import Foundation
import JobStore
import Logging
import S3
import S3Sim
import XCTest

/// A simulator with a generated population, a store holding it as one job, and a client, for engine tests.
final class EngineHarness: @unchecked Sendable {
    let simulator: S3Simulator
    let client: S3Client
    let store: SQLiteJobStore
    let storePath: String
    var population: Population
    let dir: URL

    /// - Parameter order: the order the manifest lists the objects in (default: as generated).
    init(objects: Int, spec adjust: (inout PopulationSpec) -> Void = { _ in }, viaInventoryEveryOther: Bool = false,
         order: (([PopulationEntry]) -> [PopulationEntry])? = nil, credentials: CredentialProvider? = nil) throws {
        simulator = S3Simulator()
        try simulator.start()
        var spec = PopulationSpec()
        spec.objects = objects
        adjust(&spec)
        population = Population(spec: spec)
        population.generate(into: simulator.state)
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("engine-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        storePath = dir.appendingPathComponent("store.sqlite3").path
        store = try SQLiteJobStore(path: storePath)
        var transport = TransportConfiguration()
        transport.requestTimeout = 2
        transport.connectTimeout = 1
        client = try S3Client(configuration: S3ClientConfiguration(endpoint: try S3Endpoint(url: simulator.endpointURL), transport: transport),
                              credentials: credentials ?? StaticCredentialProvider(Self.credentials))
        let arn = try KMSKeyARN(population.targetKeyARN)
        _ = try store.submit(JobSpec(name: "job", kmsKeyARN: arn, bucketKeyEnabled: true), now: Date().timeIntervalSince1970) { sink in
            for e in order?(population.entries) ?? population.entries { _ = try sink.add(e.object, skippedAs: nil) }
        }
    }

    static let credentials = AWSCredentials(accessKeyID: SimCredential.default.accessKeyID,
                                            secretAccessKey: SimCredential.default.secretAccessKey)

    static func fastConfiguration() -> EngineConfiguration {
        var c = EngineConfiguration()
        c.concurrency = 64
        c.retry = RetryPolicy(maxAttempts: 4, base: 0.01, cap: 0.05)
        c.untilIdle = true
        c.leaseSeconds = 30
        c.failureThresholdMinTasks = 1_000_000
        c.shutdownGrace = 5
        return c
    }

    var quietLogger: Logger {
        var logger = Logger(label: "engine-test")
        logger.logLevel = .critical
        return logger
    }

    func run(_ configuration: EngineConfiguration = EngineHarness.fastConfiguration()) -> EngineStop {
        Engine(store: store, client: client, configuration: configuration, logger: quietLogger).run()
    }

    /// Starts `engine` on its own thread, for tests that act while it runs; the function returned stops it and waits
    /// for the run to end.
    static func start(_ engine: Engine) -> () -> Void {
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread { _ = engine.run(); done.signal() }
        return {
            engine.requestStop()
            done.wait()
        }
    }

    /// Runs `engine` on its own thread. A run still going after `seconds` (a bound on waiting, not a speed requirement)
    /// is stopped and reported as `stuck`: a test fails rather than hangs. Returns why the run stopped.
    static func run(_ engine: Engine, within seconds: Double, stuck: String,
                    file: StaticString = #filePath, line: UInt = #line) -> EngineStop? {
        let stopped = DispatchSemaphore(value: 0)
        let result = LockedValue<EngineStop?>(nil)
        Thread.detachNewThread {
            result.set(engine.run())
            stopped.signal()
        }
        if stopped.wait(timeout: .now() + seconds) == .timedOut {
            engine.requestStop()
            stopped.wait()
            XCTFail(stuck, file: file, line: line)
        }
        return result.get()
    }

    /// Every task's outcome (nil while not terminal).
    func outcomes() throws -> [ObjectRef: OutcomeClass?] {
        var map: [ObjectRef: OutcomeClass?] = [:]
        try store.forEachTask(job: "job", failedOnly: false) { map[$0.object] = $0.state.isTerminal ? $0.outcome : nil }
        return map
    }

    deinit {
        client.shutdown()
        simulator.stop()
        try? FileManager.default.removeItem(at: dir)
    }
}

/// A value shared between a test and the thread running an engine.
final class LockedValue<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func set(_ new: Value) { lock.withLock { value = new } }
    func get() -> Value { lock.withLock { value } }
}

/// A task queue that hands every call to a real store; tests subclass it to watch or bend one operation.
class ForwardingTaskQueue: TaskQueue, @unchecked Sendable {
    let inner: SQLiteJobStore

    init(_ inner: SQLiteJobStore) { self.inner = inner }

    func claim(owner: String, limit: Int, perBucket: Int, queued: [String: Int], now: Double, leaseSeconds: Double) throws -> Claim {
        try inner.claim(owner: owner, limit: limit, perBucket: perBucket, queued: queued, now: now, leaseSeconds: leaseSeconds)
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
