import ArgumentParser
import Config
import Domain
import Engine
import Foundation
import JobStore
import Logging
import S3
import S3Sim

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The daemon: claim tasks and process them until stopped.",
        discussion: "SIGTERM or SIGINT stops it gracefully: no new claims, in-flight calls finish within "
            + "[engine] shutdown_grace_seconds, the rest go back to the queue, exit 0.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .customLong("until-idle"), help: "Exit when no runnable task is left.") var untilIdle = false
    @Option(help: "Requests in flight.") var concurrency: Int?
    @Option(name: .customLong("max-rps"), help: "Global ceiling, requests per second.") var maxRPS: Double?
    @Option(name: .customLong("stop-at"), help: "Drain and exit at this local wall-clock time (HH:MM).") var stopAt: String?

    func run() throws {
        var flags: [(key: String, value: String, flag: String)] = []
        if let concurrency { flags.append(("engine.concurrency", String(concurrency), "--concurrency")) }
        if let maxRPS { flags.append(("engine.max_rps", String(maxRPS), "--max-rps")) }
        let configuration = try global.loadConfiguration(flags: flags)
        let stopDate = try stopAt.map { try Self.nextOccurrence(of: $0, after: Date()) }
        let logger = Logs.logger(configuration.log)
        // A daemon may start before the first job is submitted, so it creates a missing store; it says so, since a
        // mistyped --db otherwise shows only as a daemon with nothing to do.
        let storeExisted = FileManager.default.fileExists(atPath: configuration.store.path)
        let store = try global.openStore(configuration, cacheMegabytes: SQLiteJobStore.daemonCacheMegabytes, create: true)
        if !storeExisted {
            let path = configuration.store.path
            logger.notice("created an empty job store at \(path): add jobs with `reencryptd submit --db \(path)`")
        }
        let client = try S3Wiring.client(configuration)
        defer { client.shutdown() }
        var engineConfiguration = EngineWiring.configuration(configuration)
        engineConfiguration.untilIdle = untilIdle
        engineConfiguration.stopAt = stopDate
        let engine = Engine(store: store, client: client, configuration: engineConfiguration, logger: logger)
        let started = "reencryptd run started: store \(configuration.store.path), concurrency \(engineConfiguration.concurrency)"
            + (stopDate.map { ", stopping at \($0)" } ?? "") + (untilIdle ? ", until idle" : "")
        logger.notice("\(started)")
        let metrics = try MetricsEndpoint.start(configuration.metrics.listen, engine: engine, store: store, logger: logger)
        defer { metrics?.stop() }
        let systemd = SystemdNotifier()
        let signals = SignalStop.install {
            systemd.stopping()
            engine.requestStop(.signal)
        }
        systemd.start(engine: engine)
        let reason = engine.run()
        systemd.stopping()
        withExtendedLifetime(signals) {}
        switch reason {
        case .storeFailure(let message):
            throw StoreFailed(description: "stopped because the job store failed: \(message)")
        case .idle: logger.notice("no runnable task left: exiting")
        case .stopAt: logger.notice("stop time reached: exiting")
        case .signal: logger.notice("stopped by signal: exiting")
        }
    }

    /// The next time the local clock shows HH:MM (today if still ahead, else tomorrow).
    static func nextOccurrence(of text: String, after now: Date, calendar: Calendar = .current) throws -> Date {
        let parts = text.split(separator: ":")
        guard parts.count == 2, let h = Int(parts[0]), let m = Int(parts[1]), (0..<24).contains(h), (0..<60).contains(m),
              parts[1].count == 2 else {
            throw InvalidInput("--stop-at '\(text)' is not a time HH:MM (24-hour)")
        }
        guard let date = calendar.nextDate(after: now, matching: DateComponents(hour: h, minute: m, second: 0),
                                           matchingPolicy: .nextTime) else {
            throw InvalidInput("--stop-at '\(text)': no such time follows now")
        }
        return date
    }
}

struct StoreFailed: Error, CustomStringConvertible { let description: String }

enum EngineWiring {
    static func configuration(_ c: Configuration) -> EngineConfiguration {
        var e = EngineConfiguration()
        e.concurrency = c.engine.concurrency
        e.maxRPS = c.engine.maxRPS
        e.maxRPSPerBucket = c.engine.maxRPSPerBucket
        e.adaptive = c.engine.adaptive
        e.retry = RetryPolicy(maxAttempts: c.engine.maxAttempts, base: c.engine.backoffBaseSeconds, cap: c.engine.backoffCapSeconds)
        e.leaseSeconds = c.engine.leaseSeconds
        e.failureThresholdPercent = c.engine.failureThresholdPercent
        e.failureThresholdMinTasks = c.engine.failureThresholdMinTasks
        e.shutdownGrace = c.engine.shutdownGraceSeconds
        return e
    }
}

/// SIGTERM (what systemd sends) and SIGINT start a graceful stop; a second one exits at once.
final class SignalStop: @unchecked Sendable {
    private var sources: [DispatchSourceSignal] = []
    private var count = 0
    private let queue = DispatchQueue(label: "reencryptd.signals")

    static func install(_ stop: @escaping @Sendable () -> Void) -> SignalStop {
        let s = SignalStop()
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: s.queue)
            source.setEventHandler {
                s.count += 1
                if s.count > 1 {
                    FileHandle.standardError.write(Data("reencryptd: second signal: exiting now (leases expire and tasks run again)\n".utf8))
                    exit(1)
                }
                stop()
            }
            source.resume()
            s.sources.append(source)
        }
        return s
    }

    deinit {
        for s in sources { s.cancel() }
        signal(SIGTERM, SIG_DFL)
        signal(SIGINT, SIG_DFL)
    }
}

/// Serves `/metrics` (Prometheus text) on `[metrics] listen` while the daemon runs.
enum MetricsEndpoint {
    static func start(_ listen: String, engine: Engine, store: SQLiteJobStore, logger: Logger) throws -> StubServer? {
        guard !listen.isEmpty, let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            return nil
        }
        var host = String(listen[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        let server = StubServer()
        do {
            let url = try server.start(host: host, port: port, recording: false) { request in
                guard request.method == "GET", request.uri == "/metrics" else { return (404, [], "not found; try /metrics\n") }
                let jobs = (try? store.summaries(now: Date().timeIntervalSince1970)) ?? []
                return (200, [("Content-Type", "text/plain; version=0.0.4")], MetricsExposition.render(engine.snapshot, jobs: jobs))
            }
            logger.notice("metrics at \(url)/metrics")
        } catch {
            throw InvalidInput("[metrics] listen = \(listen): cannot listen there (\(error))")
        }
        return server
    }
}
