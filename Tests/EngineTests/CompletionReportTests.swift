import Domain
import Foundation
import JobStore
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
        let manifestData = try Data(contentsOf: out.appendingPathComponent("job-job/manifest.json"))
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: manifestData) as? [String: Any])
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
    }

    func testJSONLinesCarryEveryRecordedField() throws {
        let h = try EngineHarness(objects: 100) { $0.broken = 0; $0.governance = 0.2 }
        XCTAssertEqual(h.run(), .idle)
        let out = h.dir.appendingPathComponent("jsonl")
        _ = try CompletionReport.write(job: "job", store: h.store, format: .jsonl, failedOnly: false, folder: out)
        let lines = try String(contentsOf: out.appendingPathComponent("job-job/results/tasks.jsonl"), encoding: .utf8)
            .split(separator: "\n")
        XCTAssertEqual(lines.count, 100)
        for line in lines {
            let o = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            for field in ["bucket", "key", "state", "outcome", "attempts", "created_at", "finished_at", "request_id"] {
                XCTAssertNotNil(o[field], "\(field) in \(line)")
            }
            if o["outcome"] as? String == "object-lock" {
                XCTAssertEqual(o["error_code"] as? String, "AccessDenied")
                XCTAssertEqual(o["http_status"] as? Int, 403)
            }
        }
    }
}
