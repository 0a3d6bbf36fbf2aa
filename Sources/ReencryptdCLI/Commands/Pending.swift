import ArgumentParser

// Subcommands whose issue has not landed: each says so in one line and exits 1 (issue 2, point 1).
// The options are declared now so that `--help` already shows the contract of PRODUCT.md §1.

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "The daemon: claim tasks and process them until stopped.")
    @OptionGroup var global: GlobalOptions
    @Flag(name: .customLong("until-idle"), help: "Exit when no runnable task is left.") var untilIdle = false
    @Option(help: "Requests in flight.") var concurrency: Int?
    @Option(name: .customLong("max-rps"), help: "Global ceiling, requests per second.") var maxRPS: Double?
    @Option(name: .customLong("stop-at"), help: "Drain and exit at this wall-clock time (HH:MM).") var stopAt: String?
    func run() throws { throw NotYetAvailable(command: "run", issue: 5) }
}

struct Retry: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Put failed tasks back in the queue with fresh attempts.")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The job.") var job: String
    @Option(help: "Only tasks of this outcome class (repeatable).") var outcome: [String] = []
    func run() throws { throw NotYetAvailable(command: "retry", issue: 5) }
}

struct Report: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Write the completion report (Batch Operations CSV or JSON lines).")
    @OptionGroup var global: GlobalOptions
    @Option(help: "The job.") var job: String
    @Option(help: "all or failed.") var scope: String = "all"
    @Option(help: "batch-csv or jsonl.") var format: String = "batch-csv"
    @Option(help: "A folder or s3://bucket/prefix.") var output: String
    func run() throws { throw NotYetAvailable(command: "report", issue: 5) }
}

struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the main job against the built-in S3 simulator on loopback.")
    @OptionGroup var global: GlobalOptions
    func run() throws { throw NotYetAvailable(command: "demo", issue: 5) }
}
