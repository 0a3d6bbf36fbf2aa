import Domain
import Foundation
import TOMLKit

/// A configuration problem: where it came from (file, environment variable or flag), the key and what is wrong.
public struct ConfigError: InputError, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Builds a `Configuration` with precedence flag > environment > file > built-in default (PRODUCT.md §2).
public enum ConfigLoader {
    /// The file used when neither `--config` nor `$REENCRYPTD_CONFIG` names one, if it exists.
    public static let systemPath = "/etc/reencryptd/reencryptd.toml"

    /// Which file to read: `--config`, else `$REENCRYPTD_CONFIG`, else the system file if it exists, else none.
    public static func configPath(flag: String?, environment: [String: String],
                                  fileExists: (String) -> Bool = { FileManager.default.fileExists(atPath: $0) }) -> String? {
        if let flag, !flag.isEmpty { return flag }
        if let env = environment["REENCRYPTD_CONFIG"], !env.isEmpty { return env }
        return fileExists(systemPath) ? systemPath : nil
    }

    /// Loads defaults, then the file, then the environment, then `flags` (dotted key → value, with the flag's name).
    public static func load(path: String?, environment: [String: String],
                            flags: [(key: String, value: String, flag: String)] = []) throws -> Configuration {
        var config = Configuration()
        if let path { try applyFile(path, to: &config) }
        try applyEnvironment(environment, to: &config)
        for (dotted, value, flag) in flags {
            guard let key = ConfigKeys.key(dotted) else { throw ConfigError("\(flag): no configuration key \(dotted)") }
            if let problem = key.apply(&config, .string(value)) { throw ConfigError("\(flag): \(problem)") }
        }
        return config
    }

    public static func applyFile(_ path: String, to config: inout Configuration) throws {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "it is not readable" : "it does not exist"
            throw ConfigError("config file \(path): cannot read it (\(reason))")
        }
        defer { try? handle.close() }
        let data: Data
        do {
            data = try handle.readToEnd() ?? Data()
        } catch {
            throw ConfigError("config file \(path): cannot read it (\(error.localizedDescription))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError("config file \(path): is not UTF-8 text")
        }
        try apply(toml: text, origin: path, to: &config)
    }

    public static func apply(toml text: String, origin: String, to config: inout Configuration) throws {
        let table: TOMLTable
        do {
            table = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            throw ConfigError("config file \(origin), line \(error.source.begin.line): \(error.description)")
        }
        for section in table.keys {
            guard ConfigKeys.sections.contains(section) else {
                throw ConfigError("config file \(origin): unknown section or key '\(section)' (known sections: "
                    + ConfigKeys.sections.joined(separator: ", ") + ")")
            }
            guard let values = table[section]?.table else {
                throw ConfigError("config file \(origin): '\(section)' must be a table ([\(section)])")
            }
            for name in values.keys {
                let dotted = "\(section).\(name)"
                guard let key = ConfigKeys.key(dotted), let value = values[name] else {
                    let known = ConfigKeys.all.filter { $0.section == section }.map(\.name).joined(separator: ", ")
                    throw ConfigError("config file \(origin): unknown key '\(dotted)' (known keys in [\(section)]: \(known))")
                }
                guard let raw = rawSetting(value) else {
                    throw ConfigError("config file \(origin): key '\(dotted)': unsupported value type \(value.type)")
                }
                if let problem = key.apply(&config, raw) {
                    throw ConfigError("config file \(origin): key '\(dotted)': \(problem)")
                }
            }
        }
    }

    private static func rawSetting(_ value: TOMLValueConvertible) -> RawSetting? {
        if let s = value.string { return .string(s) }
        if let i = value.int { return .int(i) }
        if let d = value.double { return .double(d) }
        if let b = value.bool { return .bool(b) }
        return nil
    }

    public static func applyEnvironment(_ environment: [String: String], to config: inout Configuration) throws {
        for key in ConfigKeys.all {
            // The first variable that is set wins (REENCRYPTD_… before the AWS ones).
            guard let (name, value) = key.environmentNames.lazy.compactMap({ n in environment[n].map { (n, $0) } }).first,
                  !value.isEmpty else { continue }
            if let problem = key.apply(&config, .string(value)) {
                throw ConfigError("environment variable \(name) (for \(key.dotted)): \(problem)")
            }
        }
        // A misspelt REENCRYPTD_ variable would otherwise be ignored silently.
        let known = Set(ConfigKeys.all.flatMap(\.environmentNames) + ["REENCRYPTD_CONFIG"])
        if let unknown = environment.keys.sorted().first(where: { $0.hasPrefix("REENCRYPTD_") && !known.contains($0) }) {
            throw ConfigError("environment variable \(unknown) is not a reencryptd setting")
        }
    }

    /// Every key as `section.name`, for documentation checks.
    public static var allKeys: [String] { ConfigKeys.all.map(\.dotted) }
}
