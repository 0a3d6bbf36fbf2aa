import Foundation

/// The simulator's state as JSON: counters and, per object version, its encryption and how it was called.
public struct SimStateDump: Codable, Sendable {
    public struct Object: Codable, Sendable {
        public var bucket: String
        public var key: String
        public var versionId: String
        public var encryption: SimEncryption
        public var calls: Int
        public var updates: Int
    }
    public var counters: SimCounters
    public var objects: [Object]

    public init(_ state: SimState) {
        counters = state.snapshotCounters
        var objects: [Object] = []
        for (name, bucket) in state.snapshotBuckets.sorted(by: { $0.key < $1.key }) {
            for (key, versions) in bucket.objects.sorted(by: { $0.key < $1.key }) {
                for v in versions where !v.isDeleteMarker {
                    objects.append(Object(bucket: name, key: key, versionId: v.versionID, encryption: v.encryption,
                                          calls: v.calls, updates: v.updates))
                }
            }
        }
        self.objects = objects
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}
