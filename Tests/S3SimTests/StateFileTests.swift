import Foundation
@testable import S3Sim
import XCTest

final class StateFileTests: XCTestCase {
    func testStateWrittenOnExitSeedsAnotherSimulator() throws {
        let state = SimState()
        var spec = PopulationSpec()
        spec.objects = 200
        var population = Population(spec: spec)
        population.generate(into: state)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("state-\(UUID().uuidString).json").path
        defer { unlink(path) }
        try SimStateDump(state).write(to: path)
        let copy = SimState()
        XCTAssertEqual(try SimStateDump.load(from: path, into: copy), state.snapshotBuckets.values.reduce(0) { $0 + $1.objects.count })
        for e in population.entries {
            let a = state.version(bucket: e.object.bucket, key: e.object.key, versionID: e.object.versionId)
            XCTAssertEqual(a, copy.version(bucket: e.object.bucket, key: e.object.key, versionID: e.object.versionId))
        }
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).json").path
        defer { unlink(bad) }
        try Data("{}".utf8).write(to: URL(fileURLWithPath: bad))
        XCTAssertThrowsError(try SimStateDump.load(from: bad, into: SimState())) { error in
            XCTAssertTrue("\(error)".contains("is not a state file"), "\(error)")
        }
    }
}
