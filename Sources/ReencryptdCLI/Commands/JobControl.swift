import ArgumentParser
import Domain
import JobStore

/// `pause`, `resume`, `cancel`: change a job's state in the store; a running daemon polls it (within 2 s).
protocol JobControlCommand: ParsableCommand {
    var global: GlobalOptions { get }
    var job: String { get }
    static var target: JobState { get }
}

extension JobControlCommand {
    func run() throws {
        let store = try global.openStore(try global.loadConfiguration())
        let updated = try store.setState(ofJob: job, to: Self.target, reason: nil, now: now())
        print("job \(updated.spec.name): \(updated.state.rawValue)")
    }
}

struct Pause: JobControlCommand {
    static let configuration = CommandConfiguration(abstract: "Pause a job: no new calls; nothing in flight is lost.")
    static let target = JobState.paused
    @OptionGroup var global: GlobalOptions
    @Option(help: "The job.") var job: String
}

struct Resume: JobControlCommand {
    static let configuration = CommandConfiguration(abstract: "Resume a paused (or threshold-failed) job.")
    static let target = JobState.active
    @OptionGroup var global: GlobalOptions
    @Option(help: "The job.") var job: String
}

struct Cancel: JobControlCommand {
    static let configuration = CommandConfiguration(abstract: "Cancel a job: its pending tasks are never run.")
    static let target = JobState.cancelled
    @OptionGroup var global: GlobalOptions
    @Option(help: "The job.") var job: String
}
