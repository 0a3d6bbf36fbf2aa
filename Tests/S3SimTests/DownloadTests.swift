import Foundation
import S3
import XCTest

/// GetObject streamed to a file (how `submit` reads an `s3://` manifest) is bounded by stalls, not by the request
/// timeout as a total: a large manifest may take minutes while its bytes keep coming.
final class DownloadTests: XCTestCase {
    private func client(port: Int, requestTimeout: Double) throws -> S3Client {
        var transport = TransportConfiguration()
        transport.requestTimeout = requestTimeout
        transport.connectTimeout = 2
        transport.drivers = 1
        return try S3Client(configuration: S3ClientConfiguration(endpoint: try S3Endpoint(url: "http://127.0.0.1:\(port)"),
                                                                 transport: transport),
                            credentials: StaticCredentialProvider(AWSCredentials(accessKeyID: "AKIDTEST", secretAccessKey: "secret")))
    }

    private func download(_ client: S3Client) async throws(S3Error) -> Data {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("download-\(UUID().uuidString)").path
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        defer { unlink(path) }
        do {
            defer { close(fd) }
            try await client.download(bucket: "bucket-a", key: "manifest.csv", to: fd)
        }
        return FileManager.default.contents(atPath: path) ?? Data()
    }

    /// 24 KiB over about 1.5 s, with a 1 s request timeout: it arrives whole.
    func testADownloadThatKeepsFlowingOutlastsTheRequestTimeout() async throws {
        let server = try DribbleServer(total: 24 * 1024, chunk: 2048, gapMilliseconds: 125)
        let client = try client(port: server.port, requestTimeout: 1)
        defer { client.shutdown() }
        let data = try await download(client)
        XCTAssertEqual(data.count, 24 * 1024)
        XCTAssertEqual(data, server.body)
    }

    /// A download that stops arriving is given up. Here nothing comes after the head: libcurl measures the speed over
    /// its last five seconds, so a stall after a burst of data would take up to five seconds more to show.
    func testAStalledDownloadFails() async throws {
        let server = try DribbleServer(total: 24 * 1024, chunk: 2048, gapMilliseconds: 10, stopAfter: 0)
        let client = try client(port: server.port, requestTimeout: 1)
        defer { client.shutdown() }
        do {
            _ = try await download(client)
            XCTFail("a stalled download completed")
        } catch {
            XCTAssertEqual(error.status, 0, "a transport failure: \(error)")
            XCTAssertTrue(error.message.contains("curl code 28"), "libcurl's operation timeout: \(error.message)")
        }
    }
}

/// Answers one request with `total` bytes, `chunk` at a time `gapMilliseconds` apart; with `stopAfter`, sends that
/// many and then holds the connection open without a byte more (for 10 s). Plain sockets on one thread: the point is
/// the timing of the body, which a framework's server would write at once.
final class DribbleServer: @unchecked Sendable {
    let port: Int
    let body: Data
    private let listener: Int32

    init(total: Int, chunk: Int, gapMilliseconds: Int, stopAfter: Int? = nil) throws {
        body = Data((0..<total).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(listener, 4) == 0 else { throw POSIXError(.EADDRNOTAVAIL) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
        let body = body
        Thread {
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            defer { close(connection) }
            var head: [UInt8] = []
            var byte: UInt8 = 0
            while read(connection, &byte, 1) == 1 {
                head.append(byte)
                if head.suffix(4) == [13, 10, 13, 10] { break }
            }
            let status = Array("HTTP/1.1 200 OK\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
            _ = status.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
            var sent = 0
            while sent < body.count {
                if let stopAfter, sent >= stopAfter {
                    sleep(10)
                    return
                }
                let n = min(chunk, body.count - sent)
                let written = body.withUnsafeBytes { write(connection, $0.baseAddress! + sent, n) }
                guard written > 0 else { return }
                sent += written
                usleep(useconds_t(gapMilliseconds * 1000))
            }
        }.start()
    }

    deinit { close(listener) }
}
