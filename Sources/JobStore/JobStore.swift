import Domain

/// The job queue behind a protocol, so that a server-backed store (PostgreSQL with `FOR UPDATE SKIP LOCKED`)
/// can serve a fleet later without touching the engine or the command line. `SQLiteJobStore` is the one-host default.
public protocol JobStore: AnyObject, Sendable {
    /// Creates job `spec.name`, or opens it for more manifests while it is not finished, and runs `load` inside one
    /// transaction: if `load` throws, nothing it added (nor a job it created) is kept.
    func submit(_ spec: JobSpec, now: Double, load: (any TaskSink) throws -> Void) throws -> SubmitResult

    func job(named name: String) throws -> Job?
    func jobs() throws -> [Job]

    /// Operator commands (`pause`, `resume`, `cancel`) and the engine's own transitions (`complete`, `failed`).
    /// Throws `JobStoreError` for an unknown job or a transition the job's state does not allow.
    @discardableResult
    func setState(ofJob name: String, to state: JobState, reason: String?, now: Double) throws -> Job

    /// Totals by task state and by outcome class, with the engine's last reported rate.
    func summaries(now: Double) throws -> [JobSummary]
}

/// Receives a manifest's tasks during `JobStore.submit`.
public protocol TaskSink: AnyObject {
    /// Adds one task; `skippedAs` makes it terminal at once (an inventory row that must never cost a call).
    /// Returns false when the job already holds this (bucket, key, version): a duplicate, ignored.
    func add(_ object: ObjectRef, skippedAs: OutcomeClass?) throws -> Bool
}

public struct SubmitResult: Sendable, Equatable {
    public var job: Job
    public var createdJob: Bool
    public var added: Int
    public var duplicates: Int
    /// Of `added`, how many were stored as skipped (never called).
    public var skipped: Int
}

public struct JobSummary: Sendable, Equatable {
    public var job: Job
    public var total: Int
    public var tasks: [TaskState: Int]
    public var outcomes: [OutcomeClass: Int]
    /// Objects finished per second, as last reported by a running daemon; 0 when none runs.
    public var ratePerSecond: Double
    /// Seconds until no task is left, at the current rate; nil when it cannot be estimated.
    public var etaSeconds: Double?

    public var remaining: Int { (tasks[.pending] ?? 0) + (tasks[.inFlight] ?? 0) }
}

/// Something asked of the store that the jobs' state does not allow; phrased for the operator.
public struct JobStoreError: InputError, Sendable, Equatable {
    public let description: String
    public init(_ description: String) { self.description = description }

    static func noSuchJob(_ name: String) -> JobStoreError {
        JobStoreError("there is no job named '\(name)' (see `reencryptd status`)")
    }
}
