import Domain
import Foundation
import S3
@testable import S3Sim
import XCTest

/// boto3 (botocore's signer, a second opinion) against the simulator: its genuine requests are accepted, and the
/// same requests changed after signing are refused.
final class BotocoreCrossCheckTests: XCTestCase {
    func testBoto3IsAcceptedAndTamperedRequestsAreRejected() throws {
        let h = try SimHarness()
        h.bucket("bucket-a")
        let key = "dir/boto key+1 ü.txt"
        let version = h.state.putObject(bucket: "bucket-a", key: key, encryption: .sseS3)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/boto3_against_sim.py")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script.path, h.simulator.endpointURL, "bucket-a", key, version]
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, stderr)
        let results = try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [String: [String: Any]], stderr)
        XCTAssertEqual(results["genuine"]?["ok"] as? Bool, true)
        for tampered in ["key", "date", "query", "unsigned_header"] {
            XCTAssertEqual(results[tampered]?["ok"] as? Bool, false, "\(tampered) was accepted")
            XCTAssertEqual(results[tampered]?["status"] as? Int, 403, tampered)
        }
        XCTAssertEqual(results["key"]?["code"] as? String, "SignatureDoesNotMatch")
        XCTAssertEqual(results["date"]?["code"] as? String, "SignatureDoesNotMatch")
        XCTAssertEqual(results["body"]?["ok"] as? Bool, false)
        XCTAssertEqual(results["body"]?["code"] as? String, "XAmzContentSHA256Mismatch")
        XCTAssertEqual(results["head"]?["sse"] as? String, "aws:kms")
        XCTAssertEqual(results["head"]?["key"] as? String, targetARN)
        XCTAssertEqual(h.state.version(bucket: "bucket-a", key: key)?.updates, 1, "only the genuine request changed the object")
        XCTAssertEqual(h.state.snapshotCounters.signatureFailures, 5)
    }
}
