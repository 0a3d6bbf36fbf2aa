import CZlib
import Domain
import Foundation
import Manifest
import S3

/// What a generated population holds, and what each object's task should end as.
public struct PopulationSpec: Sendable {
    public var objects = 1000
    public var buckets = 4
    public var bucketPrefix = "sim-bucket"
    public var ownerAccount = "111122223333"
    public var region = "us-east-1"
    public var seed: UInt64 = 1
    /// Shares of objects in each special state (the rest are SSE-S3, a fifth of those SSE-KMS under an old key).
    public var unencrypted = 0.01
    public var sseC = 0.005
    public var dsseKMS = 0.005
    public var governance = 0.005
    public var compliance = 0.005
    public var legalHold = 0.005
    public var denied = 0.005
    /// Listed in the manifests but absent from the bucket.
    public var missing = 0.005
    /// Listed with a malformed version id.
    public var badVersion = 0.002
    /// Every call fails with 500 (a persistently broken partition): ends as retries-exhausted.
    public var broken = 0.002
    /// In a bucket owned by another account, so the job's key is "from another account".
    public var foreignOwner = 0.003
    /// Keys with spaces, `+`, `%`, unicode, `//`, `./..`.
    public var awkwardKeys = 0.05
    /// Inventory rows that say SSE-S3 while the object is unencrypted (inventory is eventually consistent).
    public var staleInventory = 0.002

    public init() {}

    /// Every object SSE-S3 (a fifth SSE-KMS under an old key), plain keys: each task should succeed.
    public static func plain(objects: Int, buckets: Int, seed: UInt64) -> PopulationSpec {
        var s = PopulationSpec()
        s.objects = objects
        s.buckets = buckets
        s.seed = seed
        s.unencrypted = 0; s.sseC = 0; s.dsseKMS = 0; s.governance = 0; s.compliance = 0; s.legalHold = 0; s.denied = 0
        s.missing = 0; s.badVersion = 0; s.broken = 0; s.foreignOwner = 0; s.awkwardKeys = 0; s.staleInventory = 0
        return s
    }
}

/// One object of the population with the class its task should end with.
public struct PopulationEntry: Sendable, Equatable {
    public var object: ObjectRef
    /// Through a Batch Operations CSV manifest (every listed object is called).
    public var expectedViaCSV: OutcomeClass
    /// Through the inventory report (encryption and lock columns skip some at submit).
    public var expectedViaInventory: OutcomeClass
}

/// Generates objects into a simulator's state and writes matching manifests.
public struct Population: Sendable {
    public var spec: PopulationSpec
    public var entries: [PopulationEntry] = []
    /// The KMS key the population's owner account holds (a valid target).
    public var targetKeyARN: String { "arn:aws:kms:\(spec.region):\(spec.ownerAccount):key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0" }
    public static let foreignAccount = "444455556666"

    public init(spec: PopulationSpec) { self.spec = spec }

    var bucketNames: [String] { (0..<max(1, spec.buckets)).map { "\(spec.bucketPrefix)-\($0)" } }
    var foreignBucket: String { "\(spec.bucketPrefix)-foreign" }

    /// Creates the buckets and objects in `state` and records what each task should end as.
    public mutating func generate(into state: SimState) {
        let bucketNames = bucketNames  // built once: the property makes every name anew (with 2,000 buckets, a minute)
        for name in bucketNames { state.addBucket(SimBucket(name: name, region: spec.region, ownerAccount: spec.ownerAccount)) }
        state.addBucket(SimBucket(name: foreignBucket, region: spec.region, ownerAccount: Self.foreignAccount))
        var rng = SplitMix64(seed: spec.seed)
        let future = Date().addingTimeInterval(365 * 86400)
        let oldKey = "arn:aws:kms:\(spec.region):\(spec.ownerAccount):key/00000000-old0-key0-0000-000000000000"
        entries.reserveCapacity(spec.objects)
        for i in 0..<spec.objects {
            var roll = Double.random(in: 0..<1, using: &rng)
            func take(_ share: Double) -> Bool {
                if roll < share { return true }
                roll -= share
                return false
            }
            let key = Self.key(i, awkward: Double.random(in: 0..<1, using: &rng) < spec.awkwardKeys)
            var bucket = bucketNames[i % bucketNames.count]
            var encryption: SimEncryption = i % 5 == 0 ? .sseKMS(keyARN: oldKey, bucketKey: false) : .sseS3
            var lock = SimLock()
            var deny = false
            var csv = OutcomeClass.succeeded
            var inventory = OutcomeClass.succeeded
            var inventoryStatus: String? = nil
            var present = true
            var versionOverride: String? = nil
            if take(spec.unencrypted) {
                encryption = .none; csv = .unsupportedEncryption; inventory = .skippedNotEncrypted
            } else if take(spec.staleInventory) {
                encryption = .none; csv = .unsupportedEncryption; inventory = .unsupportedEncryption; inventoryStatus = "SSE-S3"
            } else if take(spec.sseC) {
                encryption = .sseC; csv = .unsupportedEncryption; inventory = .skippedSSEC
            } else if take(spec.dsseKMS) {
                encryption = .dsseKMS(keyARN: oldKey); csv = .unsupportedEncryption; inventory = .skippedDSSEKMS
            } else if take(spec.governance) {
                lock = SimLock(mode: .governance, retainUntil: future); csv = .objectLock; inventory = .skippedObjectLock
            } else if take(spec.compliance) {
                lock = SimLock(mode: .compliance, retainUntil: future); csv = .objectLock; inventory = .skippedObjectLock
            } else if take(spec.legalHold) {
                lock = SimLock(legalHold: true); csv = .objectLock; inventory = .skippedObjectLock
            } else if take(spec.denied) {
                deny = true; csv = .accessDenied; inventory = .accessDenied
            } else if take(spec.missing) {
                present = false; csv = .notFound; inventory = .notFound
            } else if take(spec.badVersion) {
                versionOverride = "bad version"; csv = .invalidRequest; inventory = .invalidRequest
            } else if take(spec.broken) {
                csv = .retriesExhausted; inventory = .retriesExhausted
            } else if take(spec.foreignOwner) {
                bucket = foreignBucket; csv = .kmsKeyDenied; inventory = .kmsKeyDenied
            }
            var versionID: String
            if present {
                versionID = state.putObject(bucket: bucket, key: key, encryption: encryption, lock: lock, denyUpdate: deny)
                if csv == .retriesExhausted { state.markBroken(bucket: bucket, key: key) }
            } else {
                versionID = "vmissing\(i)"
            }
            if let versionOverride { versionID = versionOverride }
            let entry = PopulationEntry(object: ObjectRef(bucket: bucket, key: key, versionId: versionID),
                                        expectedViaCSV: csv, expectedViaInventory: inventory)
            entries.append(entry)
            if let status = inventoryStatus { staleStatus[entries.count - 1] = status }
        }
    }

    /// Inventory rows whose EncryptionStatus is out of date, by entry index.
    var staleStatus: [Int: String] = [:]

    static func key(_ i: Int, awkward: Bool) -> String {
        guard awkward else { return "data/\(i % 100)/object-\(i).bin" }
        let shapes = ["with space \(i).txt", "plus+\(i)+sign", "percent%20\(i)%", "日本語/ключ-\(i)/🔑.txt",
                      "a//b/\(i)", "./x/../y-\(i)", " lead-and-trail-\(i) ", "~!*'()&$=;:,?#[]@-\(i)"]
        return "awkward/" + shapes[i % shapes.count]
    }

    /// Writes an S3 Batch Operations CSV manifest (`bucket,key,versionId`, keys URL-encoded).
    public func writeBatchCSV(to path: String, including include: (Int) -> Bool = { _ in true }) throws {
        guard FileManager.default.createFile(atPath: path, contents: nil), let out = FileHandle(forWritingAtPath: path) else {
            throw SimError("cannot write \(path)")
        }
        defer { try? out.close() }
        var buffer = ""
        for (index, e) in entries.enumerated() where include(index) {
            buffer += "\(e.object.bucket),\(ObjectKey.urlEncoded(e.object.key)),\(csvField(e.object.versionId ?? ""))\n"
            if buffer.utf8.count > 1 << 20 {
                out.write(Data(buffer.utf8))
                buffer = ""
            }
        }
        out.write(Data(buffer.utf8))
    }

    /// Writes an S3 Inventory report under `root` as S3 lays it out; returns the manifest.json path.
    public func writeInventory(root: String, including include: (Int) -> Bool = { _ in true }) throws -> String {
        let source = bucketNames.first ?? "sim"
        let base = "\(root)/\(source)/reencryptd-inventory"
        let dated = "\(base)/2026-11-29T00-00Z"
        try FileManager.default.createDirectory(atPath: "\(base)/data", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dated, withIntermediateDirectories: true)
        let dataKey = "\(source)/reencryptd-inventory/data/part-0.csv.gz"
        let dataPath = "\(root)/\(dataKey)"
        guard let gz = gzopen(dataPath, "wb") else { throw SimError("cannot write \(dataPath)") }
        var chunk = ""
        func flush() {
            let bytes = Array(chunk.utf8)
            _ = bytes.withUnsafeBytes { gzwrite(gz, $0.baseAddress, UInt32($0.count)) }
            chunk = ""
        }
        for (index, e) in entries.enumerated() where include(index) {
            let v = Self.simVersionFields(e, staleStatus: staleStatus[index])
            chunk += [e.object.bucket, ObjectKey.urlEncoded(e.object.key), e.object.versionId ?? "", "true", "false", "0",
                      v.status, "DISABLED", v.retainUntil, v.mode, v.legalHold].map(csvField).joined(separator: ",") + "\n"
            if chunk.utf8.count > 1 << 20 { flush() }
        }
        flush()
        gzclose(gz)
        let gzData = try Data(contentsOf: URL(fileURLWithPath: dataPath))
        let manifest: [String: Any] = [
            "sourceBucket": source, "destinationBucket": "arn:aws:s3:::inventory-destination", "version": "2016-11-30",
            "creationTimestamp": String(Int(Date().timeIntervalSince1970 * 1000)), "fileFormat": "CSV",
            "fileSchema": "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, EncryptionStatus, BucketKeyStatus, "
                + "ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus",
            "files": [["key": dataKey, "size": gzData.count, "MD5checksum": Crypto.hex(Crypto.md5(gzData))]],
        ]
        let json = try JSONSerialization.data(withJSONObject: manifest, options: [.sortedKeys])
        try json.write(to: URL(fileURLWithPath: "\(dated)/manifest.json"))
        try Data((Crypto.hex(Crypto.md5(json)) + "\n").utf8).write(to: URL(fileURLWithPath: "\(dated)/manifest.checksum"))
        return "\(dated)/manifest.json"
    }

    /// The inventory columns for an entry, from what its expected classes say about it.
    static func simVersionFields(_ e: PopulationEntry, staleStatus: String?) -> (status: String, retainUntil: String, mode: String, legalHold: String) {
        let future = "2099-01-01T00:00:00.000Z"
        switch e.expectedViaInventory {
        case .skippedNotEncrypted: return ("NOT-SSE", "", "", "OFF")
        case .skippedSSEC: return ("SSE-C", "", "", "OFF")
        case .skippedDSSEKMS: return ("DSSE-KMS", "", "", "OFF")
        case .skippedObjectLock: return ("SSE-S3", future, "GOVERNANCE", "OFF")
        default: return (staleStatus ?? "SSE-S3", "", "", "OFF")
        }
    }
}

func csvField(_ s: String) -> String {
    guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
    return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
}

public struct SimError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

extension SimState {
    /// Makes every UpdateObjectEncryption of this object fail with 500 (a persistently broken object).
    func markBroken(bucket: String, key: String) {
        withObjects { buckets, _ in
            guard var versions = buckets[bucket]?.objects[key] else { return }
            for i in versions.indices { versions[i].broken = true }
            buckets[bucket]?.objects[key] = versions
        }
    }
}
