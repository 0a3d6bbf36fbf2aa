@testable import Config
import Foundation
import XCTest

/// The repository's documented config file.
let documentedConfig = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("config/reencryptd.toml").path

final class ConfigLoaderTests: XCTestCase {
    func writeConfig(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("cfg-\(UUID().uuidString).toml").path
        addTeardownBlock { unlink(path) }
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    func testDocumentedFileSetsEveryKeyToItsBuiltInDefault() throws {
        let text = try String(contentsOfFile: documentedConfig, encoding: .utf8)
        for dotted in ConfigLoader.allKeys {
            let name = String(dotted.split(separator: ".")[1])
            XCTAssertTrue(text.contains("\n\(name) = "), "config/reencryptd.toml does not document \(dotted)")
        }
        XCTAssertEqual(try ConfigLoader.load(path: documentedConfig, environment: [:]), Configuration())
    }

    func testPrecedenceIsFlagThenEnvironmentThenFileThenDefault() throws {
        let path = try writeConfig("""
            [engine]
            concurrency = 100
            max_rps = 50
            max_attempts = 4
            [s3]
            endpoint = "http://file.example:1"
            """)
        let env = ["REENCRYPTD_ENGINE_MAX_RPS": "70", "REENCRYPTD_ENGINE_CONCURRENCY": "200",
                   "AWS_ENDPOINT_URL": "http://generic:2", "AWS_ENDPOINT_URL_S3": "http://s3specific:3"]
        let config = try ConfigLoader.load(path: path, environment: env,
                                           flags: [(key: "engine.concurrency", value: "300", flag: "--concurrency")])
        XCTAssertEqual(config.engine.concurrency, 300)        // flag beats environment and file
        XCTAssertEqual(config.engine.maxRPS, 70)              // environment beats file
        XCTAssertEqual(config.engine.maxAttempts, 4)          // file beats default
        XCTAssertEqual(config.engine.leaseSeconds, 120)       // default
        XCTAssertEqual(config.s3.endpoint, "http://s3specific:3")  // AWS_ENDPOINT_URL_S3 before AWS_ENDPOINT_URL
        XCTAssertEqual(try ConfigLoader.load(path: nil, environment: ["AWS_ENDPOINT_URL": "http://generic:2"]).s3.endpoint,
                       "http://generic:2")
    }

    func testConfigPathComesFromFlagThenEnvironmentThenSystemFile() {
        XCTAssertEqual(ConfigLoader.configPath(flag: "/a", environment: ["REENCRYPTD_CONFIG": "/b"]) { _ in true }, "/a")
        XCTAssertEqual(ConfigLoader.configPath(flag: nil, environment: ["REENCRYPTD_CONFIG": "/b"]) { _ in true }, "/b")
        XCTAssertEqual(ConfigLoader.configPath(flag: nil, environment: [:]) { _ in true }, ConfigLoader.systemPath)
        XCTAssertNil(ConfigLoader.configPath(flag: nil, environment: [:]) { _ in false })
    }

    func testUnknownKeysAndSectionsAreRejectedByName() throws {
        let path = try writeConfig("[engine]\nconcurency = 5\n")
        XCTAssertThrowsError(try ConfigLoader.load(path: path, environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("unknown key 'engine.concurency'"), "\(error)")
            XCTAssertTrue("\(error)".contains(path))
        }
        let section = try writeConfig("[engin]\nconcurrency = 5\n")
        XCTAssertThrowsError(try ConfigLoader.load(path: section, environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("unknown section or key 'engin'"), "\(error)")
        }
        XCTAssertThrowsError(try ConfigLoader.load(path: nil, environment: ["REENCRYPTD_ENGINE_CONCURENCY": "5"])) { error in
            XCTAssertTrue("\(error)".contains("REENCRYPTD_ENGINE_CONCURENCY"), "\(error)")
        }
    }

    func testBadValuesAreRejectedNamingTheKey() throws {
        let cases: [(String, String)] = [
            ("[engine]\nconcurrency = \"many\"\n", "key 'engine.concurrency': expected a whole number"),
            ("[engine]\nconcurrency = 0\n", "key 'engine.concurrency': 0 is out of range"),
            ("[engine]\nadaptive = \"maybe\"\n", "key 'engine.adaptive': expected true or false"),
            ("[s3]\nendpoint = \"ftp://x\"\n", "key 's3.endpoint': 'ftp://x' is not an http:// or https:// URL"),
            ("[s3]\npath_style = \"sideways\"\n", "key 's3.path_style': expected one of auto, always, never"),
            ("[log]\nformat = \"xml\"\n", "key 'log.format'"),
            ("[metrics]\nlisten = \"nope\"\n", "key 'metrics.listen'"),
            ("[engine]\nmax_rps = -1\n", "key 'engine.max_rps'"),
        ]
        for (text, expected) in cases {
            let path = try writeConfig(text)
            XCTAssertThrowsError(try ConfigLoader.load(path: path, environment: [:])) { error in
                XCTAssertTrue("\(error)".contains(expected), "'\(error)' lacks '\(expected)'")
            }
        }
        XCTAssertThrowsError(try ConfigLoader.load(path: nil, environment: ["REENCRYPTD_ENGINE_MAX_ATTEMPTS": "x"])) { error in
            XCTAssertTrue("\(error)".contains("REENCRYPTD_ENGINE_MAX_ATTEMPTS (for engine.max_attempts)"), "\(error)")
        }
        XCTAssertThrowsError(try ConfigLoader.load(path: nil, environment: [:],
                                                   flags: [(key: "engine.concurrency", value: "-3", flag: "--concurrency")])) { error in
            XCTAssertTrue("\(error)".hasPrefix("--concurrency: "), "\(error)")
        }
    }

    func testTOMLSyntaxErrorNamesTheLine() throws {
        let path = try writeConfig("[engine]\nconcurrency = 5\nmax_rps = = 3\n")
        XCTAssertThrowsError(try ConfigLoader.load(path: path, environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("\(path), line 3"), "\(error)")
        }
        XCTAssertThrowsError(try ConfigLoader.load(path: "/nonexistent.toml", environment: [:])) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent.toml"), "\(error)")
        }
    }

    func testPathStyleAcceptsBooleansAndIntegersForDoubles() throws {
        let path = try writeConfig("[s3]\npath_style = true\n[engine]\nlease_seconds = 60\n")
        let config = try ConfigLoader.load(path: path, environment: [:])
        XCTAssertEqual(config.s3.pathStyle, .always)
        XCTAssertEqual(config.engine.leaseSeconds, 60)
    }
}
