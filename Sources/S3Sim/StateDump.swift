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
    /// The full state (versions, locks, owners, regions), loadable again with `s3sim --population-file`.
    public var buckets: [SimBucket]

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
        buckets = state.snapshotBuckets.values.sorted { $0.name < $1.name }
    }

    /// Loads the buckets of a state file written by `--state-out` into `state`.
    public static func load(from path: String, into state: SimState) throws -> Int {
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        struct File: Decodable { let buckets: [SimBucket] }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: data)
        } catch {
            throw SimError("\(path) is not a state file written by s3sim --state-out (\(error))")
        }
        for bucket in file.buckets { state.addBucket(bucket) }
        return file.buckets.reduce(0) { $0 + $1.objects.count }
    }

    public func write(to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(self).write(to: URL(fileURLWithPath: path))
    }
}
