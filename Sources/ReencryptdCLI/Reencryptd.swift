import ArgumentParser
import Config
import Domain
import Foundation
import JobStore

/// The `reencryptd` command: one root, subcommands as nested types (swift-argument-parser).
public struct Reencryptd: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "reencryptd",
        abstract: "Re-encrypt existing S3 objects in bulk through UpdateObjectEncryption, as a resumable job.",
        subcommands: [Submit.self, Run.self, Status.self, Pause.self, Resume.self, Cancel.self, Retry.self,
                      Report.self, Inspect.self, Update.self, Demo.self]
    )

    public init() {}

    /// Parses, runs, and maps failures to PRODUCT.md §1 exit statuses: 2 for bad usage or input, 1 otherwise.
    /// Errors print as one sentence on stderr, never a stack trace.
    public static func main(arguments: [String]) async -> Int32 {
        let command: ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            let code = exitCode(for: error)
            if code == .success {
                print(fullMessage(for: error))
                return 0
            }
            FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
            return 2
        }
        do {
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                var syncCommand = command
                try syncCommand.run()
            }
            return 0
        } catch let exit as ExitCode {
            return exit.rawValue
        } catch let error as InputError {
            fail(error.description)
            return 2
        } catch {
            fail(String(describing: error))
            return 1
        }
    }

    static func fail(_ message: String) {
        FileHandle.standardError.write(Data("reencryptd: \(message)\n".utf8))
    }
}

/// Options every subcommand takes.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Configuration file (default: $REENCRYPTD_CONFIG, else \(ConfigLoader.systemPath) if it exists).",
                                            valueName: "FILE"))
    var config: String?

    @Option(name: .long, help: ArgumentHelp("Job store database (default: [store] path, ./reencryptd.sqlite3).", valueName: "FILE"))
    var db: String?

    /// The configuration with this command's flags applied on top.
    func loadConfiguration(flags: [(key: String, value: String, flag: String)] = []) throws -> Configuration {
        let environment = ProcessInfo.processInfo.environment
        var all = flags
        if let db { all.append((key: "store.path", value: db, flag: "--db")) }
        return try ConfigLoader.load(path: ConfigLoader.configPath(flag: config, environment: environment),
                                     environment: environment, flags: all)
    }

    /// The job store. Only `submit` and `run` create it (`run` so that a daemon can start before the first job):
    /// the commands that act on existing jobs fail on a missing file rather than create an empty one at a mistyped path.
    func openStore(_ configuration: Configuration, cacheMegabytes: Int = 32, create: Bool = false) throws -> SQLiteJobStore {
        try SQLiteJobStore(path: configuration.store.path, cacheMegabytes: cacheMegabytes, create: create)
    }
}

func now() -> Double { Date().timeIntervalSince1970 }
