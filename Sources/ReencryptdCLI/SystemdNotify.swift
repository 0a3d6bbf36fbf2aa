import Engine
import Foundation

/// systemd's readiness protocol over `$NOTIFY_SOCKET` (a datagram per message): READY=1 when the daemon runs,
/// STATUS= with progress, WATCHDOG=1 at half the watchdog interval, STOPPING=1 when draining. Does nothing outside
/// systemd. https://www.freedesktop.org/software/systemd/man/sd_notify.html
final class SystemdNotifier: @unchecked Sendable {
    private let path: String?
    private let fd: Int32
    private var timer: DispatchSourceTimer?

    init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        fd = path == nil ? -1 : socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    }

    deinit {
        timer?.cancel()
        if fd >= 0 { close(fd) }
    }

    var enabled: Bool { fd >= 0 }

    func send(_ message: String) {
        guard fd >= 0, let path else { return }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }  // abstract socket namespace
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else { return }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (i, b) in bytes.enumerated() { raw[i] = b }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        _ = message.withCString { text in
            withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, text, strlen(text), 0, $0, length) }
            }
        }
    }

    /// READY=1, then STATUS (and WATCHDOG=1 when `WATCHDOG_USEC` is set) every few seconds from `engine`'s progress.
    func start(engine: Engine, environment: [String: String] = ProcessInfo.processInfo.environment) {
        guard enabled else { return }
        send("READY=1\nSTATUS=starting")
        let watchdog = environment["WATCHDOG_USEC"].flatMap(Double.init).map { $0 / 1e6 }
        let interval = min(5, (watchdog ?? 10) / 2)
        let t = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "reencryptd.systemd"))
        t.schedule(deadline: .now() + interval, repeating: interval)
        t.setEventHandler { [weak self, weak engine] in
            guard let self, let engine else { return }
            let p = engine.snapshot
            var message = String(format: "STATUS=%d done (%d succeeded, %d failed), %.0f objects/s, %d in flight",
                                 p.recorded, p.succeeded, p.failed, p.ratePerSecond, p.inFlight)
            if p.s3Unreachable { message += "; S3 unreachable, calls held" }
            if watchdog != nil { message += "\nWATCHDOG=1" }
            self.send(message)
        }
        timer = t
        t.resume()
    }

    func stopping() {
        timer?.cancel()
        send("STOPPING=1")
    }
}
