import Domain

/// A claimed task: the object, its job's target, and the lease under which this worker holds it.
public struct Lease: Sendable, Equatable {
    public var taskID: Int64
    public var jobID: Int64
    public var object: ObjectRef
    /// Calls already made for this task (before this claim).
    public var attempts: Int
    public var errors: Int
    public var throttles: Int
}

/// What became of one attempt, as the engine records it.
public struct TaskResult: Sendable, Equatable {
    public enum Disposition: Sendable, Equatable {
        /// Final: succeeded, or failed/skipped with this outcome class.
        case terminal(OutcomeClass)
        /// Back to pending, to be claimed again at `notBefore` (epoch seconds).
        case retry(notBefore: Double)
    }
    public var taskID: Int64
    public var jobID: Int64
    public var disposition: Disposition
    /// Calls made for this task so far, this one included; errors and throttles among them.
    public var attempts: Int
    public var errors: Int
    public var throttles: Int
    public var httpStatus: Int?
    public var errorCode: String?
    public var errorMessage: String?
    public var requestID: String?

    public init(taskID: Int64, jobID: Int64, disposition: Disposition, attempts: Int, errors: Int, throttles: Int,
                httpStatus: Int?, errorCode: String?, errorMessage: String?, requestID: String?) {
        self.taskID = taskID
        self.jobID = jobID
        self.disposition = disposition
        self.attempts = attempts
        self.errors = errors
        self.throttles = throttles
        self.httpStatus = httpStatus
        self.errorCode = errorCode
        self.errorMessage = errorMessage
        self.requestID = requestID
    }
}

/// One task as reports show it.
public struct TaskRecord: Sendable, Equatable {
    public var object: ObjectRef
    public var state: TaskState
    public var outcome: OutcomeClass?
    public var attempts: Int
    public var httpStatus: Int?
    public var errorCode: String?
    public var errorMessage: String?
    public var requestID: String?
    public var createdAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
}

/// The operations the engine needs, beside `JobStore`'s. All batched: one transaction per call.
public protocol TaskQueue: JobStore {
    /// Leases up to `limit` runnable tasks (pending, due, in an active job), highest job priority first, to `owner`
    /// until `now + leaseSeconds`. Within a job the tasks are spread across its buckets, each bucket taking no more
    /// than `perBucket` minus what the caller already holds queued for it (`queued`): a throttled bucket's backlog
    /// must not take every claim and starve the others. With many buckets a claim may take runs of tasks from some of
    /// them rather than a few from each (`SQLiteJobStore.minimumClaimRun`); the next claim goes on from where it
    /// stopped, so every bucket gets its turn.
    func claim(owner: String, limit: Int, perBucket: Int, queued: [String: Int], now: Double, leaseSeconds: Double) throws
        -> Claim
    /// Records results in one transaction; a result whose lease this owner no longer holds is ignored.
    /// Returns how many were recorded.
    @discardableResult
    func record(_ results: [TaskResult], owner: String, now: Double) throws -> Int
    /// Puts leased tasks back to pending untouched (shutdown, pause, cancel).
    func release(taskIDs: [Int64], owner: String) throws
    /// Extends `owner`'s lease, which covers every task it holds, to `until`.
    func renewLeases(owner: String, until: Double) throws
    /// Returns to pending the tasks of every owner whose lease expired (a worker died), and ends those leases.
    /// Returns how many tasks.
    @discardableResult
    func expireLeases(now: Double) throws -> Int
    /// At start-up: `expireLeases`, after giving a lease to any owner that holds tasks without one (a reencryptd from
    /// before leases were kept per worker, still running when a newer one migrated the store). Scans the tasks when
    /// any is in flight.
    @discardableResult
    func recoverLeases(now: Double) throws -> Int
    /// Returns to pending whatever `owner` still holds and ends its lease (a clean exit).
    func endLease(owner: String) throws
    /// Puts a job's failed tasks (all, or those of `outcomes`) back to pending with fresh attempts; reopens the job.
    func retry(job: String, outcomes: [OutcomeClass], now: Double) throws -> Int
    /// Marks active jobs with nothing pending or in flight complete; returns them.
    func completeFinishedJobs(now: Double) throws -> [Job]
    /// Pauses (state `failed`, with the reason) active jobs whose failed share exceeds `percent` once `minTasks` have
    /// finished; returns them.
    func applyFailureThreshold(percent: Double, minTasks: Int, now: Double) throws -> [Job]
    /// The daemon's measured rate per job, for `status`.
    func reportRates(_ perSecond: [Int64: Double], now: Double) throws
    /// Pending plus in-flight tasks of active jobs: zero means nothing left to run.
    func runnableCount() throws -> Int
    /// A job's tasks in id order, optionally only failed ones, for reports; `body` sees each.
    func forEachTask(job: String, failedOnly: Bool, _ body: (TaskRecord) throws -> Void) throws
}

/// What a claim leased, and which buckets it found with pending tasks (the caller may come back for them). A claim
/// looks at only as many buckets as it needs, so with many there may be more: `sawEveryBucket` is false then.
public struct Claim: Sendable {
    public var leases: [Lease]
    public var bucketsWithPending: Set<String>
    public var sawEveryBucket: Bool

    public init(leases: [Lease], bucketsWithPending: Set<String>, sawEveryBucket: Bool) {
        self.leases = leases
        self.bucketsWithPending = bucketsWithPending
        self.sawEveryBucket = sawEveryBucket
    }
}

extension TaskQueue {
    /// A claim with no per-bucket limit (tests, and callers with one bucket).
    public func claim(owner: String, limit: Int, now: Double, leaseSeconds: Double) throws -> [Lease] {
        try claim(owner: owner, limit: limit, perBucket: limit, queued: [:], now: now, leaseSeconds: leaseSeconds).leases
    }
}
