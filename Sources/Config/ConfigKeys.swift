/// A value as it arrives: typed from TOML, or text from the environment or a flag.
public enum RawSetting: Sendable, Equatable {
    case string(String), int(Int), double(Double), bool(Bool)

    var text: String {
        switch self {
        case .string(let s): return s
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .bool(let b): return String(b)
        }
    }
}

/// One configuration key: where it lives, which environment variables set it, and how a value is checked and applied.
/// The registry below drives the file parser, the environment, flags and the documentation test alike.
struct ConfigKey: Sendable {
    let section: String
    let name: String
    /// Extra environment variables, highest precedence first; `REENCRYPTD_<SECTION>_<NAME>` comes before them.
    let aliases: [String]
    let apply: @Sendable (inout Configuration, RawSetting) -> String?

    var dotted: String { "\(section).\(name)" }
    var environmentNames: [String] { ["REENCRYPTD_\(section.uppercased())_\(name.uppercased())"] + aliases }

    static func string(_ section: String, _ name: String, _ path: WritableKeyPath<Configuration, String> & Sendable,
                       aliases: [String] = [], check: (@Sendable (String) -> String?)? = nil) -> ConfigKey {
        ConfigKey(section: section, name: name, aliases: aliases) { config, raw in
            guard case .string(let s) = raw else { return "expected a string, got \(raw.text)" }
            if let problem = check?(s) { return problem }
            config[keyPath: path] = s
            return nil
        }
    }

    static func int(_ section: String, _ name: String, _ path: WritableKeyPath<Configuration, Int> & Sendable,
                    range: ClosedRange<Int>) -> ConfigKey {
        ConfigKey(section: section, name: name, aliases: []) { config, raw in
            let value: Int?
            switch raw {
            case .int(let i): value = i
            case .string(let s): value = Int(s.trimmingSpaces)
            default: value = nil
            }
            guard let value else { return "expected a whole number, got \(raw.text)" }
            guard range.contains(value) else { return "\(value) is out of range \(range.lowerBound)…\(range.upperBound)" }
            config[keyPath: path] = value
            return nil
        }
    }

    static func double(_ section: String, _ name: String, _ path: WritableKeyPath<Configuration, Double> & Sendable,
                       range: ClosedRange<Double>) -> ConfigKey {
        ConfigKey(section: section, name: name, aliases: []) { config, raw in
            let value: Double?
            switch raw {
            case .int(let i): value = Double(i)
            case .double(let d): value = d
            case .string(let s): value = Double(s.trimmingSpaces)
            default: value = nil
            }
            guard let value, value.isFinite else { return "expected a number, got \(raw.text)" }
            guard range.contains(value) else { return "\(raw.text) is out of range \(range.lowerBound)…\(range.upperBound)" }
            config[keyPath: path] = value
            return nil
        }
    }

    static func bool(_ section: String, _ name: String, _ path: WritableKeyPath<Configuration, Bool> & Sendable) -> ConfigKey {
        ConfigKey(section: section, name: name, aliases: []) { config, raw in
            switch raw {
            case .bool(let b): config[keyPath: path] = b
            case .string("true"), .string("1"), .string("yes"): config[keyPath: path] = true
            case .string("false"), .string("0"), .string("no"): config[keyPath: path] = false
            default: return "expected true or false, got \(raw.text)"
            }
            return nil
        }
    }

    static func choice<T: RawRepresentable & Sendable>(_ section: String, _ name: String,
                                                       _ path: WritableKeyPath<Configuration, T> & Sendable,
                                                       aliases: [String] = [], boolMap: (T, T)? = nil) -> ConfigKey
        where T.RawValue == String, T: CaseIterable {
        ConfigKey(section: section, name: name, aliases: aliases) { config, raw in
            let choices = T.allCases.map(\.rawValue).joined(separator: ", ")
            switch raw {
            case .bool(let b) where boolMap != nil:
                config[keyPath: path] = b ? boolMap!.0 : boolMap!.1
            case .string(let s):
                if let v = T(rawValue: s) { config[keyPath: path] = v }
                else if let boolMap, s == "true" { config[keyPath: path] = boolMap.0 }
                else if let boolMap, s == "false" { config[keyPath: path] = boolMap.1 }
                else { return "expected one of \(choices), got \(s)" }
            default: return "expected one of \(choices), got \(raw.text)"
            }
            return nil
        }
    }
}


extension String {
    var trimmingSpaces: Substring {
        let scalars = unicodeScalars
        let start = scalars.firstIndex { $0 != " " && $0 != "\t" } ?? scalars.endIndex
        let end = scalars.lastIndex { $0 != " " && $0 != "\t" }.map { scalars.index(after: $0) } ?? start
        return Substring(self[start..<max(start, end)])
    }
}

enum ConfigKeys {
    static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    static let all: [ConfigKey] = [
        .string("s3", "region", \.s3.region, aliases: ["AWS_REGION", "AWS_DEFAULT_REGION"]) { s in
            // Empty: unset (the profile's region, else us-east-1; see S3Settings.region).
            s.isEmpty || S3Settings.isRegionName(s) ? nil : "'\(s)' is not an AWS region name"
        },
        .string("s3", "endpoint", \.s3.endpoint, aliases: ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"]) { s in
            s.isEmpty || s.hasPrefix("http://") || s.hasPrefix("https://") ? nil : "'\(s)' is not an http:// or https:// URL"
        },
        .choice("s3", "path_style", \.s3.pathStyle, boolMap: (.always, .never)),
        .string("s3", "ca_bundle", \.s3.caBundle, aliases: ["AWS_CA_BUNDLE"]),
        .string("s3", "profile", \.s3.profile, aliases: ["AWS_PROFILE"]) { $0.isEmpty ? "the profile name is empty" : nil },
        .double("s3", "connect_timeout_seconds", \.s3.connectTimeoutSeconds, range: 0.1...600),
        .double("s3", "request_timeout_seconds", \.s3.requestTimeoutSeconds, range: 0.1...3600),

        .int("engine", "concurrency", \.engine.concurrency, range: 1...10_000),
        .double("engine", "max_rps", \.engine.maxRPS, range: 0...1_000_000),
        .double("engine", "max_rps_per_bucket", \.engine.maxRPSPerBucket, range: 0...1_000_000),
        .bool("engine", "adaptive", \.engine.adaptive),
        .int("engine", "max_attempts", \.engine.maxAttempts, range: 1...100),
        .double("engine", "backoff_base_seconds", \.engine.backoffBaseSeconds, range: 0.001...60),
        .double("engine", "backoff_cap_seconds", \.engine.backoffCapSeconds, range: 0.001...3600),
        .double("engine", "lease_seconds", \.engine.leaseSeconds, range: 5...86_400),
        .double("engine", "failure_threshold_percent", \.engine.failureThresholdPercent, range: 0...100),
        .int("engine", "failure_threshold_min_tasks", \.engine.failureThresholdMinTasks, range: 0...Int.max),
        .double("engine", "shutdown_grace_seconds", \.engine.shutdownGraceSeconds, range: 0...3600),

        .string("store", "path", \.store.path) { $0.isEmpty ? "the store path is empty" : nil },

        .string("metrics", "listen", \.metrics.listen) { s in
            if s.isEmpty { return nil }
            guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (0...65535).contains(port),
                  colon != s.startIndex else { return "'\(s)' is not host:port (e.g. 127.0.0.1:9464)" }
            return nil
        },

        .string("log", "level", \.log.level) { logLevels.contains($0) ? nil : "expected one of \(logLevels.joined(separator: ", ")), got \($0)" },
        .choice("log", "format", \.log.format),
    ]

    static let sections: [String] = ["s3", "engine", "store", "metrics", "log"]

    static func key(_ dotted: String) -> ConfigKey? { all.first { $0.dotted == dotted } }
}
