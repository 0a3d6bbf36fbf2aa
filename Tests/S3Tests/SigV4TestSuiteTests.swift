import Foundation
@testable import S3
import XCTest

let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

/// The generic SigV4 test suite (aws-sig-v4-test-suite), header-signing variants: canonical request, string to sign
/// and signature must match exactly for every case.
final class SigV4TestSuiteTests: XCTestCase {
    struct Context: Decodable {
        struct Credentials: Decodable {
            let access_key_id: String
            let secret_access_key: String
            let token: String?
        }
        let credentials: Credentials
        let normalize: Bool
        let region: String
        let service: String
        let sign_body: Bool
        let timestamp: String
        let omit_session_token: Bool?
    }

    /// Parses the suite's `request.txt`: request line, headers with folded continuation lines, blank line, body.
    static func parseRequest(_ text: String) -> (method: String, path: String, query: [(String, String)],
                                                 headers: [(String, String)], body: String) {
        var lines = text.components(separatedBy: "\n")
        let requestLine = lines.removeFirst()
        let method = String(requestLine.prefix { $0 != " " })
        var target = String(requestLine.dropFirst(method.count + 1))
        if target.hasSuffix(" HTTP/1.1") { target.removeLast(" HTTP/1.1".count) }
        let pathPart = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var query: [(String, String)] = []
        if pathPart.count == 2, !pathPart[1].isEmpty {
            for pair in pathPart[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query.append((URIEncoding.decode(kv[0]) ?? String(kv[0]), kv.count > 1 ? (URIEncoding.decode(kv[1]) ?? String(kv[1])) : ""))
            }
        }
        var headers: [(String, String)] = []
        var bodyLines: [String] = []
        var inBody = false
        for line in lines {
            if inBody { bodyLines.append(line); continue }
            if line.isEmpty { inBody = true; continue }
            if line.first == " " || line.first == "\t", !headers.isEmpty {
                headers[headers.count - 1].1 += "\n" + line
                continue
            }
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            headers.append((String(parts[0]), parts.count > 1 ? String(parts[1]) : ""))
        }
        return (method, String(pathPart[0]), query, headers, bodyLines.joined(separator: "\n"))
    }

    func testEveryCaseOfTheGenericSuite() throws {
        let root = fixtures.appendingPathComponent("sigv4-test-suite")
        let cases = try FileManager.default.contentsOfDirectory(atPath: root.path).sorted()
        XCTAssertGreaterThanOrEqual(cases.count, 38)
        var checked = 0
        for name in cases {
            let dir = root.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: dir.appendingPathComponent("request.txt").path) else { continue }
            let context = try JSONDecoder().decode(Context.self, from: Data(contentsOf: dir.appendingPathComponent("context.json")))
            func expected(_ file: String) throws -> String {
                try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
            }
            var (method, path, query, headers, body) = Self.parseRequest(try expected("request.txt"))
            let date = try XCTUnwrap(SigV4Date(amzDate: context.timestamp.replacingOccurrences(of: "-", with: "")
                .replacingOccurrences(of: ":", with: "")))
            if !headers.contains(where: { $0.0.lowercased() == "x-amz-date" }) { headers.append(("X-Amz-Date", date.amzDate)) }
            let payloadHash = Crypto.sha256Hex(Array(body.utf8))
            if context.sign_body { headers.append(("X-Amz-Content-Sha256", payloadHash)) }
            if let token = context.credentials.token, context.omit_session_token != true {
                headers.append(("X-Amz-Security-Token", token))
            }
            let signer = SigV4Signer(service: context.service, region: context.region)
            let request = SigV4Request(method: method, canonicalURI: CanonicalURI.generic(path: path, normalize: context.normalize),
                                       query: query.map { (name: $0.0, value: $0.1) },
                                       headers: headers.map { (name: $0.0, value: $0.1) }, payloadHash: payloadHash)
            let credentials = AWSCredentials(accessKeyID: context.credentials.access_key_id,
                                             secretAccessKey: context.credentials.secret_access_key)
            let signed = signer.sign(request, credentials: credentials, date: date)
            XCTAssertEqual(signed.canonicalRequest, try expected("header-canonical-request.txt"), "canonical request of \(name)")
            XCTAssertEqual(signed.stringToSign, try expected("header-string-to-sign.txt"), "string to sign of \(name)")
            XCTAssertEqual(signed.signature, try expected("header-signature.txt").trimmingCharacters(in: .whitespacesAndNewlines),
                           "signature of \(name)")
            checked += 1
        }
        XCTAssertEqual(checked, cases.count, "every case has a request")
    }

    /// The S3 user guide's GET example (https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html).
    func testS3UserGuideGetObjectExample() {
        let signer = SigV4Signer(service: "s3", region: "us-east-1")
        let date = SigV4Date(amzDate: "20130524T000000Z")!
        let request = SigV4Request(method: "GET", canonicalURI: CanonicalURI.s3(bucket: nil, key: "test.txt"), headers: [
            ("Host", "examplebucket.s3.amazonaws.com"), ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", Crypto.emptySHA256), ("x-amz-date", date.amzDate),
        ], payloadHash: Crypto.emptySHA256)
        let signed = signer.sign(request, credentials: AWSCredentials(accessKeyID: "AKIAIOSFODNN7EXAMPLE",
                                                                      secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
                                 date: date)
        XCTAssertEqual(signed.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
    }

    /// RFC 4231 test cases 1, 2 and 6 (a key longer than a block), one-shot and with the key made once.
    func testHMACSHA256MatchesRFC4231() {
        let cases: [([UInt8], String, String)] = [
            ([UInt8](repeating: 0x0b, count: 20), "Hi There", "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"),
            (Array("Jefe".utf8), "what do ya want for nothing?", "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            ([UInt8](repeating: 0xaa, count: 131), "Test Using Larger Than Block-Size Key - Hash Key First",
             "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"),
        ]
        for (key, data, expected) in cases {
            XCTAssertEqual(Crypto.hex(Crypto.hmacSHA256(key: key, Array(data.utf8))), expected, data)
            let made = Crypto.HMACKey(key)
            XCTAssertEqual(Crypto.hex(made.mac(Array(data.utf8))), expected, data)
            XCTAssertEqual(Crypto.hex(made.mac(Array(data.utf8))), expected, "the key is reusable: \(data)")
        }
        XCTAssertEqual(Crypto.sha256Hex([UInt8]()), Crypto.emptySHA256)
    }

    func testAmzDateFormatsAndParses() {
        let d = SigV4Date(secondsSince1970: 1_440_938_160)
        XCTAssertEqual(d.amzDate, "20150830T123600Z")
        XCTAssertEqual(d.day, "20150830")
        XCTAssertEqual(SigV4Date(amzDate: "20150830T123600Z")?.secondsSince1970, 1_440_938_160)
        XCTAssertNil(SigV4Date(amzDate: "2015-08-30T12:36:00Z"))
    }

    func testCredentialsNeverPrintTheirSecrets() {
        let c = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "SECRETSECRET", sessionToken: "TOKENTOKEN")
        XCTAssertFalse("\(c)".contains("SECRETSECRET"))
        XCTAssertFalse("\(c)".contains("TOKENTOKEN"))
        XCTAssertFalse(String(reflecting: c).contains("SECRETSECRET"))
    }
}
