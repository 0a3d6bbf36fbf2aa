import Foundation
import S3
import S3Sim
import XCTest

/// Listing pages from stores other than S3 itself (the simulator's pages are in UpdateObjectEncryptionTests): one
/// that ignores `encoding-type`, and ones whose pages do not move on.
final class ListingTests: XCTestCase {
    private func client(_ answer: @escaping StubServer.Handler) throws -> (S3Client, StubServer) {
        let stub = StubServer()
        let url = try stub.start(answer)
        var transport = TransportConfiguration()
        transport.drivers = 1
        transport.requestTimeout = 5
        let client = try S3Client(configuration: S3ClientConfiguration(endpoint: try S3Endpoint(url: url), transport: transport),
                                  credentials: StaticCredentialProvider(AWSCredentials(accessKeyID: "AKIDTEST", secretAccessKey: "secret")))
        return (client, stub)
    }

    private func expectInvalidResponse(_ phrase: String, _ listing: () async throws(S3Error) -> Void,
                                       file: StaticString = #filePath, line: UInt = #line) async {
        do {
            try await listing()
            XCTFail("the listing ended without an error", file: file, line: line)
        } catch {
            XCTAssertEqual(error.code, "InvalidResponse", file: file, line: line)
            XCTAssertTrue(error.message.contains(phrase), error.message, file: file, line: line)
        }
    }

    /// A page without `<EncodingType>url` has plain keys: kept as sent, `%` and `+` included.
    func testKeysOfAPageWithoutEncodingTypeAreKeptAsTheyAre() async throws {
        let (client, stub) = try client { _ in
            (200, [("Content-Type", "application/xml")],
             "<ListBucketResult><IsTruncated>false</IsTruncated><Contents><Key>a+b%20c &amp; d</Key><Size>1</Size></Contents></ListBucketResult>")
        }
        defer { client.shutdown(); stub.stop() }
        let listed = try await client.listObjectsV2(bucket: "bucket-a")
        XCTAssertEqual(listed.map(\.key), ["a+b%20c & d"])
        XCTAssertTrue(stub.requests.first?.uri.contains("encoding-type=url") ?? false, "the listing asked for URL-encoded keys")
    }

    /// A truncated page that names a page already asked for as the next, or names no next page, is an error, not an
    /// endless or a silently short listing.
    func testPagesThatDoNotMoveOnAreErrors() async throws {
        let (sameToken, stub1) = try client { _ in
            (200, [], "<ListBucketResult><IsTruncated>true</IsTruncated><NextContinuationToken>t1</NextContinuationToken><Contents><Key>k</Key></Contents></ListBucketResult>")
        }
        defer { sameToken.shutdown(); stub1.stop() }
        await expectInvalidResponse("already listed") { () async throws(S3Error) in _ = try await sameToken.listObjectsV2(bucket: "bucket-a") }
        XCTAssertEqual(stub1.requests.count, 2, "the first page, then the same token once")

        let (noMarker, stub2) = try client { _ in
            (200, [], "<ListVersionsResult><IsTruncated>true</IsTruncated><Version><Key>k</Key><VersionId>v</VersionId></Version></ListVersionsResult>")
        }
        defer { noMarker.shutdown(); stub2.stop() }
        await expectInvalidResponse("names no next page") { () async throws(S3Error) in _ = try await noMarker.listObjectVersions(bucket: "bucket-a") }
        XCTAssertEqual(stub2.requests.count, 1)
    }
}
