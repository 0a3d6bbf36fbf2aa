@testable import S3Sim
import XCTest

final class SchedulingTests: XCTestCase {
    /// The simulator's loops must not preempt the client they serve on every answer: they run SCHED_BATCH (3).
    func testEventLoopsRunAsBatchWork() throws {
        let batch = S3Simulator(threads: 2)
        try batch.start()
        defer { batch.stop() }
        XCTAssertEqual(try batch.schedulingPolicies(), [3, 3])
        let plain = S3Simulator(threads: 1, batchScheduling: false)
        try plain.start()
        defer { plain.stop() }
        XCTAssertEqual(try plain.schedulingPolicies(), [SCHED_OTHER])
    }
}
