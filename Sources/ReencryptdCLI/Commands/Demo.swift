import ArgumentParser
import Domain
import Engine
import Foundation
import JobStore
import Logging
import Manifest
import S3
import S3Sim

/// `reencryptd demo`: the main job on an embedded default. Starts the S3 simulator on loopback, generates a population
/// that covers every outcome class, submits half of it through an S3 Inventory report and half through a Batch
/// Operations CSV, runs to completion under injected faults with live progress, checks every task's class against what
/// the population says it should be, and writes the completion report.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the main job against the built-in S3 simulator on loopback.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "Objects to generate.") var objects = 100_000
    @Option(help: "Where to put the demo's manifests, store and report (default: a new folder under /tmp).") var workdir: String?

    func run() throws {
        let started = Date()
        let dir = URL(fileURLWithPath: workdir ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("reencryptd-demo-\(Int(started.timeIntervalSince1970))").path)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let storePath = dir.appendingPathComponent("reencryptd.sqlite3").path
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: storePath + suffix) }
        say("reencryptd demo: working in \(dir.path)")

        // 1. The simulator, on a random loopback port, with faults on.
        let simulator = S3Simulator(threads: 1)
        let port = try simulator.start()
        defer { simulator.stop() }
        var faults = SimFaults()
        faults.latency = .exponential(meanMilliseconds: 3)
        faults.throttleRPS = 4000
        faults.errorRate = 0.002
        faults.resetRate = 0.0005
        faults.errorIn200Rate = 0.0005
        simulator.service.faults = faults
        say("S3 simulator on 127.0.0.1:\(port): 3 ms mean latency, SlowDown above 4,000 requests/s, 0.2% InternalError, "
            + "0.05% connection resets, 0.05% errors inside 200s")

        // 2. A population covering every outcome class, and its manifests.
        var spec = PopulationSpec()
        spec.objects = objects
        var population = Population(spec: spec)
        population.generate(into: simulator.state)
        let csvPath = dir.appendingPathComponent("manifest.csv").path
        try population.writeBatchCSV(to: csvPath) { $0 % 2 == 1 }
        let inventory = try population.writeInventory(root: dir.appendingPathComponent("inventory").path) { $0 % 2 == 0 }
        say("generated \(objects) objects in \(spec.buckets + 1) buckets; manifests: \(csvPath) and \(inventory)")

        // 3. Submit: one job, both manifests, atomically.
        setenv("AWS_ACCESS_KEY_ID", SimCredential.default.accessKeyID, 1)
        setenv("AWS_SECRET_ACCESS_KEY", SimCredential.default.secretAccessKey, 1)
        setenv("AWS_EC2_METADATA_DISABLED", "true", 1)
        // The simulator's region, whatever AWS_REGION or ~/.aws/config say on this machine.
        var configuration = try global.loadConfiguration(flags: [("store.path", storePath, "demo"),
                                                                  ("s3.endpoint", simulator.endpointURL, "demo"),
                                                                  ("s3.region", spec.region, "demo")])
        configuration.engine.maxAttempts = 6
        configuration.engine.backoffCapSeconds = 2
        let store = try SQLiteJobStore(path: storePath, cacheMegabytes: SQLiteJobStore.daemonCacheMegabytes)
        let spec0 = JobSpec(name: "demo-rotate", kmsKeyARN: try KMSKeyARN(population.targetKeyARN), bucketKeyEnabled: true)
        let loader = ManifestLoader()
        let submitted = try store.submit(spec0, now: now()) { sink in
            for path in [inventory, csvPath] {
                try loader.load(path: path) { _ = try sink.add($0.object, skippedAs: $0.skippedAs) }
            }
        }
        say("submitted job demo-rotate: \(submitted.added) tasks (\(submitted.skipped) skipped from inventory columns, "
            + "\(loader.deleteMarkers) delete markers dropped)")

        // 4. Run to completion with live progress.
        let logger = Logs.logger(configuration.log)
        let client = try S3Wiring.client(configuration)
        defer { client.shutdown() }
        var engineConfiguration = EngineWiring.configuration(configuration)
        engineConfiguration.untilIdle = true
        let engine = Engine(store: store, client: client, configuration: engineConfiguration, logger: logger)
        let total = submitted.added - submitted.skipped
        let progress = DispatchSource.makeTimerSource(queue: DispatchQueue(label: "demo.progress"))
        let tty = isatty(1) != 0
        progress.schedule(deadline: .now() + 1, repeating: 1)
        progress.setEventHandler {
            let p = engine.snapshot
            let limit = p.tightestBucketLimit.map { String(format: ", adaptive limit %.0f/s", $0) } ?? ""
            let line = String(format: "  %6d/%d done  %7.0f objects/s  in flight %4d  retries %6d  throttled %6d%@",
                              p.recorded, total, p.ratePerSecond, p.inFlight, p.retried, p.throttled, limit)
            if tty { print("\r" + line, terminator: "") } else { print(line) }
            fflush(nil)
        }
        progress.resume()
        let runStart = Date()
        let reason = engine.run()
        progress.cancel()
        if tty { print("") }
        guard reason == .idle else { throw StoreFailed(description: "the demo run stopped early: \(reason)") }
        let seconds = Date().timeIntervalSince(runStart)

        // 5. Summary, checked against what each object should have ended as, and the simulator's own state.
        let summary = try store.summaries(now: now()).first { $0.job.spec.name == "demo-rotate" }
        print("\n" + StatusView.text(summary.map { [$0] } ?? []))
        var expected: [ObjectRef: OutcomeClass] = [:]
        for (i, e) in population.entries.enumerated() {
            expected[e.object] = i % 2 == 0 ? e.expectedViaInventory : e.expectedViaCSV
        }
        var mismatches: [String] = []
        var byClass: [OutcomeClass: Int] = [:]
        try store.forEachTask(job: "demo-rotate", failedOnly: false) { t in
            let got = t.outcome ?? OutcomeClass(rawValue: t.state.rawValue)
            byClass[got, default: 0] += 1
            if let want = expected[t.object], want != got, mismatches.count < 10 { mismatches.append("\(t.object): \(got), expected \(want)") }
        }
        let counters = simulator.state.snapshotCounters
        print("\noutcome classes:")
        for (c, n) in byClass.sorted(by: { $0.value > $1.value }) {
            print("  " + c.rawValue.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: "%7d", n))
        }
        print(String(format: "\n%d objects in %.1f s (%.0f objects/s end to end); simulator: %d UpdateObjectEncryption calls, "
            + "%d throttled, %d injected errors, %d resets, %d duplicate updates",
                     total, seconds, Double(total) / seconds, counters.updateCalls, counters.throttled,
                     counters.injectedErrors + counters.injectedErrorIn200, counters.injectedResets, counters.duplicateUpdates))
        let reportDir = dir.appendingPathComponent("report")
        _ = try CompletionReport.write(job: "demo-rotate", store: store, format: .batchCSV, failedOnly: false, folder: reportDir)
        print("completion report (S3 Batch Operations format): \(reportDir.appendingPathComponent("job-demo-rotate").path)")
        let missing = OutcomeClass.all.filter { byClass[$0] == nil }
        if mismatches.isEmpty && missing.isEmpty {
            print("every task ended with the class its object called for; every outcome class occurred. "
                + String(format: "Demo finished in %.0f s.", Date().timeIntervalSince(started)))
        } else {
            for m in mismatches { print("MISMATCH \(m)") }
            if !missing.isEmpty { print("classes that did not occur: \(missing.map(\.rawValue).joined(separator: ", "))") }
            throw StoreFailed(description: "the demo's outcomes do not match the population")
        }
    }

    private func say(_ s: String) {
        print(s)
        fflush(nil)
    }
}
