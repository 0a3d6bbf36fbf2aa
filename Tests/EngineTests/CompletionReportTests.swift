import Domain
import Foundation
@testable import JobStore
import S3
import S3Sim
import XCTest

final class CompletionReportTests: XCTestCase {
    func testBatchCSVReportHasTheBatchOperationsLayout() throws {
        let h = try EngineHarness(objects: 400) { $0.awkwardKeys = 0.3; $0.broken = 0 }
        XCTAssertEqual(h.run(), .idle)
        let out = h.dir.appendingPathComponent("report")
        let written = try CompletionReport.write(job: "job", store: h.store, format: .batchCSV, failedOnly: false, folder: out,
                                                 bucket: "reports-bucket", keyPrefix: "done")
        XCTAssertEqual(written.tasks, 400)
        let manifest = try jsonObject(Data(contentsOf: out.appendingPathComponent("job-job/manifest.json")))
        XCTAssertEqual(manifest["Format"] as? String, "Report_CSV_20180820")
        XCTAssertEqual(manifest["ReportSchema"] as? String, "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage")
        XCTAssertNotNil(manifest["ReportCreationDate"] as? String)
        let results = try XCTUnwrap(manifest["Results"] as? [[String: String]])
        XCTAssertEqual(Set(results.compactMap { $0["TaskExecutionStatus"] }), ["succeeded", "failed"])
        var rows: [String: [[String]]] = [:]
        for r in results {
            XCTAssertEqual(r["Bucket"], "reports-bucket")
            let key = try XCTUnwrap(r["Key"])
            XCTAssertTrue(key.hasPrefix("done/job-job/results/"), key)
            let local = out.appendingPathComponent(String(key.dropFirst("done/".count)))
            let data = try Data(contentsOf: local)
            XCTAssertEqual(r["MD5Checksum"], Crypto.hex(Crypto.md5(data)))
            rows[r["TaskExecutionStatus"]!] = String(decoding: data, as: UTF8.self).split(separator: "\n").map {
                $0.split(separator: ",", maxSplits: 6, omittingEmptySubsequences: false).map(String.init)
            }
        }
        let expectedSucceeded = h.population.entries.filter { $0.expectedViaCSV == .succeeded }
        XCTAssertEqual(rows["succeeded"]?.count, expectedSucceeded.count)
        XCTAssertEqual(rows["failed"]?.count, 400 - expectedSucceeded.count)
        // No header; keys URL-encoded as in the manifests; succeeded rows as the service writes them.
        let keys = Set(rows["succeeded"]!.map { $0[1] })
        for e in expectedSucceeded { XCTAssertTrue(keys.contains(ObjectKey.urlEncoded(e.object.key)), e.object.key) }
        XCTAssertTrue(rows["succeeded"]!.allSatisfy { $0[3] == "succeeded" && $0[4] == "200" && $0[6] == "Successful" })
        XCTAssertTrue(rows["failed"]!.allSatisfy { $0[3] == "failed" && !$0[5].isEmpty })
        let failedOnly = try CompletionReport.write(job: "job", store: h.store, format: .batchCSV, failedOnly: true,
                                                    folder: h.dir.appendingPathComponent("failed"))
        XCTAssertEqual(failedOnly.tasks, 400 - expectedSucceeded.count)
        XCTAssertFalse(failedOnly.files.contains { $0.contains("succeeded") }, "\(failedOnly.files)")
        XCTAssertTrue(failedOnly.files.contains { $0.contains("-failed-") }, "\(failedOnly.files)")
    }

    func testJSONLinesCarryEveryRecordedField() throws {
        let h = try EngineHarness(objects: 100) { $0.broken = 0; $0.governance = 0.2 }
        XCTAssertEqual(h.run(), .idle)
        let out = h.dir.appendingPathComponent("jsonl")
        let written = try CompletionReport.write(job: "job", store: h.store, format: .jsonl, failedOnly: false, folder: out)
        XCTAssertEqual(written.files, ["job-job/results/tasks-1.jsonl"])
        let lines = try String(contentsOf: out.appendingPathComponent(written.files[0]), encoding: .utf8)
            .split(separator: "\n")
        XCTAssertEqual(lines.count, 100)
        for line in lines {
            let o = try jsonObject(Data(line.utf8))
            for field in ["bucket", "key", "state", "outcome", "attempts", "created_at", "finished_at", "request_id"] {
                XCTAssertNotNil(o[field], "\(field) in \(line)")
            }
            if o["outcome"] as? String == "object-lock" {
                XCTAssertEqual(o["error_code"] as? String, "AccessDenied")
                XCTAssertEqual(o["http_status"] as? Int, 403)
            }
        }
    }

    private func record(_ i: Int, _ state: TaskState) -> TaskRecord {
        TaskRecord(object: ObjectRef(bucket: "b", key: "k \(i)", versionId: nil), state: state,
                   outcome: state == .succeeded ? .succeeded : .objectLock, attempts: 1, httpStatus: state == .succeeded ? 200 : 403,
                   errorCode: state == .succeeded ? nil : "AccessDenied", errorMessage: nil, requestID: "R\(i)",
                   createdAt: 0, startedAt: 1, finishedAt: 2)
    }

    /// A JSON object (a report manifest, or one line of a JSON-lines report).
    private func jsonObject(_ data: Data) throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    private func resultFiles(_ out: URL) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: out.appendingPathComponent("job-j/results").path).sorted()
    }

    /// Results are split every `rowsPerFile` rows, each file listed with its own MD5, and a status without rows gets
    /// no file: the service lists a failed report only if the job had failures.
    func testReportsSplitLargeResultsAndListOnlyFilesWithRows() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let tasks = (1...7).map { record($0, .succeeded) }
        let written = try CompletionReport.write(job: "j", rows: { body in try tasks.forEach(body) }, format: .batchCSV,
                                                 folder: out, rowsPerFile: 3)
        XCTAssertEqual(written.tasks, 7)
        let manifest = try jsonObject(Data(contentsOf: out.appendingPathComponent("job-j/manifest.json")))
        let results = try XCTUnwrap(manifest["Results"] as? [[String: String]])
        XCTAssertEqual(results.map { $0["TaskExecutionStatus"] }, ["succeeded", "succeeded", "succeeded"])
        XCTAssertEqual(try resultFiles(out), results.map { String($0["Key"]!.split(separator: "/").last!) }.sorted())
        var keys: [String] = []
        for r in results {
            let data = try Data(contentsOf: out.appendingPathComponent(r["Key"]!))
            XCTAssertEqual(r["MD5Checksum"], Crypto.hex(Crypto.md5(data)))
            keys += String(decoding: data, as: UTF8.self).split(separator: "\n").map { String($0.split(separator: ",")[1]) }
        }
        XCTAssertEqual(keys, tasks.map { ObjectKey.urlEncoded($0.object.key) })
        XCTAssertEqual(written.files.count, 4)

        // JSON lines split the same way, in order.
        let jsonl = try CompletionReport.write(job: "j", rows: { body in try tasks.forEach(body) }, format: .jsonl,
                                               folder: out.appendingPathComponent("l"), rowsPerFile: 3)
        XCTAssertEqual(jsonl.files, (1...3).map { "job-j/results/tasks-\($0).jsonl" })
        let jsonKeys = try jsonl.files.flatMap { file in
            try String(contentsOf: out.appendingPathComponent("l").appendingPathComponent(file), encoding: .utf8)
                .split(separator: "\n").map { line in
                    try jsonObject(Data(line.utf8))["key"] as? String
                }
        }
        XCTAssertEqual(jsonKeys, tasks.map { $0.object.key })

        // The failed-only scope of a job without failures (the store hands over no rows): a manifest listing nothing.
        let failedOnly = try CompletionReport.write(job: "j", rows: { _ in }, format: .batchCSV,
                                                    folder: out.appendingPathComponent("f"))
        XCTAssertEqual(failedOnly.tasks, 0)
        XCTAssertEqual(failedOnly.files, ["job-j/manifest.json"])
        let emptyManifest = try jsonObject(Data(contentsOf: out.appendingPathComponent("f/job-j/manifest.json")))
        XCTAssertEqual((emptyManifest["Results"] as? [Any])?.count, 0)
    }

    /// A failure part-way (here the store) leaves no results file and no manifest behind, and the error reaches the
    /// caller as it was.
    func testAFailedReportLeavesNothingHalfWritten() throws {
        struct StoreBroke: Error {}
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: out) }
        let rows: CompletionReport.TaskRows = { body in
            for i in 1...5 { try body(self.record(i, i % 2 == 0 ? .failed : .succeeded)) }
            throw StoreBroke()
        }
        for format in CompletionReport.Format.allCases {
            XCTAssertThrowsError(try CompletionReport.write(job: "j", rows: rows, format: format, folder: out,
                                                            rowsPerFile: 2)) { XCTAssertTrue($0 is StoreBroke, "\(format): \($0)") }
            XCTAssertEqual(try resultFiles(out), [], "\(format)")
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.appendingPathComponent("job-j/manifest.json").path))
        }
    }

    /// A full disk is an error naming the file and the reason (Foundation's FileHandle.write traps instead).
    func testAFullDiskIsAnErrorNamingTheFile() throws {
        let file = try ReportFile(URL(fileURLWithPath: "/dev/full"), name: "full")
        XCTAssertThrowsError(try { for _ in 0..<3 { try file.write(String(repeating: "x", count: 1 << 19)) }; _ = try file.close() }()) {
            let text = "\($0)"
            XCTAssertTrue(text.contains("/dev/full") && text.contains("No space left on device"), text)
        }
    }
}
