import ArgumentParser
import Domain
import Foundation
import JobStore

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per job: state, totals by task state and outcome, current rate and ETA.")

    @OptionGroup var global: GlobalOptions

    @Option(help: "Only this job.")
    var job: String?

    @Flag(help: "Machine-readable output (PRODUCT.md §4).")
    var json = false

    @Flag(help: "Redraw every second until interrupted.")
    var watch = false

    func run() throws {
        let configuration = try global.loadConfiguration()
        let store = try global.openStore(configuration)
        repeat {
            var summaries = try store.summaries(now: now())
            if let job {
                summaries = summaries.filter { $0.job.spec.name == job }
                if summaries.isEmpty { throw JobStoreError("there is no job named '\(job)' (see `reencryptd status`)") }
            }
            let output = json ? StatusView.json(summaries) : StatusView.text(summaries)
            if watch, !json, isatty(1) != 0 { print("\u{1B}[H\u{1B}[2J", terminator: "") }
            print(output)
            fflush(nil)  // flush stdout (nil: all streams; `stdout` is a C global Swift 6 will not touch)
            if watch { Thread.sleep(forTimeInterval: 1) }
        } while watch
    }
}

/// Renders job summaries for people and for machines.
public enum StatusView {
    struct JSONJob: Encodable {
        let summary: JobSummary

        enum Keys: String, CodingKey {
            case name, state, state_reason, kms_key_arn, bucket_key_enabled, priority, total, tasks, outcomes
            case rate_per_second, eta_seconds
        }

        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: Keys.self)
            let job = summary.job
            try c.encode(job.spec.name, forKey: .name)
            try c.encode(job.state.rawValue, forKey: .state)
            try c.encode(job.stateReason, forKey: .state_reason)
            try c.encode(job.spec.kmsKeyARN.rawValue, forKey: .kms_key_arn)
            try c.encode(job.spec.bucketKeyEnabled, forKey: .bucket_key_enabled)
            try c.encode(job.spec.priority, forKey: .priority)
            try c.encode(summary.total, forKey: .total)
            // Every task state appears, zeros included, so consumers need no defaults.
            let tasks = Dictionary(uniqueKeysWithValues: TaskState.allCases.map { ($0.rawValue, summary.tasks[$0] ?? 0) })
            try c.encode(tasks, forKey: .tasks)
            try c.encode(Dictionary(uniqueKeysWithValues: summary.outcomes.map { ($0.key.rawValue, $0.value) }), forKey: .outcomes)
            try c.encode((summary.ratePerSecond * 10).rounded() / 10, forKey: .rate_per_second)
            try c.encode(summary.etaSeconds.map { ($0 * 10).rounded() / 10 }, forKey: .eta_seconds)
        }
    }

    struct JSONStatus: Encodable {
        let jobs: [JSONJob]
    }

    public static func json(_ summaries: [JobSummary]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(JSONStatus(jobs: summaries.map(JSONJob.init)))) ?? Data("{\"jobs\":[]}".utf8)
        return String(decoding: data, as: UTF8.self)
    }

    public static func text(_ summaries: [JobSummary]) -> String {
        if summaries.isEmpty { return "no jobs (add one with `reencryptd submit`)" }
        var lines: [String] = []
        for s in summaries {
            let job = s.job
            var head = "job \(job.spec.name): \(job.state.rawValue)"
            if let reason = job.stateReason { head += " (\(reason))" }
            lines.append(head)
            lines.append("  target     \(job.spec.kmsKeyARN)\(job.spec.bucketKeyEnabled ? " with bucket key" : "")")
            let done = s.total - s.remaining
            let percent = s.total > 0 ? Double(done) * 100 / Double(s.total) : 100
            lines.append("  progress   \(done)/\(s.total) (\(String(format: "%.1f", percent))%)")
            lines.append("  tasks      " + TaskState.allCases.map { "\($0.rawValue) \(s.tasks[$0] ?? 0)" }.joined(separator: ", "))
            if !s.outcomes.isEmpty {
                let ordered = s.outcomes.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key.rawValue < $1.key.rawValue }
                lines.append("  outcomes   " + ordered.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            }
            // A finished job that no daemon is working on has no rate to show.
            if s.remaining > 0 || s.ratePerSecond > 0 {
                var rate = "  rate       \(String(format: "%.1f", s.ratePerSecond))/s"
                if let eta = s.etaSeconds, s.remaining > 0 { rate += ", ETA \(formatDuration(eta))" }
                lines.append(rate)
            }
        }
        return lines.joined(separator: "\n")
    }

    static func formatDuration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        if s >= 3600 { return "\(s / 3600)h\(String(format: "%02d", (s % 3600) / 60))m" }
        if s >= 60 { return "\(s / 60)m\(String(format: "%02d", s % 60))s" }
        return "\(s)s"
    }
}
