import ArgumentParser
import Domain
import Foundation
import S3

struct Inspect: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "HeadObject: print an object's encryption and Object Lock state.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "s3://bucket/key") var object: String
    @Option(name: .customLong("version-id"), help: "A specific version.") var versionID: String?

    func run() async throws {
        let uri = try S3URI(object)
        let client = try S3Wiring.client(try global.loadConfiguration())
        defer { client.shutdown() }
        let ref = ObjectRef(bucket: uri.bucket, key: uri.key, versionId: versionID)
        let state: ObjectEncryptionState
        do {
            state = try await client.headObject(ref)
        } catch {
            throw ObjectCallFailed(description: "\(error)")
        }
        print(Self.render(ref, state))
    }

    static func render(_ ref: ObjectRef, _ s: ObjectEncryptionState) -> String {
        let type: String
        switch s.type {
        case "AES256": type = "SSE-S3 (AES256)"
        case "aws:kms": type = "SSE-KMS"
        case "aws:kms:dsse": type = "DSSE-KMS"
        case "SSE-C": type = "SSE-C"
        default: type = "none (unencrypted)"
        }
        var lock = "none"
        if let mode = s.objectLockMode { lock = "\(mode) retention until \(s.objectLockRetainUntil ?? "?")" }
        if s.legalHold { lock = lock == "none" ? "legal hold" : lock + ", legal hold" }
        return """
            \(ref)
              version      \(s.versionID ?? "(unversioned)")
              encryption   \(type)
              kms key      \(s.kmsKeyID ?? "-")
              bucket key   \(s.bucketKeyEnabled ? "enabled" : "disabled")
              object lock  \(lock)
            """
    }
}

struct Update: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One UpdateObjectEncryption call; prints the outcome as `run` would classify it.",
        discussion: "Exit status 0 when the outcome is succeeded, 1 for any other outcome.")
    @OptionGroup var global: GlobalOptions
    @Argument(help: "s3://bucket/key") var object: String
    @Option(name: .customLong("version-id"), help: "A specific version.") var versionID: String?
    @Option(name: .customLong("kms-key-arn"), help: "Target KMS key ARN.") var kmsKeyARN: String
    @Flag(name: .customLong("bucket-key"), help: "Enable S3 Bucket Keys.") var bucketKey = false
    @Option(name: .customLong("expected-bucket-owner"), help: "12-digit account that must own the bucket.") var expectedBucketOwner: String?

    func run() async throws {
        let uri = try S3URI(object)
        let arn = try KMSKeyARN(kmsKeyARN)
        let owner = try expectedBucketOwner.map { try AccountID($0) }
        let client = try S3Wiring.client(try global.loadConfiguration())
        defer { client.shutdown() }
        let ref = ObjectRef(bucket: uri.bucket, key: uri.key, versionId: versionID)
        let result = await client.send(.updateObjectEncryption(ref, kmsKeyARN: arn.rawValue, bucketKeyEnabled: bucketKey,
                                                               expectedBucketOwner: owner?.rawValue), object: ref)
        switch result {
        case .success(let response):
            print("succeeded: \(ref) is now SSE-KMS with \(arn)\(bucketKey ? " and a bucket key" : "") "
                + "(request id \(response.header("x-amz-request-id") ?? "-"))")
        case .failure(let error):
            let outcome: String
            switch Classifier.classify(error) {
            case .terminal(let c): outcome = c.rawValue
            case .retryable(.throttled): outcome = "throttled (run would retry)"
            case .retryable(.transient): outcome = "transient error (run would retry)"
            case .clockSkew: outcome = "clock skew (run would retry)"
            case .wrongRegion: outcome = "wrong region (run would retry)"
            case .expiredCredentials: outcome = "expired credentials (run would refresh and retry)"
            case .succeeded: outcome = "succeeded"
            }
            print("\(outcome): \(error)")
            throw ExitCode.failure
        }
    }
}

/// A call that S3 (or the network) refused: exit 1 with S3's words.
struct ObjectCallFailed: Error, CustomStringConvertible {
    let description: String
}
