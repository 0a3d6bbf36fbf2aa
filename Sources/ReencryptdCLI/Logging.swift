import Config
import Foundation
import Logging

/// One line per event on stderr (journald), as text or JSON. Never given a secret: callers log S3 errors and counts,
/// and `PreparedRequest`/`AWSCredentials` descriptions omit Authorization and keys.
struct LineLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level
    let label: String
    let json: Bool

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let now = ISO8601DateFormatter().string(from: Date())
        let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
        var line: String
        if json {
            var object: [String: String] = ["time": now, "level": event.level.rawValue, "message": "\(event.message)", "logger": label]
            for (k, v) in all { object[k] = "\(v)" }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        } else {
            line = "\(now) \(event.level.rawValue) \(event.message)"
            if !all.isEmpty { line += " " + all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

enum Logs {
    /// LoggingSystem may be bootstrapped once per process; later calls (tests run many commands) keep the first.
    nonisolated(unsafe) private static var bootstrapped = false
    private static let lock = NSLock()

    static func logger(_ settings: LogSettings) -> Logger {
        lock.withLock {
            if !bootstrapped {
                bootstrapped = true
                let level = Logger.Level(rawValue: settings.level) ?? .info
                let json = settings.format == .json
                LoggingSystem.bootstrap { LineLogHandler(logLevel: level, label: $0, json: json) }
            }
        }
        return Logger(label: "reencryptd")
    }
}
