/// One object version to re-encrypt. `versionId == nil` means the current version.
public struct ObjectRef: Sendable, Hashable, CustomStringConvertible {
    public var bucket: String
    public var key: String
    public var versionId: String?

    public init(bucket: String, key: String, versionId: String? = nil) {
        self.bucket = bucket
        self.key = key
        self.versionId = versionId
    }

    public var description: String {
        "s3://\(bucket)/\(key)" + (versionId.map { " (version \($0))" } ?? "")
    }
}

/// Task state, PRODUCT.md §3: `pending` → `in_flight` (leased) → `succeeded` | `failed` | `skipped`.
public enum TaskState: String, Sendable, CaseIterable, Codable {
    case pending
    case inFlight = "in_flight"
    case succeeded, failed, skipped

    public var isTerminal: Bool { self == .succeeded || self == .failed || self == .skipped }
}

/// Outcome class, PRODUCT.md §3. Stable names: `status`, `retry --outcome` and reports use them.
/// A struct rather than an enum because `skipped-*` is an open family.
public struct OutcomeClass: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public var description: String { rawValue }

    public static let succeeded = OutcomeClass(rawValue: "succeeded")
    public static let objectLock = OutcomeClass(rawValue: "object-lock")
    public static let kmsKeyDenied = OutcomeClass(rawValue: "kms-key-denied")
    public static let accessDenied = OutcomeClass(rawValue: "access-denied")
    public static let unsupportedEncryption = OutcomeClass(rawValue: "unsupported-encryption")
    public static let invalidRequest = OutcomeClass(rawValue: "invalid-request")
    public static let notFound = OutcomeClass(rawValue: "not-found")
    public static let retriesExhausted = OutcomeClass(rawValue: "retries-exhausted")
    // Set at submit time from S3 Inventory columns: these tasks never cost a call.
    public static let skippedNotEncrypted = OutcomeClass(rawValue: "skipped-not-encrypted")
    public static let skippedSSEC = OutcomeClass(rawValue: "skipped-sse-c")
    public static let skippedDSSEKMS = OutcomeClass(rawValue: "skipped-dsse-kms")
    public static let skippedObjectLock = OutcomeClass(rawValue: "skipped-object-lock")

    /// Classes a failed task can carry (what `retry --outcome` accepts).
    public static let failureClasses: [OutcomeClass] = [
        .objectLock, .kmsKeyDenied, .accessDenied, .unsupportedEncryption, .invalidRequest, .notFound, .retriesExhausted,
    ]
    public static let skippedClasses: [OutcomeClass] = [.skippedNotEncrypted, .skippedSSEC, .skippedDSSEKMS, .skippedObjectLock]
    public static let all: [OutcomeClass] = [.succeeded] + failureClasses + skippedClasses

    public var isSkipped: Bool { rawValue.hasPrefix("skipped-") }
}
