import CSQLite
import Domain
import Foundation
@testable import JobStore
import XCTest

func tempStorePath() -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("reencryptd-\(UUID().uuidString).sqlite3").path
}

let arn = try! KMSKeyARN("arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab")

struct Boom: Error {}

final class SQLiteJobStoreTests: XCTestCase {
    var path = ""
    var store: SQLiteJobStore!

    override func setUpWithError() throws {
        path = tempStorePath()
        store = try SQLiteJobStore(path: path)
    }

    override func tearDown() {
        store = nil
        for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
    }

    /// Every row of jobs and tasks, for before/after comparisons.
    func snapshot() throws -> [String] {
        var rows: [String] = []
        for job in try store.jobs() { rows.append("job \(job.spec.name) \(job.state) \(job.updatedAt)") }
        for s in try store.summaries(now: 0) { rows.append("\(s.job.spec.name) \(s.total) \(s.tasks) \(s.outcomes)") }
        return rows
    }

    func testSubmitAddsTasksAndCountsDuplicates() throws {
        let result = try store.submit(JobSpec(name: "j", kmsKeyARN: arn), now: 1) { sink in
            XCTAssertTrue(try sink.add(ObjectRef(bucket: "b-1", key: "k"), skippedAs: nil))
            XCTAssertTrue(try sink.add(ObjectRef(bucket: "b-1", key: "k", versionId: "v1"), skippedAs: nil))
            XCTAssertFalse(try sink.add(ObjectRef(bucket: "b-1", key: "k"), skippedAs: nil))
            XCTAssertTrue(try sink.add(ObjectRef(bucket: "b-2", key: "k"), skippedAs: .skippedSSEC))
        }
        XCTAssertTrue(result.createdJob)
        XCTAssertEqual(result.added, 3)
        XCTAssertEqual(result.duplicates, 1)
        XCTAssertEqual(result.skipped, 1)
        // A second submit to the same job: tuples already present are duplicates too.
        let again = try store.submit(JobSpec(name: "j", kmsKeyARN: arn), now: 2) { sink in
            _ = try sink.add(ObjectRef(bucket: "b-1", key: "k"), skippedAs: nil)
            _ = try sink.add(ObjectRef(bucket: "b-1", key: "new"), skippedAs: nil)
        }
        XCTAssertFalse(again.createdJob)
        XCTAssertEqual(again.added, 1)
        XCTAssertEqual(again.duplicates, 1)
        let summary = try XCTUnwrap(store.summaries(now: 3).first)
        XCTAssertEqual(summary.total, 4)
        XCTAssertEqual(summary.tasks[.pending], 3)
        XCTAssertEqual(summary.tasks[.skipped], 1)
        XCTAssertEqual(summary.outcomes, [.skippedSSEC: 1])
        XCTAssertTrue(try store.countersAgreeWithTasks())
    }

    func testFailingSubmitOfANewJobLeavesNothing() throws {
        _ = try store.submit(JobSpec(name: "existing", kmsKeyARN: arn), now: 1) { sink in
            _ = try sink.add(ObjectRef(bucket: "b-1", key: "a"), skippedAs: nil)
        }
        let before = try snapshot()
        XCTAssertThrowsError(try store.submit(JobSpec(name: "new", kmsKeyARN: arn), now: 2) { sink in
            for i in 0..<1000 { _ = try sink.add(ObjectRef(bucket: "b-1", key: "k\(i)"), skippedAs: nil) }
            throw Boom()
        })
        XCTAssertEqual(try snapshot(), before)
        XCTAssertNil(try store.job(named: "new"))
        XCTAssertTrue(try store.countersAgreeWithTasks())
    }

    func testFailingSubmitToAnExistingJobLeavesItExactlyAsBefore() throws {
        _ = try store.submit(JobSpec(name: "j", kmsKeyARN: arn), now: 1) { sink in
            _ = try sink.add(ObjectRef(bucket: "b-1", key: "a"), skippedAs: nil)
        }
        let before = try snapshot()
        XCTAssertThrowsError(try store.submit(JobSpec(name: "j", kmsKeyARN: arn), now: 2) { sink in
            _ = try sink.add(ObjectRef(bucket: "b-1", key: "b"), skippedAs: .skippedObjectLock)
            throw Boom()
        })
        XCTAssertEqual(try snapshot(), before)
        // The store still works after the rollback.
        let ok = try store.submit(JobSpec(name: "j", kmsKeyARN: arn), now: 3) { sink in
            _ = try sink.add(ObjectRef(bucket: "b-1", key: "b"), skippedAs: nil)
        }
        XCTAssertEqual(ok.added, 1)
    }

    func testSubmitRefusesAFinishedJobOrDifferentSettings() throws {
        _ = try store.submit(JobSpec(name: "j", kmsKeyARN: arn), now: 1) { _ in }
        let other = try KMSKeyARN("arn:aws:kms:us-east-1:111122223333:key/other")
        XCTAssertThrowsError(try store.submit(JobSpec(name: "j", kmsKeyARN: other), now: 2) { _ in }) { error in
            XCTAssertTrue("\(error)".contains("already exists with KMS key"), "\(error)")
        }
        XCTAssertThrowsError(try store.submit(JobSpec(name: "j", kmsKeyARN: arn, bucketKeyEnabled: true), now: 2) { _ in })
        try store.setState(ofJob: "j", to: .cancelled, reason: nil, now: 3)
        XCTAssertThrowsError(try store.submit(JobSpec(name: "j", kmsKeyARN: arn), now: 4) { _ in }) { error in
            XCTAssertTrue("\(error)".contains("is cancelled and takes no more manifests"), "\(error)")
        }
    }

    func testPauseResumeCancelTransitions() throws {
        _ = try store.submit(JobSpec(name: "j", kmsKeyARN: arn), now: 1) { _ in }
        XCTAssertEqual(try store.setState(ofJob: "j", to: .paused, reason: nil, now: 2).state, .paused)
        XCTAssertEqual(try store.job(named: "j")?.state, .paused)
        XCTAssertEqual(try store.setState(ofJob: "j", to: .active, reason: nil, now: 3).state, .active)
        XCTAssertEqual(try store.setState(ofJob: "j", to: .failed, reason: "62% failed", now: 4).stateReason, "62% failed")
        // Resuming a threshold-failed job clears its reason.
        let resumed = try store.setState(ofJob: "j", to: .active, reason: nil, now: 5)
        XCTAssertEqual(resumed.state, .active)
        XCTAssertNil(resumed.stateReason)
        try store.setState(ofJob: "j", to: .cancelled, reason: nil, now: 6)
        XCTAssertThrowsError(try store.setState(ofJob: "j", to: .active, reason: nil, now: 7)) { error in
            XCTAssertTrue(error is JobStoreError)
        }
        XCTAssertThrowsError(try store.setState(ofJob: "nope", to: .paused, reason: nil, now: 7)) { error in
            XCTAssertEqual("\(error)", "there is no job named 'nope' (see `reencryptd status`)")
        }
    }

    func testReopeningKeepsDataAndSchemaVersion() throws {
        _ = try store.submit(JobSpec(name: "j", kmsKeyARN: arn, expectedBucketOwner: try AccountID("111122223333"), priority: 7),
                             now: 1) { sink in
            _ = try sink.add(ObjectRef(bucket: "b-1", key: "k"), skippedAs: nil)
        }
        store = nil
        let reopened = try SQLiteJobStore(path: path)
        let job = try XCTUnwrap(reopened.job(named: "j"))
        XCTAssertEqual(job.spec.priority, 7)
        XCTAssertEqual(job.spec.expectedBucketOwner?.rawValue, "111122223333")
        XCTAssertEqual(try reopened.summaries(now: 2).first?.total, 1)
    }

    /// A store written by schema 2 (claims through `tasks_runnable`) is brought to the current schema on open, its
    /// tasks intact and claimable through the per-bucket index.
    func testASchemaTwoStoreIsMigratedAndItsTasksStillClaim() throws {
        _ = try store.submit(JobSpec(name: "j", kmsKeyARN: arn), now: 1) { sink in
            for i in 0..<10 { _ = try sink.add(ObjectRef(bucket: "b-\(i % 2)", key: "k\(i)"), skippedAs: nil) }
        }
        try rewriteWhileClosed("""
            DROP INDEX tasks_pending; CREATE INDEX tasks_runnable ON tasks(job_id, state, next_attempt_at);
            DROP TABLE leases; CREATE INDEX tasks_leases ON tasks(state, lease_expires_at) WHERE state = 'in_flight';
            PRAGMA user_version = 2;
            """)
        XCTAssertEqual(try store.claim(owner: "w", limit: 100, now: 2, leaseSeconds: 60).count, 10)
        XCTAssertEqual(text(of: """
            SELECT group_concat(name) FROM (SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'tasks_%' ORDER BY name)
            """), "tasks_object,tasks_pending")
    }

    func submitTen() throws {
        _ = try store.submit(JobSpec(name: "j", kmsKeyARN: arn), now: 1) { sink in
            for i in 0..<10 { _ = try sink.add(ObjectRef(bucket: "b", key: "k\(i)"), skippedAs: nil) }
        }
    }

    func succeeded(_ lease: Lease) -> TaskResult {
        TaskResult(taskID: lease.taskID, jobID: lease.jobID, disposition: .terminal(.succeeded), attempts: 1, errors: 0,
                   throttles: 0, httpStatus: 200, errorCode: nil, errorMessage: nil, requestID: "r")
    }

    /// A lease belongs to its owner: renewing it keeps all the owner's tasks, and when it expires all of them go back,
    /// and only them; a result that arrives after that is ignored.
    func testALeaseCoversItsOwnersTasksUntilItExpires() throws {
        try submitTen()
        let a = try store.claim(owner: "a", limit: 6, now: 100, leaseSeconds: 60)  // until 160
        let b = try store.claim(owner: "b", limit: 4, now: 100, leaseSeconds: 10)  // until 110
        XCTAssertEqual(a.count + b.count, 10)
        try store.renewLeases(owner: "a", until: 200)
        XCTAssertEqual(try store.expireLeases(now: 105), 0)
        XCTAssertEqual(try store.expireLeases(now: 150), 4, "b's lease expired, a's was renewed")
        XCTAssertEqual(try store.summaries(now: 0).first?.tasks, [.pending: 4, .inFlight: 6])
        XCTAssertEqual(try store.record([succeeded(b[0])], owner: "b", now: 151), 0,
                       "b lost its lease: its result is ignored")
        XCTAssertEqual(try store.record([succeeded(a[0])], owner: "a", now: 151), 1)
        XCTAssertEqual(text(of: "SELECT group_concat(owner) FROM leases"), "a")
        XCTAssertEqual(try store.expireLeases(now: 170), 0, "a's lease was renewed past its first term")
        XCTAssertEqual(try store.expireLeases(now: 201), 5)
        XCTAssertEqual(try store.summaries(now: 0).first?.tasks, [.pending: 9, .succeeded: 1])
        XCTAssertEqual(text(of: "SELECT count(*) FROM leases"), "0")
        XCTAssertTrue(try store.countersAgreeWithTasks())
        // The returned tasks are claimable again, by anyone.
        let c = try store.claim(owner: "c", limit: 100, now: 202, leaseSeconds: 60)
        XCTAssertEqual(c.count, 9)
        // A worker that finished everything and died leaves a lease holding nothing: it goes when it expires, at
        // start-up as any time.
        XCTAssertEqual(try store.record(c.map(succeeded), owner: "c", now: 203), 9)
        XCTAssertEqual(try store.recoverLeases(now: 300), 0)
        XCTAssertEqual(try store.leaseHolders(), [])
    }

    /// Releasing puts back only tasks the owner still holds in flight: not another worker's, not one already recorded.
    func testReleaseReturnsOnlyTheOwnersTasksStillInFlight() throws {
        try submitTen()
        let a = try store.claim(owner: "a", limit: 6, now: 100, leaseSeconds: 60)
        let b = try store.claim(owner: "b", limit: 4, now: 100, leaseSeconds: 60)
        XCTAssertEqual(try store.record([succeeded(a[0])], owner: "a", now: 101), 1)
        try store.release(taskIDs: a.map(\.taskID) + b.map(\.taskID), owner: "a")
        XCTAssertEqual(try store.summaries(now: 0).first?.tasks, [.pending: 5, .inFlight: 4, .succeeded: 1])
        XCTAssertTrue(try store.countersAgreeWithTasks())
        XCTAssertEqual(try store.record(b.map(succeeded), owner: "b", now: 102), 4, "b's tasks stayed b's")
    }

    /// `retry` reopens a finished job (complete, or failed at the threshold) but leaves a paused one paused: the
    /// operator paused it and only `resume` lets it run.
    func testRetryReopensAFinishedJobButNotAPausedOne() throws {
        try submitTen()
        let leases = try store.claim(owner: "a", limit: 10, now: 100, leaseSeconds: 60)
        let denied = { (l: Lease) in
            TaskResult(taskID: l.taskID, jobID: l.jobID, disposition: .terminal(.accessDenied), attempts: 1, errors: 0,
                       throttles: 0, httpStatus: 403, errorCode: "AccessDenied", errorMessage: "Access Denied", requestID: "r")
        }
        XCTAssertEqual(try store.record(leases.map(denied), owner: "a", now: 101), 10)
        XCTAssertEqual(try store.completeFinishedJobs(now: 102).map(\.spec.name), ["j"])
        XCTAssertEqual(try store.retry(job: "j", outcomes: [.accessDenied], now: 103), 10)
        XCTAssertEqual(try store.job(named: "j")?.state, .active, "a complete job runs again")
        let again = try store.claim(owner: "a", limit: 10, now: 104, leaseSeconds: 60)
        XCTAssertEqual(try store.record(again.map(denied), owner: "a", now: 105), 10)
        try store.setState(ofJob: "j", to: .paused, reason: nil, now: 106)
        XCTAssertEqual(try store.retry(job: "j", outcomes: [], now: 107), 10)
        XCTAssertEqual(try store.job(named: "j")?.state, .paused, "a paused job stays paused")
        XCTAssertEqual(try store.summaries(now: 0).first?.tasks[.pending], 10)
        XCTAssertTrue(try store.countersAgreeWithTasks())
    }

    /// A clean exit ends the owner's lease and returns what it still holds; other owners keep theirs, and leases that
    /// expire together are returned together.
    func testEndingALeaseReturnsOnlyThatOwnersTasks() throws {
        try submitTen()
        _ = try store.claim(owner: "a", limit: 5, now: 100, leaseSeconds: 60)
        _ = try store.claim(owner: "b", limit: 3, now: 100, leaseSeconds: 60)
        _ = try store.claim(owner: "c", limit: 2, now: 101, leaseSeconds: 60)
        try store.endLease(owner: "a")
        XCTAssertEqual(try store.summaries(now: 0).first?.tasks, [.pending: 5, .inFlight: 5])
        XCTAssertEqual(text(of: "SELECT group_concat(owner) FROM (SELECT owner FROM leases ORDER BY owner)"), "b,c")
        XCTAssertEqual(try store.expireLeases(now: 159), 0)
        XCTAssertEqual(try store.expireLeases(now: 162), 5)
        XCTAssertEqual(text(of: "SELECT count(*) FROM leases"), "0")
        XCTAssertTrue(try store.countersAgreeWithTasks())
    }

    /// A reencryptd from before schema 4 that went on running after a newer one migrated the store leases tasks the
    /// old way (an expiry on each task, no lease row). Recovery at start-up gives their owner a lease until the latest
    /// of those expiries, so that they expire; without it they would stay in flight for ever.
    func testTasksLeasedTheOldWayAfterTheMigrationAreRecovered() throws {
        try submitTen()
        _ = try store.claim(owner: "old", limit: 6, now: 100, leaseSeconds: 60)
        _ = try store.claim(owner: "older", limit: 2, now: 100, leaseSeconds: 60)
        _ = try store.claim(owner: "new", limit: 2, now: 100, leaseSeconds: 60)
        try rewriteWhileClosed("""
            UPDATE tasks SET lease_expires_at = 170 + id WHERE lease_owner = 'old';
            DELETE FROM leases WHERE owner IN ('old', 'older');
            """)
        let latestOfOld = Double(try XCTUnwrap(text(of: "SELECT 170 + max(id) FROM tasks WHERE lease_owner = 'old'")))!
        XCTAssertEqual(try store.expireLeases(now: 150), 0, "without recovery nothing knows of them")
        // 'older' names no expiry at all: due at once. 'new' has its lease row until 160.
        XCTAssertEqual(try store.recoverLeases(now: 150), 2)
        XCTAssertEqual(try store.leaseHolders(), ["new", "old"])
        XCTAssertEqual(try store.recoverLeases(now: latestOfOld - 1), 2, "new's lease expired at 160")
        XCTAssertEqual(try store.recoverLeases(now: latestOfOld + 1), 6)
        XCTAssertEqual(try store.leaseHolders(), [])
        XCTAssertEqual(try store.summaries(now: 0).first?.tasks, [.pending: 10])
        XCTAssertTrue(try store.countersAgreeWithTasks())
    }

    /// A store written by schema 3 (an expiry on each leased task) is brought to schema 4 (one lease per owner) on
    /// open: each owner's lease runs until the latest expiry among its tasks, and expires then.
    func testASchemaThreeStoreKeepsItsLeasesThroughTheMigration() throws {
        try submitTen()
        _ = try store.claim(owner: "a", limit: 6, now: 100, leaseSeconds: 60)
        _ = try store.claim(owner: "b", limit: 4, now: 100, leaseSeconds: 60)
        try rewriteWhileClosed("""
            DROP TABLE leases;
            UPDATE tasks SET lease_expires_at = CASE lease_owner WHEN 'a' THEN 150 + id ELSE 120 END
            WHERE state = 'in_flight';
            CREATE INDEX tasks_leases ON tasks(state, lease_expires_at) WHERE state = 'in_flight';
            PRAGMA user_version = 3;
            """)
        let latestOfA = text(of: "SELECT 150 + max(id) FROM tasks WHERE lease_owner = 'a'")
        XCTAssertEqual(text(of: """
            SELECT group_concat(owner || '=' || CAST(expires_at AS INTEGER)) FROM (SELECT * FROM leases ORDER BY owner)
            """), "a=\(latestOfA ?? "?"),b=120")
        XCTAssertEqual(text(of: "SELECT count(*) FROM tasks WHERE lease_expires_at IS NOT NULL"), "0")
        XCTAssertEqual(text(of: "SELECT count(*) FROM sqlite_master WHERE name = 'tasks_leases'"), "0")
        XCTAssertEqual(try store.expireLeases(now: 119), 0)
        XCTAssertEqual(try store.expireLeases(now: 121), 4)
        XCTAssertEqual(try store.expireLeases(now: Double(latestOfA ?? "0")! - 1), 0)
        XCTAssertEqual(try store.expireLeases(now: Double(latestOfA ?? "0")! + 1), 6)
        XCTAssertTrue(try store.countersAgreeWithTasks())
    }

    /// Closes the store, runs `sql` on the file through a connection of its own (to write what an older reencryptd
    /// would have), and opens the store again, which migrates it.
    func rewriteWhileClosed(_ sql: String, file: StaticString = #filePath, line: UInt = #line) throws {
        store = nil
        var db: OpaquePointer?
        XCTAssertEqual(sqlite3_open(path, &db), SQLITE_OK, file: file, line: line)
        XCTAssertEqual(sqlite3_exec(db, sql, nil, nil, nil), SQLITE_OK, String(cString: sqlite3_errmsg(db)), file: file, line: line)
        sqlite3_close(db)
        store = try SQLiteJobStore(path: path)
    }

    /// The first column of the first row of `sql`, read through a separate connection.
    func text(of sql: String) -> String? {
        var db: OpaquePointer?
        guard sqlite3_open(path, &db) == SQLITE_OK else { return nil }
        defer { sqlite3_close(db) }
        var stmt: OpaquePointer?
        guard sqlite3_prepare_v2(db, sql, -1, &stmt, nil) == SQLITE_OK else { return nil }
        defer { sqlite3_finalize(stmt) }
        guard sqlite3_step(stmt) == SQLITE_ROW, let t = sqlite3_column_text(stmt, 0) else { return nil }
        return String(cString: t)
    }

    func testDatabaseFromANewerVersionIsRefused() throws {
        store = nil
        var db: OpaquePointer?
        XCTAssertEqual(sqlite3_open(path, &db), SQLITE_OK)
        XCTAssertEqual(sqlite3_exec(db, "PRAGMA user_version = 999", nil, nil, nil), SQLITE_OK)
        sqlite3_close(db)
        XCTAssertThrowsError(try SQLiteJobStore(path: path)) { error in
            XCTAssertTrue("\(error)".contains("newer than this reencryptd knows"), "\(error)")
        }
    }

    func testDatabaseIsInWALMode() throws {
        XCTAssertEqual(text(of: "PRAGMA journal_mode"), "wal")
    }

    func testUnopenablePathNamesThePath() {
        XCTAssertThrowsError(try SQLiteJobStore(path: "/nonexistent-dir/x.sqlite3")) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent-dir/x.sqlite3"), "\(error)")
        }
    }
}
