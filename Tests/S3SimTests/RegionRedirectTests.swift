import Domain
import Foundation
import S3
import S3Sim
import XCTest

/// A bucket in another region than the client signs for, met through HEAD requests: S3 answers a HEAD signed for the
/// wrong region with a bare 400 (no body to say AuthorizationHeaderMalformed), so the region comes from the
/// `x-amz-bucket-region` header, or from asking HeadBucket, as botocore's S3RegionRedirectorv2 does.
final class RegionRedirectTests: XCTestCase {
    /// HeadBucket names the bucket's region, and the client remembers it.
    func testHeadBucketNamesTheBucketsRegion() async throws {
        let h = try SimHarness(region: "us-east-1")
        h.bucket("eu-bucket", region: "eu-west-1")
        h.bucket("home-bucket", region: "us-east-1")
        // Signed for us-east-1 first: a bare 400 whose header names the region; re-signed, the success names it again.
        let euResult = await h.client.send(.headBucket("eu-bucket"))
        guard case .success(let eu) = euResult else { return XCTFail("HeadBucket failed: \(euResult)") }
        XCTAssertEqual(eu.header("x-amz-bucket-region"), "eu-west-1")
        XCTAssertEqual(h.client.knownRegion(of: "eu-bucket"), "eu-west-1")
        XCTAssertEqual(h.state.snapshotCounters.wrongRegion, 1)
        guard case .success(let home) = await h.client.send(.headBucket("home-bucket")) else { return XCTFail("HeadBucket failed") }
        XCTAssertEqual(home.header("x-amz-bucket-region"), "us-east-1")
        XCTAssertEqual(h.client.knownRegion(of: "home-bucket"), "us-east-1", "learnt from the success alone")
        guard case .failure(let missing) = await h.client.send(.headBucket("no-such-bucket")) else { return XCTFail("found") }
        XCTAssertEqual(missing.status, 404)
        XCTAssertEqual(missing.code, "NotFound", "a HEAD answer has no body: the code comes from the status")
        XCTAssertNil(h.client.knownRegion(of: "no-such-bucket"))
        XCTAssertEqual(h.state.snapshotCounters.wrongRegion, 1, "the other two went to the right region at once")
    }

    /// HeadObject (what `inspect` sends) on a bucket in another region: re-signed for it, once.
    func testHeadObjectFollowsTheRegionHeaderOfABare400() async throws {
        let h = try SimHarness(region: "us-east-1")
        h.bucket("eu-bucket", region: "eu-west-1")
        h.state.putObject(bucket: "eu-bucket", key: "k", encryption: .sseS3)
        let object = ObjectRef(bucket: "eu-bucket", key: "k")
        let result = await h.client.send(.headObject(object), object: object)
        guard case .success(let response) = result else { return XCTFail("HeadObject failed: \(result)") }
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(h.client.knownRegion(of: "eu-bucket"), "eu-west-1")
        XCTAssertEqual(h.state.snapshotCounters.wrongRegion, 1)
        guard case .success = await h.client.send(.headObject(object), object: object) else { return XCTFail("second HeadObject failed") }
        XCTAssertEqual(h.state.snapshotCounters.wrongRegion, 1, "the second went to the learnt region at once")
    }

    /// The region each request was signed for, from its credential scope.
    private static func signingRegion(_ r: SimRequest) -> String {
        let auth = r.headers.first { $0.name.lowercased() == "authorization" }?.value ?? ""
        guard let scope = auth.range(of: "Credential=") else { return "" }
        let parts = auth[scope.upperBound...].prefix { $0 != "," }.split(separator: "/")
        return parts.count > 2 ? String(parts[2]) : ""
    }

    private func client(for url: String) throws -> S3Client {
        var transport = TransportConfiguration()
        transport.requestTimeout = 5
        transport.drivers = 1
        return try S3Client(configuration: S3ClientConfiguration(endpoint: try S3Endpoint(url: url), region: "us-east-1",
                                                                 transport: transport),
                            credentials: StaticCredentialProvider(AWSCredentials(accessKeyID: "AKIDTEST", secretAccessKey: "secret")))
    }

    /// A bare 400 to HeadObject that names no region: the client asks HeadBucket, whose own bare 400 names it in the
    /// header, and sends the HeadObject again signed for that region.
    func testBare400WithoutRegionAsksHeadBucket() async throws {
        let stub = StubServer()
        let url = try stub.start { r in
            let region = Self.signingRegion(r)
            if region == "eu-west-1" { return (200, [("x-amz-bucket-region", "eu-west-1")], "") }
            let isBucket = r.uri.split(separator: "?")[0] == "/eu-bucket"
            return (400, isBucket ? [("x-amz-bucket-region", "eu-west-1")] : [], "")
        }
        defer { stub.stop() }
        let client = try client(for: url)
        defer { client.shutdown() }
        let object = ObjectRef(bucket: "eu-bucket", key: "k")
        let result = await client.send(.headObject(object), object: object)
        guard case .success(let response) = result else { return XCTFail("HeadObject failed: \(result)") }
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(client.knownRegion(of: "eu-bucket"), "eu-west-1")
        let seen = stub.requests.map { "\($0.method) \($0.uri.split(separator: "?")[0]) \(Self.signingRegion($0))" }
        XCTAssertEqual(seen, ["HEAD /eu-bucket/k us-east-1", "HEAD /eu-bucket us-east-1", "HEAD /eu-bucket/k eu-west-1"])
    }

    /// When HeadBucket names the region already signed for, the 400 was about something else: it is returned as it
    /// came, and the HeadObject is not sent again.
    func testBare400InTheRightRegionIsReturnedAsItIs() async throws {
        let stub = StubServer()
        let url = try stub.start { r in
            r.uri.split(separator: "?")[0] == "/bucket-a" ? (200, [("x-amz-bucket-region", "us-east-1")], "") : (400, [], "")
        }
        defer { stub.stop() }
        let client = try client(for: url)
        defer { client.shutdown() }
        let object = ObjectRef(bucket: "bucket-a", key: "k", versionId: "not-a-version")
        guard case .failure(let e) = await client.send(.headObject(object), object: object) else { return XCTFail("succeeded") }
        XCTAssertEqual(e.status, 400)
        XCTAssertEqual(e.code, "BadRequest")
        XCTAssertEqual(stub.requests.map(\.method), ["HEAD", "HEAD"], "the HeadObject, then HeadBucket; no second HeadObject")
        XCTAssertEqual(client.knownRegion(of: "bucket-a"), "us-east-1")
    }
}
