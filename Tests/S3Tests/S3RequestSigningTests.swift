import Domain
import Foundation
@testable import S3
import XCTest

let exampleCredentials = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
let exampleARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

func header(_ r: PreparedRequest, _ name: String) -> String? {
    r.headers.first { $0.name.lowercased() == name.lowercased() }?.value
}

final class S3RequestSigningTests: XCTestCase {
    let signer = S3RequestSigner(endpoint: .aws(pathStyle: .always))

    /// `s3-update-object-encryption-signed.txt`: one request signed by botocore, reproduced to the byte.
    func testUpdateObjectEncryptionMatchesTheBotocoreSignedRequest() throws {
        let request = S3Request.updateObjectEncryption(ObjectRef(bucket: "examplebucket", key: "dir/my key+1.txt"),
                                                       kmsKeyARN: exampleARN, bucketKeyEnabled: true)
        let prepared = signer.prepare(request, region: "us-east-1", signer: SigV4Signer(service: "s3", region: "us-east-1"),
                                      credentials: exampleCredentials, date: SigV4Date(amzDate: "20150830T123600Z")!)
        let reference = try String(contentsOf: fixtures.appendingPathComponent("s3-update-object-encryption-signed.txt"),
                                   encoding: .utf8)
        XCTAssertTrue(reference.contains(" PUT \(prepared.url)\n"), prepared.url)
        XCTAssertEqual(prepared.url, "https://s3.us-east-1.amazonaws.com/examplebucket/dir/my%20key%2B1.txt?encryption")
        XCTAssertTrue(reference.contains("=== BODY\n\(String(decoding: prepared.body, as: UTF8.self))\n"))
        XCTAssertEqual(header(prepared, "x-amz-checksum-crc32"), "QY0GXA==")
        XCTAssertEqual(header(prepared, "x-amz-content-sha256"), "96218de76c3992be769f4ca1ece0871a1a38fc416e049ade451dc0451bf75543")
        XCTAssertEqual(header(prepared, "authorization"), "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/s3/aws4_request, "
            + "SignedHeaders=host;x-amz-checksum-crc32;x-amz-content-sha256;x-amz-date;x-amz-sdk-checksum-algorithm, "
            + "Signature=f6ab7cb7336e6f61e66dafd7f6066c513cfeeed01174daae2b726c1f0719f725")
    }

    /// Requests the client builds skip the signer's canonical checks; one whose headers were changed afterwards must
    /// not: its header is lowercased and trimmed as SigV4 says, signing the same as if given canonical.
    func testChangedHeadersAreCanonicalisedBeforeSigning() {
        let object = ObjectRef(bucket: "examplebucket", key: "k")
        let v4 = SigV4Signer(service: "s3", region: "us-east-1")
        let date = SigV4Date(amzDate: "20150830T123600Z")!
        var messy = S3Request.updateObjectEncryption(object, kmsKeyARN: exampleARN, bucketKeyEnabled: true)
        XCTAssertTrue(messy.headersAreCanonical)
        messy.headers.append(("X-Amz-Meta-Note", "  a   b "))
        XCTAssertFalse(messy.headersAreCanonical)
        var tidy = S3Request.updateObjectEncryption(object, kmsKeyARN: exampleARN, bucketKeyEnabled: true)
        tidy.headers.append(("x-amz-meta-note", "a b"))
        let a = signer.prepare(messy, region: "us-east-1", signer: v4, credentials: exampleCredentials, date: date)
        let b = signer.prepare(tidy, region: "us-east-1", signer: v4, credentials: exampleCredentials, date: date)
        XCTAssertEqual(header(a, "authorization"), header(b, "authorization"))
        XCTAssertTrue(header(a, "authorization")?.contains("x-amz-date;x-amz-meta-note;x-amz-sdk") == true)
    }

    static let awkwardKeys: [String] = [
        "with space", "plus+sign", "percent%20literal", "100%", "日本語/ключ/🔑.txt", "~!*'()&$=;:,?#[]@",
        "a//b", "./x/../y", "../up", "/leading-slash", "trailing-slash/", " lead and trail ", "tab\there",
        String(repeating: "k", count: 1024), String(repeating: "é", count: 512),
    ]

    /// The same requests signed by botocore on this machine must carry the same URL and Authorization.
    func testAwkwardKeysAgreeWithBotocore() throws {
        var cases: [[String: String]] = Self.awkwardKeys.map { ["bucket": "examplebucket", "key": $0, "arn": exampleARN] }
        cases.append(["bucket": "examplebucket", "key": "versioned key", "version_id": "3/L4kqtJl+cpXroDTDmJ.rmSp", "arn": exampleARN])
        let output = try runBotocore(cases)
        XCTAssertEqual(output.count, cases.count)
        for (theirs, c) in zip(output, cases) {
            let headers = try XCTUnwrap(theirs["headers"] as? [String: String])
            let date = try XCTUnwrap(SigV4Date(amzDate: try XCTUnwrap(headers["X-Amz-Date"])))
            let object = ObjectRef(bucket: c["bucket"]!, key: c["key"]!, versionId: c["version_id"])
            let prepared = signer.prepare(.updateObjectEncryption(object, kmsKeyARN: exampleARN, bucketKeyEnabled: true),
                                          region: "us-west-2", signer: SigV4Signer(service: "s3", region: "us-west-2"),
                                          credentials: exampleCredentials, date: date)
            let label = String(c["key"]!.prefix(40)).debugDescription
            // botocore orders query parameters as the model lists them; compare path and the parameter set.
            let theirURL = try XCTUnwrap(theirs["url"] as? String)
            XCTAssertEqual(Set(theirURL.split(separator: "?").last!.split(separator: "&")),
                           Set(prepared.url.split(separator: "?").last!.split(separator: "&")), "query for \(label)")
            XCTAssertEqual(theirURL.split(separator: "?").first, prepared.url.split(separator: "?").first,
                           "path for \(label)")
            XCTAssertEqual(headers["Authorization"], header(prepared, "authorization"), "signature for \(label)")
        }
    }

    func runBotocore(_ cases: [[String: String]]) throws -> [[String: Any]] {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", fixtures.appendingPathComponent("botocore_sign.py").path]
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        input.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: cases))
        try input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 0, "botocore script failed: \(stderr)")
        return try XCTUnwrap(JSONSerialization.jsonObject(with: data) as? [[String: Any]])
    }

    func testAddressingStyles() throws {
        let aws = S3Endpoint.aws()
        XCTAssertEqual(aws.address(bucket: "my-bucket", key: "k", region: "eu-west-1").host, "my-bucket.s3.eu-west-1.amazonaws.com")
        XCTAssertEqual(aws.address(bucket: "my-bucket", key: "a b", region: "eu-west-1").canonicalURI, "/a%20b")
        // Dotted bucket names over TLS: path style (the wildcard certificate does not cover them).
        let dotted = aws.address(bucket: "my.bucket", key: "k", region: "eu-west-1")
        XCTAssertEqual(dotted.host, "s3.eu-west-1.amazonaws.com")
        XCTAssertEqual(dotted.canonicalURI, "/my.bucket/k")
        let local = try S3Endpoint(url: "http://127.0.0.1:9000")
        let a = local.address(bucket: "b-1", key: "k", region: "us-east-1")
        XCTAssertEqual(a.host, "127.0.0.1:9000")
        XCTAssertEqual(a.urlPrefix + a.canonicalURI, "http://127.0.0.1:9000/b-1/k")
        XCTAssertEqual(try S3Endpoint(url: "http://localhost:1").address(bucket: "b-1", key: "k", region: "x").canonicalURI, "/b-1/k")
        XCTAssertEqual(try S3Endpoint(url: "https://minio.example").address(bucket: "b-1", key: "k", region: "x").host,
                       "b-1.minio.example")
        XCTAssertEqual(try S3Endpoint(url: "https://minio.example", pathStyle: .always)
            .address(bucket: "b-1", key: "k", region: "x").host, "minio.example")
        XCTAssertThrowsError(try S3Endpoint(url: "ftp://x"))
    }

    func testPreparedRequestDescriptionHidesAuthorizationAndToken() {
        let creds = AWSCredentials(accessKeyID: "AKID", secretAccessKey: "SECRET", sessionToken: "TOKEN-VALUE")
        let prepared = signer.prepare(.headObject(ObjectRef(bucket: "b-1", key: "k")), region: "us-east-1",
                                      signer: SigV4Signer(service: "s3", region: "us-east-1"), credentials: creds,
                                      date: SigV4Date(secondsSince1970: 0))
        XCTAssertNotNil(header(prepared, "authorization"))
        XCTAssertEqual(header(prepared, "x-amz-security-token"), "TOKEN-VALUE")
        XCTAssertFalse(prepared.description.contains("Signature="))
        XCTAssertFalse(prepared.description.contains("TOKEN-VALUE"))
    }
}
