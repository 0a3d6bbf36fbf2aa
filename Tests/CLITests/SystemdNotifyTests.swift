import Foundation
@testable import ReencryptdCLI
import XCTest

final class SystemdNotifyTests: XCTestCase {
    func testMessagesReachTheNotifySocket() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("notify-\(UUID().uuidString.prefix(8))").path
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        XCTAssertGreaterThanOrEqual(fd, 0)
        defer { close(fd); unlink(path) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path])
        XCTAssertTrue(notifier.enabled)
        notifier.send("READY=1\nSTATUS=testing")
        notifier.stopping()
        var buffer = [UInt8](repeating: 0, count: 256)
        var received: [String] = []
        for _ in 0..<2 {
            let n = recv(fd, &buffer, buffer.count, 0)
            XCTAssertGreaterThan(n, 0)
            received.append(String(decoding: buffer.prefix(max(0, n)), as: UTF8.self))
        }
        XCTAssertEqual(received, ["READY=1\nSTATUS=testing", "STOPPING=1"])
        XCTAssertFalse(SystemdNotifier(environment: [:]).enabled, "outside systemd it does nothing")
    }
}
