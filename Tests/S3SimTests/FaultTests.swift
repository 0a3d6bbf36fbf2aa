import Domain
import Foundation
import S3
@testable import S3Sim
import XCTest

final class FaultTests: XCTestCase {
    func testInjectedFaultsAreClassifiedRetryable() async throws {
        let h = try SimHarness(requestTimeout: 1)
        h.bucket()
        h.state.putObject(bucket: "bucket-a", key: "k", encryption: .sseS3)
        let object = ObjectRef(bucket: "bucket-a", key: "k")
        var faults = SimFaults()
        faults.errorRate = 1
        h.simulator.service.faults = faults
        let value1 = await h.update(object)
        XCTAssertEqual(h.classify(value1), .retryable(.transient))
        faults = SimFaults()
        faults.resetRate = 1
        h.simulator.service.faults = faults
        guard case .failure(let reset) = await h.update(object) else { return XCTFail("reset answered") }
        XCTAssertEqual(reset.status, 0)
        XCTAssertEqual(Classifier.classify(reset), .retryable(.transient))
        faults = SimFaults()
        faults.slowRate = 1
        faults.slowSeconds = 3
        h.simulator.service.faults = faults
        guard case .failure(let slow) = await h.update(object) else { return XCTFail("slow answered in time") }
        XCTAssertTrue(slow.message.contains("curl code 28"), "timeout: \(slow)")
        faults = SimFaults()
        faults.errorIn200Rate = 1
        h.simulator.service.faults = faults
        guard case .failure(let in200) = await h.update(object) else { return XCTFail("200 with <Error> taken as success") }
        XCTAssertEqual(in200.status, 200)
        XCTAssertEqual(Classifier.classify(in200), .retryable(.transient))
        XCTAssertEqual(h.state.version(bucket: "bucket-a", key: "k")?.updates, 0)
    }

    func testThrottlingAnswersSlowDownAboveTheRate() async throws {
        let h = try SimHarness.withOneObject { $0.throttleRPS = 5 }
        var throttled = 0, kms = 0
        await withTaskGroup(of: Classification.self) { group in
            for _ in 0..<60 { group.addTask { h.classify(await h.update(ObjectRef(bucket: "bucket-a", key: "k"))) } }
            for await c in group where c == .retryable(.throttled(kms: false)) { throttled += 1 }
        }
        XCTAssertGreaterThan(throttled, 0)
        XCTAssertEqual(h.state.snapshotCounters.throttled, throttled)
        var kmsOnly = SimFaults()
        kmsOnly.kmsThrottleRPS = 1
        h.simulator.service.faults = kmsOnly
        for _ in 0..<10 where h.classify(await h.update(ObjectRef(bucket: "bucket-a", key: "k"))) == .retryable(.throttled(kms: true)) {
            kms += 1
        }
        XCTAssertGreaterThan(kms, 0, "the KMS variant of SlowDown is told apart")
    }

    /// Answers are held in quarter-millisecond slots, rounded up: never released before the latency asked for.
    func testLatencyFaultNeverAnswersEarly() async throws {
        let h = try SimHarness()
        h.bucket()
        h.state.putObject(bucket: "bucket-a", key: "k", encryption: .sseS3)
        var faults = SimFaults()
        faults.latency = .fixed(milliseconds: 30)
        h.simulator.service.faults = faults
        for _ in 0..<5 {
            let started = ContinuousClock.now
            let result = await h.update(ObjectRef(bucket: "bucket-a", key: "k"))
            XCTAssertEqual(h.classify(result), .succeeded)
            XCTAssertGreaterThanOrEqual(ContinuousClock.now - started, .milliseconds(30))
        }
    }

    func testThousandsOfConcurrentTransfersAllComplete() async throws {
        let h = try SimHarness()
        h.bucket()
        let n = 3000
        for i in 0..<n { h.state.putObject(bucket: "bucket-a", key: "k\(i)", encryption: .sseS3) }
        var faults = SimFaults()
        faults.latency = .fixed(milliseconds: 200)  // keeps them all in flight at once
        h.simulator.service.faults = faults
        let succeeded = await withTaskGroup(of: Bool.self) { group -> Int in
            for i in 0..<n { group.addTask { h.classify(await h.update(ObjectRef(bucket: "bucket-a", key: "k\(i)"))) == .succeeded } }
            var count = 0
            for await ok in group where ok { count += 1 }
            return count
        }
        XCTAssertEqual(succeeded, n)
        XCTAssertEqual(h.state.snapshotCounters.updateSuccesses, n)
        XCTAssertEqual(h.state.snapshotCounters.duplicateUpdates, 0)
    }
}
