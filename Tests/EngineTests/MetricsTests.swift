import Domain
@testable import Engine
import Foundation
import JobStore
import S3Sim
import XCTest

final class MetricsTests: XCTestCase {
    func testExpositionHasEveryFamilyWithCumulativeHistogramBuckets() throws {
        var p = EngineProgress()
        p.outcomes = [.succeeded: 7, .objectLock: 2]
        p.responsesByStatus = [200: 7, 403: 2, 503: 3]
        p.throttled = 3
        p.inFlight = 5
        p.tightestBucketLimit = 1234.5
        p.s3Unreachable = true
        for s in [0.004, 0.02, 0.02, 0.3, 20] { p.latency.observe(s) }
        let text = MetricsExposition.render(p, jobs: [])
        for line in [
            "reencryptd_tasks_total{outcome=\"succeeded\"} 7", "reencryptd_tasks_total{outcome=\"object-lock\"} 2",
            "reencryptd_requests_total{status=\"503\"} 3", "reencryptd_throttles_total 3", "reencryptd_requests_in_flight 5",
            "reencryptd_rate_limit_requests_per_second 1234.5", "reencryptd_s3_unreachable 1",
            "reencryptd_request_duration_seconds_bucket{le=\"0.005\"} 1", "reencryptd_request_duration_seconds_bucket{le=\"0.025\"} 3",
            "reencryptd_request_duration_seconds_bucket{le=\"10.0\"} 4", "reencryptd_request_duration_seconds_bucket{le=\"+Inf\"} 5",
            "reencryptd_request_duration_seconds_count 5",
        ] {
            XCTAssertTrue(text.contains(line + "\n"), "missing: \(line)\n\(text)")
        }
        XCTAssertTrue(text.contains("# TYPE reencryptd_request_duration_seconds histogram"))
    }

    func testARunningDaemonServesMetrics() throws {
        let h = try EngineHarness(objects: 3000) { $0.broken = 0 }
        var faults = SimFaults()
        faults.latency = .fixed(milliseconds: 20)
        h.simulator.service.faults = faults
        // A free port: bind to 0, read it, release it.
        let probe = StubServer()
        let url = try probe.start { _ in (200, [], "") }
        probe.stop()
        let port = url.split(separator: ":").last.map(String.init)!
        let process = try DaemonProcessTests.start(h, [], env: ["REENCRYPTD_METRICS_LISTEN": "127.0.0.1:\(port)",
                                                                 "REENCRYPTD_ENGINE_CONCURRENCY": "16"])
        defer { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        var body = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            curl.arguments = ["-s", "http://127.0.0.1:\(port)/metrics"]
            let out = Pipe()
            curl.standardOutput = out
            try curl.run()
            body = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            curl.waitUntilExit()
            if body.contains("reencryptd_tasks_total{outcome=\"succeeded\"}") { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        XCTAssertTrue(body.contains("reencryptd_tasks_total{outcome=\"succeeded\"}"), body)
        XCTAssertTrue(body.contains("reencryptd_job_tasks{job=\"job\",state=\"pending\"}"), body)
        XCTAssertTrue(body.contains("reencryptd_requests_total{status=\"200\"}"), body)
    }
}
