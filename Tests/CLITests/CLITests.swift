import Domain
import Foundation
import JobStore
@testable import ReencryptdCLI
import XCTest

final class CLITests: XCTestCase {
    var dir: URL!
    var db: String { dir.appendingPathComponent("store.sqlite3").path }
    let arn = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        setenv("REENCRYPTD_CONFIG", "/dev/null", 1)  // keep a host's /etc/reencryptd out of the tests
    }

    override func tearDown() { try? FileManager.default.removeItem(at: dir) }

    func write(_ name: String, _ text: String) throws -> String {
        let path = dir.appendingPathComponent(name).path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func reencryptd(_ args: String...) async -> Int32 {
        await Reencryptd.main(arguments: args)
    }

    func testSubmitThenStatusJSONHasTheContractShape() async throws {
        let manifest = try write("m.csv", "b-1,k1\nb-1,k2\nb-1,k1\n")
        let rc = await reencryptd("submit", "--db", db, "--job", "rotate-2026", "--kms-key-arn", arn, manifest)
        XCTAssertEqual(rc, 0)
        let store = try SQLiteJobStore(path: db)
        let json = StatusView.json(try store.summaries(now: Date().timeIntervalSince1970))
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        let jobs = try XCTUnwrap(object?["jobs"] as? [[String: Any]])
        XCTAssertEqual(jobs.count, 1)
        let job = try XCTUnwrap(jobs.first)
        XCTAssertEqual(job["name"] as? String, "rotate-2026")
        XCTAssertEqual(job["state"] as? String, "active")
        XCTAssertEqual(job["kms_key_arn"] as? String, arn)
        XCTAssertEqual(job["total"] as? Int, 2)
        XCTAssertEqual(job["tasks"] as? [String: Int], ["pending": 2, "in_flight": 0, "succeeded": 0, "failed": 0, "skipped": 0])
        XCTAssertEqual(job["outcomes"] as? [String: Int], [:])
        XCTAssertEqual(job["rate_per_second"] as? Double, 0)
        XCTAssertTrue(job["eta_seconds"] is NSNull, "eta_seconds must be present and null when no daemon runs")
    }

    func testExitStatusIsTwoForBadInputAndNothingIsStored() async throws {
        let good = try write("good.csv", "b-1,k1\n")
        let bad = try write("bad.csv", "b-1,k2\nb-1,%zz\n")
        var rc = await reencryptd("submit", "--db", db, "--job", "j", "--kms-key-arn", arn, good, bad)
        XCTAssertEqual(rc, 2)
        XCTAssertEqual(try SQLiteJobStore(path: db).jobs(), [])
        rc = await reencryptd("submit", "--db", db, "--job", "j", "--kms-key-arn", "alias/my-key", good)
        XCTAssertEqual(rc, 2)
        rc = await reencryptd("submit", "--db", db, "--job", "j", "--kms-key-arn", arn, "--no-such-flag", good)
        XCTAssertEqual(rc, 2)
        rc = await reencryptd("pause", "--db", db, "--job", "missing")
        XCTAssertEqual(rc, 2)
        // With --skip-invalid the good rows go in.
        rc = await reencryptd("submit", "--db", db, "--job", "j", "--kms-key-arn", arn, "--skip-invalid", good, bad)
        XCTAssertEqual(rc, 0)
        XCTAssertEqual(try SQLiteJobStore(path: db).summaries(now: 0).first?.total, 2)
    }

    func testCommandsOnExistingJobsRefuseAMissingStoreAndCreateNothing() async throws {
        let missing = dir.appendingPathComponent("mistyped.sqlite3").path
        let commands: [[String]] = [["status"], ["status", "--json"], ["pause", "--job", "j"], ["resume", "--job", "j"],
                                    ["cancel", "--job", "j"], ["retry", "--job", "j"],
                                    ["report", "--job", "j", "--output", dir.appendingPathComponent("out").path]]
        for command in commands {
            let rc = await Reencryptd.main(arguments: [command[0], "--db", missing] + command.dropFirst())
            XCTAssertEqual(rc, 2, "\(command.joined(separator: " ")) on a missing store")
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [],
                           "\(command.joined(separator: " ")) left something behind")
        }
        XCTAssertTrue(StoreNotFound(path: missing).description.contains(missing), "the error names the path")
        // submit creates the store; the same commands then work.
        let manifest = try write("m.csv", "b-1,k1\n")
        var rc = await reencryptd("submit", "--db", missing, "--job", "j", "--kms-key-arn", arn, manifest)
        XCTAssertEqual(rc, 0)
        rc = await reencryptd("pause", "--db", missing, "--job", "j")
        XCTAssertEqual(rc, 0)
    }

    func testPauseResumeCancelChangeTheStoredState() async throws {
        let manifest = try write("m.csv", "b-1,k1\n")
        _ = await reencryptd("submit", "--db", db, "--job", "j", "--kms-key-arn", arn, manifest)
        var rc = await reencryptd("pause", "--db", db, "--job", "j")
        XCTAssertEqual(rc, 0)
        XCTAssertEqual(try SQLiteJobStore(path: db).job(named: "j")?.state, .paused)
        rc = await reencryptd("resume", "--db", db, "--job", "j")
        XCTAssertEqual(try SQLiteJobStore(path: db).job(named: "j")?.state, .active)
        rc = await reencryptd("cancel", "--db", db, "--job", "j")
        XCTAssertEqual(rc, 0)
        XCTAssertEqual(try SQLiteJobStore(path: db).job(named: "j")?.state, .cancelled)
        rc = await reencryptd("resume", "--db", db, "--job", "j")
        XCTAssertEqual(rc, 2)
    }

    func testConfigFileIsLoadedByEverySubcommand() async throws {
        let config = try write("c.toml", "[store]\npath = \"\(db)\"\n[engine]\nbogus = 1\n")
        let rc = await reencryptd("status", "--config", config)
        XCTAssertEqual(rc, 2, "an unknown key must be rejected by any subcommand")
        let good = try write("g.toml", "[store]\npath = \"\(db)\"\n")
        let manifest = try write("m.csv", "b-1,k1\n")
        let submitted = await reencryptd("submit", "--config", good, "--job", "j", "--kms-key-arn", arn, manifest)
        XCTAssertEqual(submitted, 0)
        XCTAssertEqual(try SQLiteJobStore(path: db).summaries(now: 0).first?.total, 1, "[store] path must be honoured")
    }

    func testTextStatusShowsStateReasonAndOutcomes() throws {
        let store = try SQLiteJobStore(path: db)
        _ = try store.submit(JobSpec(name: "j", kmsKeyARN: try KMSKeyARN(arn)), now: 1) { sink in
            _ = try sink.add(ObjectRef(bucket: "b-1", key: "a"), skippedAs: .skippedSSEC)
            _ = try sink.add(ObjectRef(bucket: "b-1", key: "b"), skippedAs: nil)
        }
        try store.setState(ofJob: "j", to: .failed, reason: "failure threshold crossed", now: 2)
        let text = StatusView.text(try store.summaries(now: 3))
        XCTAssertTrue(text.contains("job j: failed (failure threshold crossed)"), text)
        XCTAssertTrue(text.contains("skipped-sse-c 1"), text)
        XCTAssertTrue(text.contains("progress   1/2 (50.0%)"), text)
        XCTAssertTrue(text.contains("rate       0.0/s"), "an unfinished job shows that nothing is working on it: \(text)")
        // A finished job with no daemon on it shows no rate at all.
        _ = try store.submit(JobSpec(name: "done", kmsKeyARN: try KMSKeyARN(arn)), now: 4) { sink in
            _ = try sink.add(ObjectRef(bucket: "b-1", key: "c"), skippedAs: .skippedSSEC)
        }
        let both = StatusView.text(try store.summaries(now: 5))
        let finished = try XCTUnwrap(both.components(separatedBy: "job done:").last)
        XCTAssertTrue(finished.contains("progress   1/1 (100.0%)"), both)
        XCTAssertFalse(finished.contains("rate"), both)
    }
}

final class StopAtTests: XCTestCase {
    func testStopAtIsTheNextOccurrenceOfTheLocalTime() throws {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let now = Date(timeIntervalSince1970: 1_800_000_000)  // 2027-01-15 08:00:00 UTC
        let later = try Run.nextOccurrence(of: "09:30", after: now, calendar: calendar)
        XCTAssertEqual(later.timeIntervalSince(now), 5400)
        let tomorrow = try Run.nextOccurrence(of: "06:00", after: now, calendar: calendar)
        XCTAssertEqual(tomorrow.timeIntervalSince(now), 22 * 3600)
        for bad in ["25:00", "9:5", "noon", "12:60"] {
            XCTAssertThrowsError(try Run.nextOccurrence(of: bad, after: now, calendar: calendar), bad)
        }
    }
}
