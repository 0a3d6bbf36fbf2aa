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

    /// A store written by schema 2 (claims through `tasks_runnable`) is brought to schema 3 on open, its tasks intact and
    /// claimable through the new per-bucket index.
    func testASchemaTwoStoreIsMigratedAndItsTasksStillClaim() throws {
        _ = try store.submit(JobSpec(name: "j", kmsKeyARN: arn), now: 1) { sink in
            for i in 0..<10 { _ = try sink.add(ObjectRef(bucket: "b-\(i % 2)", key: "k\(i)"), skippedAs: nil) }
        }
        store = nil
        var db: OpaquePointer?
        XCTAssertEqual(sqlite3_open(path, &db), SQLITE_OK)
        XCTAssertEqual(sqlite3_exec(db, """
            DROP INDEX tasks_pending; CREATE INDEX tasks_runnable ON tasks(job_id, state, next_attempt_at); PRAGMA user_version = 2;
            """, nil, nil, nil), SQLITE_OK)
        sqlite3_close(db)
        store = try SQLiteJobStore(path: path)
        XCTAssertEqual(try store.claim(owner: "w", limit: 100, now: 2, leaseSeconds: 60).count, 10)
        XCTAssertEqual(text(of: """
            SELECT group_concat(name) FROM (SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'tasks_%' ORDER BY name)
            """), "tasks_leases,tasks_object,tasks_pending")
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
