import ArgumentParser
import Dispatch
import Foundation
import S3Sim

/// `s3sim`: the S3 simulator as a process, for the demo, benchmarks and people. See README.md "The S3 simulator".
struct S3SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "s3sim",
        abstract: "A strict local S3 (UpdateObjectEncryption, HeadObject, GetObject, PutObject, lists) on loopback.",
        discussion: "Prints 'listening on http://HOST:PORT' on stdout; SIGTERM or SIGINT stops it (writing --state-out).")

    @Option(help: "Address to bind (loopback only).") var host = "127.0.0.1"
    @Option(help: "Port; 0 picks a free one.") var port = 0
    @Option(name: .customLong("port-file"), help: "Write the port here once listening.") var portFile: String?
    @Option(help: "Event-loop threads.") var threads = 1

    @Option(help: "Generate this many objects.") var population = 0
    @Option(name: .customLong("population-file"), help: "Load buckets and objects from a state file (written by --state-out).")
    var populationFile: String?
    @Option(help: "Spread them over this many buckets.") var buckets = 4
    @Option(help: "Seed for the population and faults.") var seed: UInt64 = 1
    @Option(name: .customLong("manifest-dir"), help: "Write manifest.csv and an inventory report here.") var manifestDir: String?
    @Flag(help: "Only SSE-S3 objects with plain keys (benchmarks): no locks, denials or broken objects.") var plain = false

    @Option(name: .customLong("latency-ms"), help: "Fixed latency per answer.") var latencyMs: Double?
    @Option(name: .customLong("latency-exp-ms"), help: "Exponentially distributed latency with this mean.") var latencyExpMs: Double?
    @Option(name: .customLong("throttle-rps"), help: "503 SlowDown above this rate.") var throttleRPS: Double?
    @Option(name: .customLong("kms-throttle-rps"), help: "503 SlowDown (KMS message) above this rate.") var kmsThrottleRPS: Double?
    @Option(name: .customLong("bucket-throttle"), help: "BUCKET=RPS: 503 SlowDown above this rate for one bucket (repeatable).")
    var bucketThrottle: [String] = []
    @Option(name: .customLong("error-rate"), help: "Share answered 500 InternalError.") var errorRate = 0.0
    @Option(name: .customLong("reset-rate"), help: "Share whose connection is reset.") var resetRate = 0.0
    @Option(name: .customLong("slow-rate"), help: "Share answered only after --slow-seconds.") var slowRate = 0.0
    @Option(name: .customLong("slow-seconds"), help: "Delay of slow answers.") var slowSeconds = 60.0
    @Option(name: .customLong("error-in-200-rate"), help: "Share answered 200 with an <Error> body.") var errorIn200Rate = 0.0

    @Flag(name: .customLong("no-verify-signatures"), help: "Skip SigV4 checks (to measure their cost).") var noVerify = false
    @Flag(name: .customLong("default-scheduling"),
          help: "Run the event loops at the default policy, not SCHED_BATCH (to measure the difference).") var defaultScheduling = false
    @Option(name: .customLong("access-key"), help: "Accepted access key id.") var accessKey = SimCredential.default.accessKeyID
    @Option(name: .customLong("secret-key"), help: "Its secret.") var secretKey = SimCredential.default.secretAccessKey
    @Option(name: .customLong("state-out"), help: "Write counters and the full object state as JSON on exit.") var stateOut: String?

    func validate() throws {
        guard host == "127.0.0.1" || host == "::1" || host == "localhost" || host.hasPrefix("127.") else {
            throw ValidationError("--host must be a loopback address")
        }
    }

    func run() throws {
        let simulator = S3Simulator(credentials: [SimCredential(accessKeyID: accessKey, secretAccessKey: secretKey)],
                                    verifySignatures: !noVerify, threads: threads, batchScheduling: !defaultScheduling)
        if let populationFile {
            let n = try SimStateDump.load(from: populationFile, into: simulator.state)
            FileHandle.standardError.write(Data("s3sim: loaded \(n) objects from \(populationFile)\n".utf8))
        }
        if population > 0 || manifestDir != nil {
            var spec = PopulationSpec()
            spec.objects = population
            spec.buckets = buckets
            spec.seed = seed
            if plain { spec = PopulationSpec.plain(objects: population, buckets: buckets, seed: seed) }
            var generated = Population(spec: spec)
            generated.generate(into: simulator.state)
            if let dir = manifestDir {
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                try generated.writeBatchCSV(to: "\(dir)/manifest.csv")
                let inventory = try generated.writeInventory(root: "\(dir)/inventory")
                FileHandle.standardError.write(Data("s3sim: wrote \(dir)/manifest.csv and \(inventory); target key \(generated.targetKeyARN)\n".utf8))
            }
        }
        var faults = SimFaults()
        if let latencyMs { faults.latency = .fixed(milliseconds: latencyMs) }
        if let latencyExpMs { faults.latency = .exponential(meanMilliseconds: latencyExpMs) }
        faults.throttleRPS = throttleRPS
        faults.kmsThrottleRPS = kmsThrottleRPS
        for spec in bucketThrottle {
            let parts = spec.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let rps = Double(parts[1]), rps > 0 else {
                throw ValidationError("--bucket-throttle '\(spec)': expected BUCKET=RPS with a positive rate")
            }
            faults.bucketThrottleRPS[String(parts[0])] = rps
        }
        faults.errorRate = errorRate
        faults.resetRate = resetRate
        faults.slowRate = slowRate
        faults.slowSeconds = slowSeconds
        faults.errorIn200Rate = errorIn200Rate
        simulator.service.faults = faults

        let bound = try simulator.start(host: host, port: port)
        if let portFile { try Data("\(bound)\n".utf8).write(to: URL(fileURLWithPath: portFile)) }
        print("listening on http://\(host):\(bound)")
        fflush(nil)

        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let stateOut = self.stateOut
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .main)
            source.setEventHandler {
                simulator.stop()
                if let stateOut { try? SimStateDump(simulator.state).write(to: stateOut) }
                Foundation.exit(0)
            }
            source.resume()
            sources.append(source)
        }
        withExtendedLifetime(sources) { dispatchMain() }
    }
}

S3SimCommand.main()
