@testable import S3Sim
import XCTest

/// The simulator's request-head parser, on bytes as they arrive from a socket.
final class HTTPCodecTests: XCTestCase {
    private func parse(_ text: String) throws -> SimHTTPCodec.Head? {
        try Array(text.utf8).withUnsafeBytes { try SimHTTPCodec.parseHead($0) }
    }

    func testAHeadIsReadWithItsFieldsOnlyOnceComplete() throws {
        let head = "PUT /b/k?encryption HTTP/1.1\r\nHost: 127.0.0.1:9\r\nX-Amz-Date:  20261130T000000Z \r\n"
            + "Content-Length: 5\r\nweird: a\rb\r\nConnection: close\r\n\r\n"
        // Every prefix (a head arriving a few bytes at a time) is incomplete, never an error.
        for cut in 0..<head.utf8.count {
            XCTAssertNil(try parse(String(decoding: Array(head.utf8)[..<cut], as: UTF8.self)), "complete at \(cut) bytes")
        }
        let parsed = try XCTUnwrap(try parse(head + "hello"))
        XCTAssertEqual(parsed.method, "PUT")
        XCTAssertEqual(parsed.uri, "/b/k?encryption")
        XCTAssertEqual(parsed.headLength, head.utf8.count)
        XCTAssertEqual(parsed.contentLength, 5)
        XCTAssertFalse(parsed.keepAlive)
        let request = SimRequest(method: parsed.method, uri: parsed.uri, fields: parsed.fields, body: [])
        XCTAssertEqual(request.header("x-amz-date"), "20261130T000000Z", "names lowercased, values trimmed")
        XCTAssertEqual(request.header("host"), "127.0.0.1:9")
        XCTAssertEqual(request.header("weird"), "a\rb", "a lone CR stays inside its value")
        XCTAssertEqual(request.headers.count, 5)
    }

    func testMalformedHeadsAreErrors() {
        XCTAssertThrowsError(try parse("GET /\r\n\r\n"), "request line without a version")
        XCTAssertThrowsError(try parse("GET / HTTP/2.0\r\n\r\n"), "unsupported version")
        XCTAssertThrowsError(try parse("GET / HTTP/1.1\r\nno colon here\r\n\r\n"), "field without a colon")
        XCTAssertThrowsError(try parse("PUT / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"), "negative length")
        XCTAssertThrowsError(try parse("PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"), "chunked body")
        XCTAssertNotNil(try parse("GET / HTTP/1.0\r\n\r\n"))
        XCTAssertEqual(try parse("GET / HTTP/1.0\r\n\r\n")?.keepAlive, false, "HTTP/1.0 closes by default")
    }
}
