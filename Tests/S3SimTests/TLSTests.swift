import Domain
import Foundation
import S3
import XCTest

/// TLS verification is always on for https, and the CA bundle (`ca_bundle`, `AWS_CA_BUNDLE`) is honoured.
final class TLSTests: XCTestCase {
    func testCertificatesAreVerifiedAndTheCABundleIsHonoured() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let cert = dir.appendingPathComponent("cert.pem").path, key = dir.appendingPathComponent("key.pem").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
                             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        openssl.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try openssl.run()
        openssl.waitUntilExit()
        XCTAssertEqual(openssl.terminationStatus, 0)
        let stub = Process()
        stub.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        stub.arguments = ["python3", URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/tls_stub.py").path, cert, key]
        let out = Pipe()
        stub.standardOutput = out
        try stub.run()
        defer { stub.terminate() }
        var line = Data()
        while !line.contains(0x0A) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line += chunk
        }
        let port = try XCTUnwrap(Int(String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)))

        func head(caBundle: String?) async throws -> S3Result {
            var transport = TransportConfiguration()
            transport.caBundle = caBundle
            transport.requestTimeout = 5
            let client = try S3Client(configuration: S3ClientConfiguration(endpoint: try S3Endpoint(url: "https://127.0.0.1:\(port)"),
                                                                           transport: transport),
                                      credentials: StaticCredentialProvider(AWSCredentials(accessKeyID: "AKID", secretAccessKey: "s")))
            defer { client.shutdown() }
            return await client.send(.headObject(ObjectRef(bucket: "b-1", key: "k")))
        }
        let expectation = expectation(description: "both calls")
        Task {
            // The self-signed certificate is not in the system store: refused.
            if case .failure(let e) = try await head(caBundle: nil) {
                XCTAssertEqual(e.status, 0)
                XCTAssertTrue(e.message.contains("curl code 60"), "certificate verification must fail: \(e)")
                // libcurl's own account of the failure (its error buffer), not only the code's generic text.
                XCTAssertTrue(e.message.contains("SSL certificate problem"), "the detail reaches the error: \(e)")
            } else {
                XCTFail("an untrusted certificate was accepted")
            }
            // Trusted through the bundle: the TLS handshake succeeds and the stand-in answers.
            if case .failure(let e) = try await head(caBundle: cert) { XCTFail("with the CA bundle: \(e)") }
            expectation.fulfill()
        }
        wait(for: [expectation], timeout: 30)
    }
}
