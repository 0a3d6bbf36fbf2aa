import Domain

/// One task read from a manifest.
public struct ManifestEntry: Sendable, Equatable {
    public var object: ObjectRef
    /// Set when the manifest already says the call would fail (inventory encryption or Object Lock columns).
    public var skippedAs: OutcomeClass?
    public var line: Int
}

/// Manifest formats `submit --format` accepts.
public enum ManifestFormat: String, Sendable, CaseIterable {
    case auto, csv, inventory
}

/// Per-row checks shared by both formats: the bucket, the decoded key and the version id.
enum RowValidation {
    /// The decoded key, or the row's problem.
    static func key(_ raw: UnsafeBufferPointer<UInt8>) -> Result<String, InvalidInput> {
        if raw.isEmpty { return .failure(InvalidInput("the key is empty")) }
        switch PercentDecoding.decode(raw) {
        case .failure(let e): return .failure(InvalidInput("the key \(e.description)"))
        case .success(let key):
            if key.isEmpty { return .failure(InvalidInput("the key is empty")) }
            let n = key.utf8.count
            if n > ObjectKey.maxBytes {
                return .failure(InvalidInput("the key is \(n) bytes once decoded; S3 keys are at most \(ObjectKey.maxBytes)"))
            }
            return .success(key)
        }
    }

    static func bucket(_ raw: String) -> InvalidInput? {
        BucketName.problem(raw).map { InvalidInput($0) }
    }

    static func versionID(_ raw: String) -> InvalidInput? {
        if raw.utf8.count > 1024 { return InvalidInput("the version id is longer than 1,024 bytes") }
        if raw.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            return InvalidInput("the version id holds a control character")
        }
        return nil
    }
}
