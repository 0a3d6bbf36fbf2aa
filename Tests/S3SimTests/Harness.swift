import Domain
import Foundation
import S3
@testable import S3Sim
import XCTest

let targetARN = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
let foreignARN = "arn:aws:kms:us-east-1:999988887777:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

/// A simulator on a random loopback port and a client for it.
final class SimHarness: Sendable {
    let simulator: S3Simulator
    let client: S3Client

    init(credentials: SimCredential = .default, clientCredentials: AWSCredentials? = nil, region: String = "us-east-1",
         requestTimeout: Double = 10, verifySignatures: Bool = true) throws {
        simulator = S3Simulator(credentials: [credentials], verifySignatures: verifySignatures)
        try simulator.start()
        var transport = TransportConfiguration()
        transport.requestTimeout = requestTimeout
        transport.connectTimeout = 2
        client = try S3Client(configuration: S3ClientConfiguration(endpoint: try S3Endpoint(url: simulator.endpointURL),
                                                                   region: region, transport: transport),
                              credentials: StaticCredentialProvider(clientCredentials ?? AWSCredentials(
                                  accessKeyID: credentials.accessKeyID, secretAccessKey: credentials.secretAccessKey,
                                  sessionToken: credentials.sessionToken)))
    }

    var state: SimState { simulator.state }

    /// A harness whose simulator holds `bucket-a` with one SSE-S3 object, `k`, and runs with `faults`.
    static func withOneObject(_ faults: (inout SimFaults) -> Void) throws -> SimHarness {
        let h = try SimHarness()
        h.bucket()
        h.state.putObject(bucket: "bucket-a", key: "k", encryption: .sseS3)
        var settings = SimFaults()
        faults(&settings)
        h.simulator.service.faults = settings
        return h
    }

    func bucket(_ name: String = "bucket-a", region: String = "us-east-1", owner: String = "111122223333") {
        state.addBucket(SimBucket(name: name, region: region, ownerAccount: owner))
    }

    func update(_ object: ObjectRef, arn: String = targetARN, bucketKey: Bool = true, owner: String? = nil) async -> S3Result {
        await client.send(.updateObjectEncryption(object, kmsKeyARN: arn, bucketKeyEnabled: bucketKey, expectedBucketOwner: owner),
                          object: object)
    }

    func classify(_ result: S3Result) -> Classification {
        switch result {
        case .success: return .succeeded
        case .failure(let e): return Classifier.classify(e)
        }
    }

    deinit {
        client.shutdown()
        simulator.stop()
    }
}
