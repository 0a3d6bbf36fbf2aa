import S3
import Foundation
import NIOConcurrencyHelpers
import Synchronization

/// Server-side encryption of a stored object version.
public enum SimEncryption: Sendable, Equatable, Codable {
    case none
    case sseS3
    case sseKMS(keyARN: String, bucketKey: Bool)
    case sseC
    case dsseKMS(keyARN: String)

    /// The value of `x-amz-server-side-encryption` (or nil), as HeadObject reports it.
    var headerValue: String? {
        switch self {
        case .none, .sseC: return nil
        case .sseS3: return "AES256"
        case .sseKMS: return "aws:kms"
        case .dsseKMS: return "aws:kms:dsse"
        }
    }
}

/// Object Lock state of a version.
public struct SimLock: Sendable, Equatable, Codable {
    public enum Mode: String, Sendable, Codable { case governance = "GOVERNANCE", compliance = "COMPLIANCE" }
    public var mode: Mode?
    public var retainUntil: Date?
    public var legalHold = false

    public init(mode: Mode? = nil, retainUntil: Date? = nil, legalHold: Bool = false) {
        self.mode = mode
        self.retainUntil = retainUntil
        self.legalHold = legalHold
    }

    func isLocked(at now: Date) -> Bool {
        if legalHold { return true }
        if mode != nil, let until = retainUntil, until > now { return true }
        return false
    }
}

public struct SimVersion: Sendable, Equatable, Codable {
    public var versionID: String
    public var encryption: SimEncryption
    public var lock: SimLock
    public var isDeleteMarker: Bool
    public var body: [UInt8]
    public var lastModified: Date
    /// Successful UpdateObjectEncryption calls on this version (more than one is a duplicate).
    public var updates: Int
    /// Every UpdateObjectEncryption call that reached this version, whatever the answer.
    public var calls: Int
    /// When set, a policy denies UpdateObjectEncryption on this object (AccessDenied).
    public var denyUpdate: Bool
    /// When set, every UpdateObjectEncryption on this version answers 500 InternalError.
    public var broken = false

    public init(versionID: String, encryption: SimEncryption, lock: SimLock = SimLock(), isDeleteMarker: Bool = false,
                body: [UInt8] = [], lastModified: Date = Date(timeIntervalSince1970: 1_764_000_000), denyUpdate: Bool = false) {
        self.versionID = versionID
        self.encryption = encryption
        self.lock = lock
        self.isDeleteMarker = isDeleteMarker
        self.body = body
        self.lastModified = lastModified
        self.updates = 0
        self.calls = 0
        self.denyUpdate = denyUpdate
    }

    var etag: String { "\"" + md5Hex(body) + "\"" }
}

public struct SimBucket: Sendable, Codable {
    public var name: String
    public var region: String
    public var ownerAccount: String
    public var versioned: Bool
    /// Versions per key, oldest first; the last is the current one.
    public var objects: [String: [SimVersion]]

    public init(name: String, region: String = "us-east-1", ownerAccount: String = "111122223333", versioned: Bool = true) {
        self.name = name
        self.region = region
        self.ownerAccount = ownerAccount
        self.versioned = versioned
        self.objects = [:]
    }
}

/// Counters tests and benchmarks read after a run.
public struct SimCounters: Sendable, Equatable, Codable {
    public var requests = 0
    public var updateCalls = 0
    public var updateSuccesses = 0
    /// Successful updates of a version that had already been updated successfully.
    public var duplicateUpdates = 0
    public var throttled = 0
    public var kmsThrottled = 0
    public var injectedErrors = 0
    public var injectedResets = 0
    public var injectedSlow = 0
    public var injectedErrorIn200 = 0
    public var signatureFailures = 0
    public var wrongRegion = 0
    public var byStatus: [String: Int] = [:]

    mutating func countResponse(_ status: Int) {
        requests += 1
        byStatus[Self.statusKeys[status] ?? String(status), default: 0] += 1
    }

    private static let statusKeys: [Int: String] = Dictionary(uniqueKeysWithValues:
        [200, 204, 301, 400, 403, 404, 405, 500, 501, 503].map { ($0, String($0)) })
}

/// The simulator's buckets and counters behind one lock (NIOLock: cheap, uncontended in the common case).
public final class SimState: @unchecked Sendable {
    // All access goes through `lock`; that is what makes @unchecked Sendable sound.
    private let lock = NIOLock()
    private var buckets: [String: SimBucket] = [:]
    private var counters = SimCounters()
    private var nextVersion: UInt64 = 1
    /// Bumped (under `lock`) whenever buckets may have been added, removed or moved to another region, so that each
    /// event loop can keep the regions it has looked up (`LoopCache.region`) and know when to drop them.
    let bucketsGeneration = Atomic<UInt64>(0)

    public init() {}

    /// Anything may change here, buckets and their regions included.
    public func withLock<T>(_ body: (inout [String: SimBucket], inout SimCounters) throws -> T) rethrows -> T {
        try lock.withLock {
            defer { bucketsGeneration.add(1, ordering: .releasing) }
            return try body(&buckets, &counters)
        }
    }

    /// For operations on objects, which leave the buckets themselves as they are: a region looked up before stays true.
    func withObjects<T>(_ body: (inout [String: SimBucket], inout SimCounters) throws -> T) rethrows -> T {
        try lock.withLock { try body(&buckets, &counters) }
    }

    public func addBucket(_ bucket: SimBucket) {
        lock.withLock {
            buckets[bucket.name] = bucket
            bucketsGeneration.add(1, ordering: .releasing)
        }
    }

    /// Adds an object version; returns its version id.
    @discardableResult
    public func putObject(bucket: String, key: String, encryption: SimEncryption, lock objectLock: SimLock = SimLock(),
                          body: [UInt8] = [], denyUpdate: Bool = false) -> String {
        lock.withLock {
            let id = makeVersionID()
            let version = SimVersion(versionID: id, encryption: encryption, lock: objectLock, body: body, denyUpdate: denyUpdate)
            if buckets[bucket]?.versioned == false {
                buckets[bucket]?.objects[key] = [SimVersion(versionID: "null", encryption: encryption, lock: objectLock,
                                                            body: body, denyUpdate: denyUpdate)]
                return "null"
            }
            buckets[bucket]?.objects[key, default: []].append(version)
            return id
        }
    }

    func makeVersionID() -> String {
        // Opaque and URL-unsafe on purpose ('.', '_' and a mix of cases), like S3's.
        nextVersion &+= 1
        let n = nextVersion &* 0x9E37_79B9_7F4A_7C15
        return "v" + String(n, radix: 36) + ".Xq_" + String(nextVersion, radix: 36)
    }

    public func version(bucket: String, key: String, versionID: String? = nil) -> SimVersion? {
        lock.withLock {
            guard let versions = buckets[bucket]?.objects[key] else { return nil }
            if let versionID { return versions.first { $0.versionID == versionID } }
            return versions.last
        }
    }

    public var snapshotCounters: SimCounters { lock.withLock { counters } }
    public var snapshotBuckets: [String: SimBucket] { lock.withLock { buckets } }
    public func bucketRegion(_ name: String) -> String? { lock.withLock { buckets[name]?.region } }

    func count(_ body: (inout SimCounters) -> Void) { lock.withLock { body(&counters) } }
}

func md5Hex(_ bytes: [UInt8]) -> String {
    let digest = Crypto.md5(bytes)
    return Crypto.hex(digest)
}
