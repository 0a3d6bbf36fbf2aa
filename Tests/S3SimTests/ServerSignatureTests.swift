import Domain
import Foundation
import S3
@testable import S3Sim
import XCTest

/// The simulator's own SigV4 check (bytes, from the server's side) against requests signed by the client's signer,
/// called in process: folded header values, repeated fields, unsorted query parameters, encoded paths.
final class ServerSignatureTests: XCTestCase {
    let credential = SimCredential.default

    func service() -> SimService {
        let state = SimState()
        state.addBucket(SimBucket(name: "bucket-a"))
        return SimService(state: state)
    }

    /// A GET signed with the client's signer; `signedHeadersOverride` replaces the signed-header list after signing,
    /// and `unsignedHeaders` are added after signing.
    func signedRequest(path: String, key: String, query: [(String, String)], rawQuery: String,
                       extraHeaders: [(String, String)] = [], signedHeadersOverride: String? = nil,
                       unsignedHeaders: [(String, String)] = []) -> SimRequest {
        let date = SigV4Date(Date())
        var headers: [(name: String, value: String)] = [("Host", "127.0.0.1:9000"), ("X-Amz-Date", date.amzDate),
                                                        ("x-amz-content-sha256", Crypto.emptySHA256)]
        headers += extraHeaders.map { (name: $0.0, value: $0.1) }
        let signer = SigV4Signer(service: "s3", region: "us-east-1")
        let signed = signer.sign(SigV4Request(method: "GET", canonicalURI: CanonicalURI.s3(bucket: "bucket-a", key: key),
                                              query: query, headers: headers, payloadHash: Crypto.emptySHA256),
                                 credentials: AWSCredentials(accessKeyID: credential.accessKeyID,
                                                             secretAccessKey: credential.secretAccessKey),
                                 date: date)
        var authorization = signed.authorization
        if let override = signedHeadersOverride {
            authorization = authorization.replacingOccurrences(of: "SignedHeaders=" + signed.signedHeaders,
                                                               with: "SignedHeaders=" + override)
        }
        headers.append(("Authorization", authorization))
        headers += unsignedHeaders.map { (name: $0.0, value: $0.1) }
        return SimRequest(method: "GET", uri: path + (rawQuery.isEmpty ? "" : "?" + rawQuery), headers: headers, body: [])
    }

    func code(_ response: SimResponse) -> String? {
        let body = String(decoding: response.body, as: UTF8.self)
        guard let a = body.range(of: "<Code>"), let b = body.range(of: "</Code>") else { return nil }
        return String(body[a.upperBound..<b.lowerBound])
    }

    func testAuthorizationHeaderNeedsFiveCredentialPartsAndEveryComponent() throws {
        func parse(_ text: String) -> (AuthorizationHeader, [UInt8])? {
            let bytes = Array(text.utf8)
            return bytes.withUnsafeBufferPointer { AuthorizationHeader($0, 0..<bytes.count) }.map { ($0, bytes) }
        }
        let credential = "AKID/20261130/eu-west-1/s3/aws4_request"
        let (auth, bytes) = try XCTUnwrap(parse("AWS4-HMAC-SHA256 Credential=\(credential), SignedHeaders=host;x-amz-date, Signature=abc"))
        let text = { (r: Range<Int>) in String(decoding: bytes[r], as: UTF8.self) }
        XCTAssertEqual([auth.accessKeyID, auth.day, auth.region, auth.service, auth.terminator].map(text),
                       ["AKID", "20261130", "eu-west-1", "s3", "aws4_request"])
        XCTAssertEqual(text(auth.credential), credential)
        XCTAssertEqual(text(auth.signedHeaders), "host;x-amz-date")
        XCTAssertEqual(text(auth.signature), "abc")
        for malformed in [
            "Credential=AKID/20261130/eu-west-1/s3, SignedHeaders=host, Signature=abc",  // four parts
            "Credential=AKID/20261130/eu-west-1/s3/aws4_request/x, SignedHeaders=host, Signature=abc",  // six
            "Credential=/20261130/eu-west-1/s3/aws4_request, SignedHeaders=host, Signature=abc",  // no access key id
            "Credential=\(credential), SignedHeaders=host",  // no signature
            "Credential=\(credential), SignedHeaders=host, Signature=abc, Extra=1",  // a component S3 does not know
        ] {
            XCTAssertNil(parse("AWS4-HMAC-SHA256 " + malformed), malformed)
        }
        XCTAssertNil(parse("AWS4-HMAC-SHA1 Credential=\(credential), SignedHeaders=host, Signature=abc"), "another scheme")
    }

    func testAwkwardPathFoldedValuesRepeatedFieldsAndUnsortedQueryVerify() {
        let sim = service()
        // The key decoded from the path is re-encoded once: "%2B" and "+" both mean '+', "%7E" is '~'.
        let request = signedRequest(
            path: "/bucket-a/a%20b/%2Bc%7E/d+e",
            key: "a b/+c~/d+e",
            query: [("versions", ""), ("prefix", "x y"), ("max-keys", "2")],
            rawQuery: "versions&prefix=x%20y&max-keys=2",
            extraHeaders: [("X-Amz-Meta-Note", "  two   spaces\tand a tab "), ("x-amz-meta-list", "a"), ("X-Amz-Meta-List", "b")])
        let response = sim.handle(request)
        // GET of a missing key: past the signature check, S3 answers NoSuchKey.
        XCTAssertEqual(code(response), "NoSuchKey", String(decoding: response.body, as: UTF8.self))
        XCTAssertEqual(sim.state.snapshotCounters.signatureFailures, 0)
    }

    func testSignedHeadersOutOfOrderOrMissingAreRefused() {
        let sim = service()
        let reordered = signedRequest(path: "/bucket-a/k", key: "k", query: [], rawQuery: "",
                                      signedHeadersOverride: "x-amz-date;host;x-amz-content-sha256")
        XCTAssertEqual(code(sim.handle(reordered)), "SignatureDoesNotMatch")
        let missing = signedRequest(path: "/bucket-a/k", key: "k", query: [], rawQuery: "",
                                    signedHeadersOverride: "host;x-amz-content-sha256;x-amz-date;x-amz-meta-absent")
        XCTAssertEqual(code(sim.handle(missing)), "SignatureDoesNotMatch")
        XCTAssertEqual(sim.state.snapshotCounters.signatureFailures, 2)
    }

    /// S3 refuses a request carrying an `x-amz-*` header, or a Host, that its signature does not cover. The unsigned
    /// header here has the same length as a signed one (`x-amz-meta`, `x-amz-date`), so only a comparison of the names
    /// themselves tells them apart.
    func testUnsignedAmzHeadersAndAnUnsignedHostAreRefused() {
        let sim = service()
        let signed = signedRequest(path: "/bucket-a/k", key: "k", query: [], rawQuery: "")
        XCTAssertNotEqual(code(sim.handle(signed)), "AccessDenied", "the same request fully signed passes this check")
        let extra = signedRequest(path: "/bucket-a/k", key: "k", query: [], rawQuery: "", unsignedHeaders: [("x-amz-meta", "v")])
        let refused = sim.handle(extra)
        XCTAssertEqual(code(refused), "AccessDenied")
        XCTAssertTrue(String(decoding: refused.body, as: UTF8.self).contains("<HeadersNotSigned>x-amz-meta</HeadersNotSigned>"))
        let hostless = signedRequest(path: "/bucket-a/k", key: "k", query: [], rawQuery: "",
                                     signedHeadersOverride: "x-amz-content-sha256;x-amz-date")
        XCTAssertEqual(code(sim.handle(hostless)), "AccessDenied")
    }

    func testTamperedQueryValueOrPathIsRefusedWithTheCanonicalRequest() {
        let sim = service()
        let request = signedRequest(path: "/bucket-a/k", key: "k", query: [("versionId", "v1")], rawQuery: "versionId=v2")
        let response = sim.handle(request)
        XCTAssertEqual(code(response), "SignatureDoesNotMatch")
        let body = String(decoding: response.body, as: UTF8.self)
        XCTAssertTrue(body.contains("<CanonicalRequest>GET\n/bucket-a/k\nversionId=v2\n"), body)
        let badEscape = signedRequest(path: "/bucket-a/k%zz", key: "k", query: [], rawQuery: "")
        XCTAssertEqual(code(sim.handle(badEscape)), "InvalidURI")
    }

    func testAmzDateParsesAsTheCalendarDoesAndRefusesMalformedDates() {
        for seconds in [0, 951_782_400, 1_709_164_800, 1_764_000_000, 1_798_761_599, 4_102_444_800] {
            let text = SigV4Date(secondsSince1970: seconds).amzDate
            XCTAssertEqual(SigV4Date.secondsSince1970(amzDate: Array(text.utf8)[...]), seconds, text)
        }
        for bad in ["20261129T151652", "20261129X151652Z", "2026112aT151652Z", "20261329T151652Z", "20261129T251652Z"] {
            XCTAssertNil(SigV4Date.secondsSince1970(amzDate: Array(bad.utf8)[...]), bad)
        }
    }

    func testIPLiteralsAreToldFromBucketHostnames() {
        XCTAssertTrue(S3Endpoint.isIPLiteral("127.0.0.1"))
        XCTAssertTrue(S3Endpoint.isIPLiteral("::1"))
        XCTAssertFalse(S3Endpoint.isIPLiteral("bucket-a.localhost"))
        XCTAssertFalse(S3Endpoint.isIPLiteral("1.2.3"))
        XCTAssertFalse(S3Endpoint.isIPLiteral("256.1.1.1"))
        XCTAssertFalse(S3Endpoint.isIPLiteral("my.bucket.1.2"))
    }
}

extension SimService {
    /// In process, as one of the server's event loops answers it (a fresh loop cache: no cached credential or key).
    func handle(_ request: SimRequest) -> SimResponse { handle(request, on: LoopCache(index: 0)) }
}
