@testable import Engine
import XCTest

final class EndpointBreakerTests: XCTestCase {
    func open(at now: Double) -> EndpointBreaker {
        var b = EndpointBreaker()
        for i in 1..<EndpointBreaker.tripAfter { XCTAssertNil(b.record(unreachable: true, now: now), "opened after \(i)") }
        XCTAssertEqual(b.record(unreachable: true, now: now), .opened)
        return b
    }

    func testOpensOnlyAfterEnoughUnreachableAnswersInARow() {
        var b = EndpointBreaker()
        for _ in 0..<(EndpointBreaker.tripAfter - 1) { XCTAssertNil(b.record(unreachable: true, now: 0)) }
        // One answer from S3 anywhere (a 200, a 403, a throttle) starts the count again.
        XCTAssertNil(b.record(unreachable: false, now: 0))
        XCTAssertEqual(b.consecutiveUnreachable, 0)
        for _ in 0..<(EndpointBreaker.tripAfter - 1) { XCTAssertNil(b.record(unreachable: true, now: 0)) }
        XCTAssertFalse(b.isOpen)
        XCTAssertTrue(b.allowsCall(now: 0))
        XCTAssertEqual(b.record(unreachable: true, now: 0), .opened)
        XCTAssertTrue(b.isOpen)
    }

    func testWhileOpenOneProbeGoesOutPerCooldownAndTheCooldownDoubles() {
        var b = open(at: 100)
        XCTAssertFalse(b.allowsCall(now: 100.5), "nothing goes out during the cool-down")
        // Calls that were in flight when it opened answer without counting as a failed probe.
        XCTAssertNil(b.record(unreachable: true, now: 100.6))
        XCTAssertTrue(b.allowsCall(now: 101))
        b.sent()
        XCTAssertFalse(b.allowsCall(now: 101), "one probe at a time")
        XCTAssertEqual(b.record(unreachable: true, now: 101.1), .stillUnreachable)
        XCTAssertEqual(b.probeAt, 103.1, accuracy: 1e-9)
        XCTAssertFalse(b.allowsCall(now: 103))
        var now = 103.1
        var cooldowns: [Double] = []
        for _ in 0..<8 {
            XCTAssertTrue(b.allowsCall(now: now))
            b.sent()
            XCTAssertEqual(b.record(unreachable: true, now: now), .stillUnreachable)
            cooldowns.append(b.cooldown)
            now = b.probeAt
        }
        XCTAssertEqual(cooldowns, [4, 8, 16, 30, 30, 30, 30, 30], "doubling up to the cap")
    }

    func testAnAnswerFromS3ClosesItAndResetsTheCooldown() {
        var b = open(at: 0)
        b.sent()
        XCTAssertEqual(b.record(unreachable: false, now: 1), .closed)
        XCTAssertFalse(b.isOpen)
        XCTAssertTrue(b.allowsCall(now: 1))
        XCTAssertEqual(b.cooldown, EndpointBreaker.firstCooldown)
        XCTAssertNil(b.record(unreachable: false, now: 1), "closing is reported once")
    }
}
