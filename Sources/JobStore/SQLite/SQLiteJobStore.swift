import CSQLite
import Domain
import Foundation

/// The one-host job store: SQLite in WAL mode, so readers (`status`) never block the daemon's writer.
///
/// Thread safety: one connection, every call serialised by `lock`; that is what makes `@unchecked Sendable` sound.
/// The engine batches its writes, so one connection is not the bottleneck.
public final class SQLiteJobStore: JobStore, @unchecked Sendable {
    public let path: String
    private let db: Database
    private let lock = NSLock()
    /// Per job, the bucket the last claim ended on (guarded by `lock`, like the database handle).
    private var claimCursors: [Int64: String] = [:]

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    /// - Parameters:
    ///   - busyTimeoutMilliseconds: how long a call waits for another process's write lock.
    ///   - cacheMegabytes: SQLite's page cache. 32 MB suits `submit` (its peak RSS stays under 100 MB); the daemon
    ///     opens with `daemonCacheMegabytes`.
    /// `create`: make the database file if it is missing (`submit`, `run`); when false, a missing file throws
    /// `StoreNotFound` instead of leaving an empty store behind.
    public init(path: String, busyTimeoutMilliseconds: Int32 = 10_000, cacheMegabytes: Int = 32, create: Bool = true) throws {
        self.path = path
        db = try Database(path: path, create: create)
        sqlite3_busy_timeout(db.handle, busyTimeoutMilliseconds)
        // WAL: `status` and `submit` read while `run` writes. synchronous=NORMAL is durable against a process
        // crash (kill -9) in WAL mode; only an OS crash or power loss can lose the last commits.
        // https://www.sqlite.org/wal.html , https://www.sqlite.org/pragma.html#pragma_synchronous
        try db.execute("PRAGMA journal_mode=WAL")
        try db.execute("PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-\(cacheMegabytes * 1000); "
            + "PRAGMA temp_store=MEMORY")
        // Checkpoint every 4,000 WAL pages (16 MB) rather than SQLite's 1,000: a checkpoint copies each page once
        // however often it changed since the last one, then syncs. In bench (a): 27% fewer reads, 5% fewer writes,
        // a quarter of the syncs, and 5% less daemon CPU per object on average over six interleaved pairs (lower in
        // five). https://www.sqlite.org/pragma.html#pragma_wal_autocheckpoint
        // https://sqlite.org/c3ref/wal_autocheckpoint.html
        try db.execute("PRAGMA wal_autocheckpoint=\(Self.checkpointPages)")
        try migrate()
    }

    public static let schemaVersion = Schema.migrations.count

    /// WAL pages between automatic checkpoints (see `init`).
    static let checkpointPages = 4000

    /// The page cache `reencryptd run` opens with. Small on purpose. The daemon's reads and writes move through the
    /// store in order (claims walk each bucket's pending tasks in rowid order, outcomes update the rows just claimed),
    /// so a few thousand pages hold what it touches: 16 MB is some 3,900 pages, and each bucket being claimed from
    /// needs a leaf of the pending index and one of the table, plus the trees' upper pages.
    /// A big cache costs time at every commit: a B-tree rebalance (`balance_nonroot`) swaps page numbers through the
    /// lock-byte page's number (262,145 at 4 KiB pages, https://www.sqlite.org/fileformat.html#the_lock_byte_page),
    /// which leaves the cache's largest key far past the end of the database, so the commit's truncation walks the
    /// whole cache hash table (`pcache1TruncateUnsafe`, SQLite 3.40; seen with perf uprobes). With 64 MB that walk
    /// took 0.4 ms at some 150 commits a second, 4.3% of the daemon's CPU in bench (a), against 1.2% with 16 MB;
    /// peak RSS fell from 116 to 66 MB.
    public static let daemonCacheMegabytes = 16

    private func migrate() throws {
        let current = try userVersion()
        if current > Schema.migrations.count {
            throw StoreError(code: SQLITE_ERROR, message: "the database has schema version \(current), newer than this "
                + "reencryptd knows (\(Schema.migrations.count)); upgrade reencryptd", sql: nil, path: path)
        }
        for (index, sql) in Schema.migrations.enumerated() where index >= current {
            try db.writeTransaction {
                // Re-read under the write lock: another process may have migrated meanwhile.
                guard try userVersion() == index else { return }
                try db.execute(sql)
                try db.execute("PRAGMA user_version = \(index + 1)")
            }
        }
    }

    private func userVersion() throws -> Int {
        let stmt = try db.prepare("PRAGMA user_version")
        defer { stmt.reset() }
        return try stmt.step() ? stmt.int(0) : 0
    }

    private func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body()
    }

    /// Serialised access to the connection for the engine's operations (SQLiteTaskQueue.swift).
    func withDatabase<T>(_ body: (Database) throws -> T) throws -> T {
        try locked { try body(db) }
    }


    // MARK: Jobs

    private static let jobColumns =
        "id, name, kms_key_arn, bucket_key_enabled, expected_bucket_owner, priority, state, state_reason, created_at, updated_at"

    private func readJob(_ s: Statement) throws -> Job {
        let name = s.string(1)
        do {
            let spec = JobSpec(name: name, kmsKeyARN: try KMSKeyARN(s.string(2)), bucketKeyEnabled: s.int(3) != 0,
                               expectedBucketOwner: try s.optionalString(4).map { try AccountID($0) }, priority: s.int(5))
            guard let state = JobState(rawValue: s.string(6)) else {
                throw InvalidInput("unknown state '\(s.string(6))'")
            }
            return Job(id: s.int64(0), spec: spec, state: state, stateReason: s.optionalString(7),
                       createdAt: s.double(8), updatedAt: s.double(9))
        } catch {
            throw StoreError(code: SQLITE_CORRUPT, message: "job '\(name)' holds an invalid value: \(error)", sql: nil, path: path)
        }
    }

    /// Call with the lock held (inside `locked` or `withDatabase`).
    func fetchJob(named name: String) throws -> Job? {
        let s = try db.prepare("SELECT \(Self.jobColumns) FROM jobs WHERE name = ?")
        s.bind(1, name)
        defer { s.reset() }
        return try s.step() ? readJob(s) : nil
    }

    public func job(named name: String) throws -> Job? {
        try locked { try fetchJob(named: name) }
    }

    public func jobs() throws -> [Job] {
        try locked {
            let s = try db.prepare("SELECT \(Self.jobColumns) FROM jobs ORDER BY priority DESC, id")
            var result: [Job] = []
            try s.forEachRow { result.append(try readJob($0)) }
            return result
        }
    }

    @discardableResult
    public func setState(ofJob name: String, to state: JobState, reason: String?, now: Double) throws -> Job {
        try locked {
            try db.writeTransaction {
                guard var job = try fetchJob(named: name) else { throw JobStoreError.noSuchJob(name) }
                guard job.state != state || job.stateReason != reason else { return job }
                if let refusal = Self.refusal(from: job.state, to: state, name: name) { throw refusal }
                let s = try db.prepare("UPDATE jobs SET state = ?, state_reason = ?, updated_at = ? WHERE id = ?")
                s.bind(1, state.rawValue)
                s.bind(2, reason)
                s.bind(3, now)
                s.bind(4, job.id)
                try s.run()
                job.state = state
                job.stateReason = reason
                job.updatedAt = now
                return job
            }
        }
    }

    /// The transitions PRODUCT.md §3 allows: any, except out of a finished state (complete, cancelled); nil when allowed.
    static func refusal(from: JobState, to: JobState, name: String) -> JobStoreError? {
        guard from.isFinished else { return nil }
        return JobStoreError("job '\(name)' is \(from.rawValue); a finished job cannot become \(to.rawValue)")
    }

    // MARK: Submit

    public func submit(_ spec: JobSpec, now: Double, load: (any TaskSink) throws -> Void) throws -> SubmitResult {
        try locked {
            try db.writeTransaction {
                var created = false
                let job: Job
                if let existing = try fetchJob(named: spec.name) {
                    if existing.state.isFinished {
                        throw JobStoreError("job '\(spec.name)' is \(existing.state.rawValue) and takes no more manifests; "
                            + "submit under a new job name")
                    }
                    if let mismatch = Self.mismatch(existing.spec, spec) {
                        throw JobStoreError("job '\(spec.name)' already exists with \(mismatch); submit with the same "
                            + "settings or under a new job name")
                    }
                    job = existing
                } else {
                    let s = try db.prepare("""
                        INSERT INTO jobs (name, kms_key_arn, bucket_key_enabled, expected_bucket_owner, priority, state,
                                          created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'active', ?, ?)
                        """)
                    s.bind(1, spec.name)
                    s.bind(2, spec.kmsKeyARN.rawValue)
                    s.bind(3, spec.bucketKeyEnabled ? 1 : 0)
                    s.bind(4, spec.expectedBucketOwner?.rawValue)
                    s.bind(5, spec.priority)
                    s.bind(6, now)
                    s.bind(7, now)
                    try s.run()
                    job = Job(id: db.lastInsertRowID, spec: spec, state: .active, stateReason: nil, createdAt: now, updatedAt: now)
                    created = true
                }
                let sink = try SQLiteTaskSink(db: db, jobID: job.id, now: now)
                try load(sink)
                try addCounts(jobID: job.id, state: .pending, outcome: nil, delta: sink.pending)
                for (outcome, n) in sink.skippedByClass {
                    try addCounts(jobID: job.id, state: .skipped, outcome: outcome, delta: n)
                }
                let added = sink.pending + sink.skippedByClass.values.reduce(0, +)
                return SubmitResult(job: job, createdJob: created, added: added, duplicates: sink.duplicates,
                                    skipped: added - sink.pending)
            }
        }
    }

    private static func mismatch(_ a: JobSpec, _ b: JobSpec) -> String? {
        if a.kmsKeyARN != b.kmsKeyARN { return "KMS key \(a.kmsKeyARN)" }
        if a.bucketKeyEnabled != b.bucketKeyEnabled { return "bucket key \(a.bucketKeyEnabled ? "enabled" : "disabled")" }
        if a.expectedBucketOwner != b.expectedBucketOwner {
            return "expected bucket owner \(a.expectedBucketOwner?.rawValue ?? "(none)")"
        }
        return nil
    }

    private func addCounts(jobID: Int64, state: TaskState, outcome: OutcomeClass?, delta: Int) throws {
        try addCounts(db, jobID: jobID, state: state, outcome: outcome, delta: delta)
    }

    /// Counts `n` of a job's tasks as moved from one state (and outcome) to another; inside the move's transaction.
    func moveCounts(_ db: Database, jobID: Int64, _ n: Int, from: TaskState, outcome: OutcomeClass? = nil,
                    to: TaskState) throws {
        try addCounts(db, jobID: jobID, state: from, outcome: outcome, delta: -n)
        try addCounts(db, jobID: jobID, state: to, outcome: nil, delta: n)
    }

    /// Keeps `task_counts` in step with a transition; call inside the transition's transaction.
    func addCounts(_ db: Database, jobID: Int64, state: TaskState, outcome: OutcomeClass?, delta: Int) throws {
        guard delta != 0 else { return }
        let s = try db.prepare("""
            INSERT INTO task_counts (job_id, state, outcome, n) VALUES (?, ?, ?, ?)
            ON CONFLICT (job_id, state, outcome) DO UPDATE SET n = n + excluded.n
            """)
        s.bind(1, jobID)
        s.bind(2, state.rawValue)
        s.bind(3, outcome?.rawValue ?? "")
        s.bind(4, delta)
        try s.run()
    }

    // MARK: Status

    public func summaries(now: Double) throws -> [JobSummary] {
        try locked {
            try db.readTransaction {
                let s = try db.prepare("SELECT \(Self.jobColumns) FROM jobs ORDER BY priority DESC, id")
                var jobs: [Job] = []
                try s.forEachRow { jobs.append(try readJob($0)) }
                let counts = try db.prepare("SELECT state, outcome, n FROM task_counts WHERE job_id = ? AND n <> 0")
                let rate = try db.prepare("SELECT per_second, measured_at FROM job_rates WHERE job_id = ?")
                return try jobs.map { job in
                    var tasks: [TaskState: Int] = [:]
                    var outcomes: [OutcomeClass: Int] = [:]
                    counts.bind(1, job.id)
                    try counts.forEachRow { row in
                        let n = row.int(2)
                        if let state = TaskState(rawValue: row.string(0)) { tasks[state, default: 0] += n }
                        let outcome = row.string(1)
                        if !outcome.isEmpty { outcomes[OutcomeClass(rawValue: outcome), default: 0] += n }
                    }
                    rate.bind(1, job.id)
                    var perSecond = 0.0
                    try rate.forEachRow { row in
                        // A rate older than 30 s belongs to a daemon that has stopped.
                        if now - row.double(1) < 30 { perSecond = row.double(0) }
                    }
                    let total = tasks.values.reduce(0, +)
                    var summary = JobSummary(job: job, total: total, tasks: tasks, outcomes: outcomes,
                                             ratePerSecond: perSecond, etaSeconds: nil)
                    if summary.remaining == 0 {
                        summary.etaSeconds = 0
                    } else if perSecond > 0, job.state == .active {
                        summary.etaSeconds = Double(summary.remaining) / perSecond
                    }
                    return summary
                }
            }
        }
    }

    /// Recounts from the tasks table and compares with the kept counters; for tests and `status --verify`.
    public func countersAgreeWithTasks() throws -> Bool {
        try locked {
            try db.readTransaction {
                func collect(_ sql: String) throws -> [String: Int] {
                    var map: [String: Int] = [:]
                    try db.prepare(sql).forEachRow { map["\($0.int64(0))/\($0.string(1))/\($0.string(2))", default: 0] += $0.int(3) }
                    return map
                }
                let kept = try collect("SELECT job_id, state, outcome, n FROM task_counts WHERE n <> 0")
                let real = try collect("SELECT job_id, state, coalesce(outcome, ''), count(*) FROM tasks GROUP BY 1, 2, 3")
                return kept == real
            }
        }
    }
}

/// Inserts a submit's tasks with one prepared statement inside the submit's transaction.
private final class SQLiteTaskSink: TaskSink {
    private let db: Database
    private let insert: Statement
    private let jobID: Int64
    private let now: Double
    var pending = 0
    var duplicates = 0
    var skippedByClass: [OutcomeClass: Int] = [:]

    init(db: Database, jobID: Int64, now: Double) throws {
        self.db = db
        self.jobID = jobID
        self.now = now
        insert = try db.prepare("""
            INSERT OR IGNORE INTO tasks (job_id, bucket, key, version_id, state, outcome, created_at, finished_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?)
            """)
    }

    func add(_ object: ObjectRef, skippedAs: OutcomeClass?) throws -> Bool {
        insert.bind(1, jobID)
        insert.bind(2, object.bucket)
        insert.bind(3, object.key)
        insert.bind(4, object.versionId ?? "")
        insert.bind(5, skippedAs == nil ? TaskState.pending.rawValue : TaskState.skipped.rawValue)
        insert.bind(6, skippedAs?.rawValue)
        insert.bind(7, now)
        insert.bind(8, skippedAs == nil ? nil : now)
        try insert.run()
        guard db.changes == 1 else {
            duplicates += 1
            return false
        }
        if let skippedAs { skippedByClass[skippedAs, default: 0] += 1 } else { pending += 1 }
        return true
    }
}

extension SQLiteJobStore {
    /// Called with `lock` held (inside `withDatabase`).
    func claimCursor(_ jobID: Int64) -> String { claimCursors[jobID] ?? "" }
    func setClaimCursor(_ jobID: Int64, _ bucket: String) { claimCursors[jobID] = bucket }
}
