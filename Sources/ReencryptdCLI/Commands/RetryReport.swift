import ArgumentParser
import Domain
import Foundation
import JobStore
import S3

struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Put failed tasks back in the queue with fresh attempts.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The job.") var job: String
    @Option(help: "Only tasks of this outcome class (repeatable).") var outcome: [String] = []

    func run() throws {
        let classes = try outcome.map { name -> OutcomeClass in
            let c = OutcomeClass(rawValue: name)
            guard OutcomeClass.failureClasses.contains(c) else {
                throw InvalidInput("--outcome '\(name)' is not a failure class (one of "
                    + OutcomeClass.failureClasses.map(\.rawValue).joined(separator: ", ") + ")")
            }
            return c
        }
        let store = try global.openStore(try global.loadConfiguration())
        let n = try store.retry(job: job, outcomes: classes, now: now())
        var next = ""
        if n > 0 {
            next = try store.job(named: job)?.state == .paused
                ? "; the job is paused: `reencryptd resume --job \(job)` lets `reencryptd run` process them"
                : "; `reencryptd run` will process them"
        }
        print("job \(job): \(n) failed tasks back in the queue" + next)
    }
}

extension CompletionReport.Format: ExpressibleByArgument {}

struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write the completion report (Batch Operations CSV or JSON lines).")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The job.") var job: String
    @Option(help: "all or failed.") var scope: String = "all"
    @Option(help: "batch-csv or jsonl.") var format: CompletionReport.Format = .batchCSV
    @Option(help: "A folder or s3://bucket/prefix.") var output: String

    func run() async throws {
        guard scope == "all" || scope == "failed" else { throw InvalidInput("--scope must be all or failed, not '\(scope)'") }
        let configuration = try global.loadConfiguration()
        let store = try global.openStore(configuration)
        guard try store.job(named: job) != nil else { throw JobStoreError("there is no job named '\(job)' (see `reencryptd status`)") }
        if output.hasPrefix("s3://") {
            let uri = try S3URI(output, keyRequired: false)
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("reencryptd-report-\(UUID().uuidString)")
            defer { try? FileManager.default.removeItem(at: folder) }
            let written = try CompletionReport.write(job: job, store: store, format: format, failedOnly: scope == "failed",
                                                     folder: folder, bucket: uri.bucket, keyPrefix: uri.key)
            let client = try S3Wiring.client(configuration)
            defer { client.shutdown() }
            let prefix = uri.key.isEmpty ? "" : (uri.key.hasSuffix("/") ? uri.key : uri.key + "/")
            for file in written.files {
                let body = Array(try Data(contentsOf: folder.appendingPathComponent(file)))
                do {
                    try await client.putObject(bucket: uri.bucket, key: prefix + file, body: body,
                                               contentType: file.hasSuffix(".json") ? "application/json" : "text/csv")
                } catch {
                    throw ObjectCallFailed(description: "uploading the report: \(error)")
                }
            }
            print("report for job \(job): \(written.tasks) tasks, uploaded to s3://\(uri.bucket)/\(prefix)job-\(job)/")
        } else {
            let folder = URL(fileURLWithPath: output)
            let written = try CompletionReport.write(job: job, store: store, format: format, failedOnly: scope == "failed", folder: folder)
            print("report for job \(job): \(written.tasks) tasks in \(folder.appendingPathComponent("job-\(job)").path)")
        }
    }
}
