/// A job: one re-encryption target (KMS key, bucket-key flag) applied to every task loaded into it.
public struct JobSpec: Sendable, Equatable {
    public var name: String
    public var kmsKeyARN: KMSKeyARN
    public var bucketKeyEnabled: Bool
    /// `x-amz-expected-bucket-owner`: when set, S3 refuses the call (403) if another account owns the bucket.
    public var expectedBucketOwner: AccountID?
    /// Higher runs first (best effort), as S3 Batch Operations' job priority.
    public var priority: Int

    public init(name: String, kmsKeyARN: KMSKeyARN, bucketKeyEnabled: Bool = false,
                expectedBucketOwner: AccountID? = nil, priority: Int = 0) {
        self.name = name
        self.kmsKeyARN = kmsKeyARN
        self.bucketKeyEnabled = bucketKeyEnabled
        self.expectedBucketOwner = expectedBucketOwner
        self.priority = priority
    }

    /// Job names appear in file names (`job-<name>/`), metrics labels and systemd status: keep them plain.
    public static func validateName(_ name: String) -> String? {
        if name.isEmpty { return "the job name is empty" }
        if name.utf8.count > 128 { return "the job name is longer than 128 bytes" }
        let allowed = name.unicodeScalars.allSatisfy {
            ($0 >= "a" && $0 <= "z") || ($0 >= "A" && $0 <= "Z") || ($0 >= "0" && $0 <= "9") || $0 == "-" || $0 == "_" || $0 == "."
        }
        if !allowed { return "the job name '\(name)' may hold only letters, digits, '-', '_' and '.'" }
        if name.hasPrefix(".") { return "the job name '\(name)' must not start with '.'" }
        return nil
    }
}

/// Job state, PRODUCT.md §3. `failed` means the failure threshold paused the job; `status` shows why.
public enum JobState: String, Sendable, CaseIterable, Codable {
    case active, paused, cancelled, complete, failed

    /// A finished job takes no more manifests and is never claimed from again.
    public var isFinished: Bool { self == .complete || self == .cancelled }
}

/// A stored job with its bookkeeping.
public struct Job: Sendable, Equatable {
    public var id: Int64
    public var spec: JobSpec
    public var state: JobState
    /// Why the job is in its state, when it was not an operator's command (e.g. the failure threshold).
    public var stateReason: String?
    public var createdAt: Double
    public var updatedAt: Double

    public init(id: Int64, spec: JobSpec, state: JobState, stateReason: String?, createdAt: Double, updatedAt: Double) {
        self.id = id
        self.spec = spec
        self.state = state
        self.stateReason = stateReason
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}
