@testable import S3Sim
import XCTest

final class LoopCacheTests: XCTestCase {
    /// Each event loop numbers its own requests: the ids must still never repeat across loops.
    func testRequestIDsAreUniqueAcrossLoops() {
        let loops = (0..<4).map { LoopCache(index: $0) }
        var seen = Set<String>()
        for _ in 0..<5_000 {
            for loop in loops {
                let id = loop.nextRequestID()
                XCTAssertEqual(id.utf8.count, 16)
                XCTAssertTrue(id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x41...0x46).contains($0) }, id)
                XCTAssertTrue(seen.insert(id).inserted, "repeated request id \(id)")
            }
        }
    }

    /// A loop answers from its copy of the settings: a change made while it runs reaches it on its next request.
    func testSettingsChangesReachEachLoop() {
        let service = SimService(state: SimState())
        let loop = LoopCache(index: 0)
        service.refresh(loop)
        XCTAssertEqual(loop.faults.errorRate, 0)
        var faults = SimFaults()
        faults.errorRate = 0.5
        service.faults = faults
        service.refresh(loop)
        XCTAssertEqual(loop.faults.errorRate, 0.5)
        service.addCredential(SimCredential(accessKeyID: "AKIDOTHER", secretAccessKey: "s"))
        service.refresh(loop)
        XCTAssertEqual(loop.credentials["AKIDOTHER"]?.secretAccessKey, "s")
        XCTAssertNil(loop.lastSigningKey)
    }
}

extension LoopCacheTests {
    /// Regions are kept per loop, and forgotten when the buckets change: a bucket created (or moved) after a loop
    /// looked it up is seen at once.
    func testRegionsFollowChangesToTheBuckets() {
        let state = SimState()
        let loop = LoopCache(index: 0)
        XCTAssertNil(loop.region(of: "late", in: state))
        state.addBucket(SimBucket(name: "late", region: "eu-west-1"))
        XCTAssertEqual(loop.region(of: "late", in: state), "eu-west-1")
        state.withLock { buckets, _ in buckets["late"]?.region = "ap-south-1" }
        XCTAssertEqual(loop.region(of: "late", in: state), "ap-south-1")
        state.withLock { buckets, _ in buckets["late"] = nil }
        XCTAssertNil(loop.region(of: "late", in: state))
    }
}
