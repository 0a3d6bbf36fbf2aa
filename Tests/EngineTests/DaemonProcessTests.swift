import Domain
import Foundation
import JobStore
import S3Sim
import XCTest

/// `reencryptd run` as a real process against the simulator: crash, signals and operator commands.
final class DaemonProcessTests: XCTestCase {
    static let binary = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent(".build/debug/reencryptd").path

    static func start(_ h: EngineHarness, _ args: [String], env extra: [String: String] = [:]) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Self.binary)
        p.arguments = ["run", "--db", h.storePath] + args
        var env = ProcessInfo.processInfo.environment
        env["REENCRYPTD_CONFIG"] = "/dev/null"
        env["REENCRYPTD_S3_ENDPOINT"] = h.simulator.endpointURL
        env["REENCRYPTD_S3_REGION"] = "us-east-1"  // the simulator's, whatever AWS_REGION or ~/.aws/config say here
        env["AWS_ACCESS_KEY_ID"] = SimCredential.default.accessKeyID
        env["AWS_SECRET_ACCESS_KEY"] = SimCredential.default.secretAccessKey
        env["AWS_EC2_METADATA_DISABLED"] = "true"
        env["REENCRYPTD_ENGINE_BACKOFF_BASE_SECONDS"] = "0.01"
        env["REENCRYPTD_ENGINE_BACKOFF_CAP_SECONDS"] = "0.1"
        env["REENCRYPTD_LOG_LEVEL"] = "warning"
        for (k, v) in extra { env[k] = v }
        p.environment = env
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try p.run()
        return p
    }

    func tasks(_ h: EngineHarness) throws -> [TaskState: Int] {
        try SQLiteJobStore(path: h.storePath).summaries(now: 0).first?.tasks ?? [:]
    }

    /// Polls `condition` every 50 ms for at most `seconds` (a bound on waiting, not a speed requirement).
    func waitUntil(_ seconds: Double = 60, _ what: String, _ condition: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("gave up waiting for: \(what)")
        throw CancellationError()
    }

    func waitForExit(_ p: Process, _ seconds: Double = 60) throws {
        try waitUntil(seconds, "the process to exit") { !p.isRunning }
    }

    func testKillNineMidRunThenRestartCompletesConsistently() throws {
        let h = try EngineHarness(objects: 3000) { $0.broken = 0 }
        var faults = SimFaults()
        faults.latency = .fixed(milliseconds: 5)
        h.simulator.service.faults = faults
        // A global ceiling of 1,500/s keeps the run some 2 s long, so the kill lands mid-run even if this test's
        // polling thread is held up for a second on a busy machine.
        let env = ["REENCRYPTD_ENGINE_LEASE_SECONDS": "5", "REENCRYPTD_ENGINE_CONCURRENCY": "32",
                   "REENCRYPTD_ENGINE_MAX_RPS": "1500"]
        let first = try Self.start(h, [], env: env)
        try waitUntil(60, "progress before the kill") { (try tasks(h)[.succeeded] ?? 0) >= 300 }
        kill(first.processIdentifier, SIGKILL)
        first.waitUntilExit()
        let atKill = try tasks(h)
        XCTAssertLessThan(atKill[.succeeded] ?? 0, 2900, "the kill came mid-run")
        let second = try Self.start(h, ["--until-idle"], env: env)
        try waitForExit(second, 120)
        XCTAssertEqual(second.terminationStatus, 0)
        let after = try tasks(h)
        XCTAssertEqual((after[.pending] ?? 0) + (after[.inFlight] ?? 0), 0, "nothing lost: every task finished")
        let outcomes = try h.outcomes()
        for e in h.population.entries { XCTAssertEqual(outcomes[e.object] ?? nil, e.expectedViaCSV, "\(e.object)") }
        XCTAssertTrue(try SQLiteJobStore(path: h.storePath).countersAgreeWithTasks())
        XCTAssertEqual(try SQLiteJobStore(path: h.storePath).leaseHolders(), [],
                       "the dead worker's lease was cleared when it expired, the second's when it exited")
        // Calls in flight at the kill may be repeated after restart (UpdateObjectEncryption is idempotent), no more.
        XCTAssertLessThanOrEqual(h.simulator.state.snapshotCounters.duplicateUpdates, 32 + 1000)
    }

    func testSIGTERMFinishesInFlightCallsReleasesTheRestAndExitsZero() throws {
        let h = try EngineHarness(objects: 4000) { $0.broken = 0 }
        var faults = SimFaults()
        faults.latency = .fixed(milliseconds: 50)
        h.simulator.service.faults = faults
        let p = try Self.start(h, [], env: ["REENCRYPTD_ENGINE_CONCURRENCY": "64", "REENCRYPTD_ENGINE_SHUTDOWN_GRACE_SECONDS": "5"])
        try waitUntil(60, "calls in flight") { (try tasks(h)[.succeeded] ?? 0) >= 200 }
        kill(p.processIdentifier, SIGTERM)
        try waitForExit(p, 30)
        XCTAssertEqual(p.terminationReason, .exit)
        XCTAssertEqual(p.terminationStatus, 0)
        let after = try tasks(h)
        XCTAssertEqual(after[.inFlight] ?? 0, 0, "no task left in_flight")
        XCTAssertGreaterThan(after[.pending] ?? 0, 0, "it stopped before the end")
        XCTAssertTrue(try SQLiteJobStore(path: h.storePath).countersAgreeWithTasks())
        XCTAssertEqual(try SQLiteJobStore(path: h.storePath).leaseHolders(), [], "a clean exit ends its lease")
        // What the simulator updated is what the store recorded as succeeded.
        XCTAssertEqual(h.simulator.state.snapshotCounters.updateSuccesses, after[.succeeded] ?? -1)
    }

    func testPauseResumeAndCancelReachARunningDaemon() throws {
        let h = try EngineHarness(objects: 3000) { $0.broken = 0 }
        var faults = SimFaults()
        faults.latency = .fixed(milliseconds: 20)
        h.simulator.service.faults = faults
        let p = try Self.start(h, [], env: ["REENCRYPTD_ENGINE_CONCURRENCY": "16"])
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        let store = try SQLiteJobStore(path: h.storePath)
        try waitUntil(60, "progress") { (try tasks(h)[.succeeded] ?? 0) >= 100 }
        try store.setState(ofJob: "job", to: .paused, reason: nil, now: Date().timeIntervalSince1970)
        try waitUntil(10, "the daemon to stop calling for the paused job") { (try tasks(h)[.inFlight] ?? 0) == 0 }
        let paused = try tasks(h)[.succeeded] ?? 0
        Thread.sleep(forTimeInterval: 1.5)
        XCTAssertEqual(try tasks(h)[.succeeded] ?? 0, paused, "no calls while paused")
        XCTAssertEqual(h.simulator.state.snapshotCounters.updateSuccesses, paused, "nothing in flight was lost")
        try store.setState(ofJob: "job", to: .active, reason: nil, now: Date().timeIntervalSince1970)
        try waitUntil(10, "progress after resume") { (try tasks(h)[.succeeded] ?? 0) > paused + 50 }
        try store.setState(ofJob: "job", to: .cancelled, reason: nil, now: Date().timeIntervalSince1970)
        try waitUntil(10, "the daemon to let go of the cancelled job") { (try tasks(h)[.inFlight] ?? 0) == 0 }
        kill(p.processIdentifier, SIGTERM)
        try waitForExit(p, 30)
        XCTAssertEqual(p.terminationStatus, 0)
        let after = try tasks(h)
        XCTAssertGreaterThan(after[.pending] ?? 0, 0)
        XCTAssertEqual(try store.job(named: "job")?.state, .cancelled)
        XCTAssertEqual(h.simulator.state.snapshotCounters.updateSuccesses, after[.succeeded] ?? -1)
    }

    func testRunOnAMissingStoreCreatesItAndSaysSo() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("new.sqlite3").path
        /// `run --until-idle` on `path`: its exit status and what it logged.
        func runUntilIdle() throws -> (status: Int32, log: String) {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: Self.binary)
            p.arguments = ["run", "--db", path, "--until-idle"]
            // No job, so no call is made; the endpoint is a closed loopback port all the same.
            p.environment = ["REENCRYPTD_CONFIG": "/dev/null", "REENCRYPTD_S3_ENDPOINT": "http://127.0.0.1:9",
                             "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
                             "AWS_EC2_METADATA_DISABLED": "true"]
            let stderr = Pipe()
            p.standardError = stderr
            try p.run()
            let log = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            return (p.terminationStatus, log)
        }
        let first = try runUntilIdle()
        XCTAssertEqual(first.status, 0, first.log)
        XCTAssertTrue(FileManager.default.fileExists(atPath: path))
        XCTAssertTrue(first.log.contains("created an empty job store at \(path)"), first.log)
        // A second start finds it and says nothing of the kind.
        let second = try runUntilIdle()
        XCTAssertEqual(second.status, 0, second.log)
        XCTAssertFalse(second.log.contains("created an empty job store"), second.log)
    }
}
