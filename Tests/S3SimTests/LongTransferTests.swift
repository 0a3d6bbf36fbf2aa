import Foundation
import S3
import XCTest

/// GetObject streamed to a file (how `submit` reads an `s3://` manifest) and a large PutObject (a report file) are
/// bounded by stalls, not by the request timeout as a total: they may take minutes while their bytes keep moving.
final class LongTransferTests: XCTestCase {
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

extension LongTransferTests {
    /// 8 MiB up to a server that reads at most 5 MiB a second, with a 1 s request timeout: it arrives whole.
    func testALargeUploadThatKeepsFlowingOutlastsTheRequestTimeout() async throws {
        let server = try SlowReader(bytesPerRead: 128 * 1024, gapMilliseconds: 25)
        let client = try client(port: server.port, requestTimeout: 1)
        defer { client.shutdown() }
        let body = [UInt8](repeating: 0x61, count: 8 << 20)
        try await client.putObject(bucket: "bucket-a", key: "reports/results.csv", body: body, contentType: "text/csv")
        XCTAssertEqual(server.bodyBytes, body.count)
    }
}

/// Reads one request's body `bytesPerRead` at a time, `gapMilliseconds` apart, through a 64 KiB receive buffer (so
/// the sender's pace follows), then answers 200.
final class SlowReader: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let lock = NSLock()
    private var received = 0
    var bodyBytes: Int { lock.withLock { received } }

    init(bytesPerRead: Int, gapMilliseconds: Int) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var size: Int32 = 64 * 1024
        setsockopt(listener, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        port = try Self.listen(listener)
        Thread { [self] in
            let connection = accept(listener, nil, nil)
            guard connection >= 0 else { return }
            defer { close(connection) }
            var data: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: bytesPerRead)
            var length: Int?
            var bodyStart = 0
            while true {
                let n = read(connection, &buffer, buffer.count)
                guard n > 0 else { return }
                data.append(contentsOf: buffer[0..<n])
                if length == nil, let end = Self.headEnd(data) {
                    bodyStart = end
                    let head = String(decoding: data[0..<end], as: UTF8.self).lowercased()
                    length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                        .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
                }
                if let length {
                    let got = data.count - bodyStart
                    lock.withLock { received = got }
                    if got >= length { break }
                }
                usleep(useconds_t(gapMilliseconds * 1000))
            }
            let answer = Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)
            _ = answer.withUnsafeBytes { write(connection, $0.baseAddress, $0.count) }
        }.start()
    }

    static func headEnd(_ data: [UInt8]) -> Int? {
        guard data.count >= 4 else { return nil }
        for i in 0...(data.count - 4) where data[i] == 13 && data[i + 1] == 10 && data[i + 2] == 13 && data[i + 3] == 10 {
            return i + 4
        }
        return nil
    }

    /// Binds `fd` to a random loopback port and listens; returns the port.
    static func listen(_ fd: Int32) throws -> Int {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, 4) == 0 else { throw POSIXError(.EADDRNOTAVAIL) }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(listener) }
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
        port = try SlowReader.listen(listener)
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
