import CSQLite
import Domain
import Foundation

extension SQLiteJobStore: TaskQueue {
    /// The fewest tasks a claim takes from a bucket it visits, when the bucket has them and room for them. A bucket's
    /// tasks sit together in the pending index and, as manifests list a bucket's objects together, in the table: a run
    /// of them dirties a leaf or two of each, which the run's outcomes dirty again. Spread evenly instead, a claim of
    /// 1,024 over 2,000 buckets took one task from each: two leaves per task, twice. 300,000 tasks over 2,000 buckets
    /// (manifest sorted by bucket): 8.7 page writes per task and 9,500–10,600 objects/s with runs of 1; 2.1, 1.5 and
    /// 1.1 writes with runs of 16, 32 and 64, and 18,200–23,600 objects/s (bench/HISTORY.md, eleventh session).
    public static let minimumClaimRun = 64

    public func claim(owner: String, limit: Int, perBucket: Int, queued: [String: Int], now: Double,
                      leaseSeconds: Double) throws -> Claim {
        guard limit > 0, perBucket > 0 else { return Claim(leases: [], bucketsWithPending: [], sawEveryBucket: true) }
        return try withDatabase { db in
            try db.writeTransaction {
                let jobs = try db.prepare("SELECT id FROM jobs WHERE state = 'active' ORDER BY priority DESC, id")
                var jobIDs: [Int64] = []
                try jobs.forEachRow { jobIDs.append($0.int64(0)) }
                // The job's next bucket with pending tasks after ?2, one seek in tasks_pending. A claim walks only as
                // many buckets as it needs: listing them all cost one seek per bucket per claim, and at 100,000
                // buckets claims took most of the store's time (8,200 objects/s; bench/HISTORY.md, thirteenth session).
                let next = try db.prepare("SELECT min(bucket) FROM tasks WHERE job_id = ?1 AND state = 'pending' AND bucket > ?2")
                // Chosen and leased in one statement (UPDATE … RETURNING, SQLite 3.35+): one pass instead of a SELECT
                // and an UPDATE per task.
                let take = try db.prepare("""
                    UPDATE tasks SET state = 'in_flight', lease_owner = ?1, started_at = coalesce(started_at, ?2)
                    WHERE id IN (SELECT id FROM tasks WHERE job_id = ?3 AND bucket = ?4 AND state = 'pending' AND next_attempt_at <= ?2
                                 ORDER BY next_attempt_at LIMIT ?5)
                    RETURNING id, key, version_id, attempts, errors, throttles
                    """)
                var claimed: [Lease] = []
                var claimedPerBucket: [String: Int] = [:]  // across jobs, so one bucket's room is shared by all of them
                var seen: Set<String> = []
                var sawEveryBucket = true
                for jobID in jobIDs {
                    guard claimed.count < limit else {
                        sawEveryBucket = false
                        break
                    }
                    // Start after the bucket the previous claim ended on, so with more buckets than one claim can
                    // serve, every bucket gets its turn.
                    var walk = BucketWalk(statement: next, jobID: jobID, after: claimCursor(jobID))
                    func room(_ name: String) -> Int { perBucket - (queued[name] ?? 0) - (claimedPerBucket[name] ?? 0) }
                    func nextWithRoom() throws -> String? {
                        while let name = try walk.next() {
                            seen.insert(name)
                            if room(name) > 0 { return name }
                        }
                        return nil
                    }
                    // Enough buckets for runs of `minimumClaimRun` to fill the claim; should the job have fewer, an
                    // even share of the claim from each.
                    let wanted = (limit - claimed.count + Self.minimumClaimRun - 1) / Self.minimumClaimRun
                    var names: [String] = []
                    while names.count < wanted, let name = try nextWithRoom() { names.append(name) }
                    guard !names.isEmpty else { continue }
                    let even = walk.finished ? (limit - claimed.count + names.count - 1) / names.count : 0
                    let share = min(perBucket, max(even, Self.minimumClaimRun))
                    var batch: [Lease] = []
                    var i = 0
                    while claimed.count + batch.count < limit {
                        // The listed buckets, then more from the walk should some have had fewer due than their share.
                        let bucket: String
                        if i < names.count {
                            bucket = names[i]
                            i += 1
                        } else if let name = try nextWithRoom() {
                            bucket = name
                        } else {
                            break
                        }
                        take.bind(1, owner)
                        take.bind(2, now)
                        take.bind(3, jobID)
                        take.bind(4, bucket)
                        take.bind(5, min(share, room(bucket), limit - claimed.count - batch.count))
                        let before = batch.count
                        try take.forEachRow { r in
                            let version = r.string(2)
                            batch.append(Lease(taskID: r.int64(0), jobID: jobID,
                                               object: ObjectRef(bucket: bucket, key: r.string(1), versionId: version.isEmpty ? nil : version),
                                               attempts: r.int(3), errors: r.int(4), throttles: r.int(5)))
                        }
                        claimedPerBucket[bucket, default: 0] += batch.count - before
                        setClaimCursor(jobID, bucket)
                    }
                    if !walk.finished { sawEveryBucket = false }
                    if !batch.isEmpty { try moveCounts(db, jobID: jobID, batch.count, from: .pending, to: .inFlight) }
                    claimed += batch
                }
                if !claimed.isEmpty {
                    // In the same transaction as the tasks: a leased task's owner always has a lease row.
                    let lease = try db.prepare("""
                        INSERT INTO leases (owner, expires_at) VALUES (?1, ?2)
                        ON CONFLICT (owner) DO UPDATE SET expires_at = max(expires_at, excluded.expires_at)
                        """)
                    lease.bind(1, owner)
                    lease.bind(2, now + leaseSeconds)
                    try lease.run()
                }
                return Claim(leases: claimed, bucketsWithPending: seen, sawEveryBucket: sawEveryBucket)
            }
        }
    }

    @discardableResult
    public func record(_ results: [TaskResult], owner: String, now: Double) throws -> Int {
        guard !results.isEmpty else { return 0 }
        return try withDatabase { db in
            try db.writeTransaction {
                let finish = try db.prepare("""
                    UPDATE tasks SET state = ?, outcome = ?, attempts = ?, errors = ?, throttles = ?, http_status = ?,
                        error_code = ?, error_message = ?, request_id = ?, finished_at = ?, lease_owner = NULL
                    WHERE id = ? AND state = 'in_flight' AND lease_owner = ?
                    """)
                let again = try db.prepare("""
                    UPDATE tasks SET state = 'pending', next_attempt_at = ?, attempts = ?, errors = ?, throttles = ?, http_status = ?,
                        error_code = ?, error_message = ?, request_id = ?, lease_owner = NULL
                    WHERE id = ? AND state = 'in_flight' AND lease_owner = ?
                    """)
                var deltas: [CounterKey: Int] = [:]
                var recorded = 0
                for r in results {
                    switch r.disposition {
                    case .terminal(let outcome):
                        let state: TaskState = outcome == .succeeded ? .succeeded : (outcome.isSkipped ? .skipped : .failed)
                        finish.bind(1, state.rawValue)
                        finish.bind(2, outcome.rawValue)
                        finish.bind(3, r.attempts)
                        finish.bind(4, r.errors)
                        finish.bind(5, r.throttles)
                        finish.bind(6, r.httpStatus)
                        finish.bind(7, r.errorCode)
                        finish.bind(8, r.errorMessage)
                        finish.bind(9, r.requestID)
                        finish.bind(10, now)
                        finish.bind(11, r.taskID)
                        finish.bind(12, owner)
                        try finish.run()
                        guard db.changes == 1 else { continue }
                        deltas[CounterKey(jobID: r.jobID, state: .inFlight, outcome: nil), default: 0] -= 1
                        deltas[CounterKey(jobID: r.jobID, state: state, outcome: outcome), default: 0] += 1
                    case .retry(let notBefore):
                        again.bind(1, notBefore)
                        again.bind(2, r.attempts)
                        again.bind(3, r.errors)
                        again.bind(4, r.throttles)
                        again.bind(5, r.httpStatus)
                        again.bind(6, r.errorCode)
                        again.bind(7, r.errorMessage)
                        again.bind(8, r.requestID)
                        again.bind(9, r.taskID)
                        again.bind(10, owner)
                        try again.run()
                        guard db.changes == 1 else { continue }
                        deltas[CounterKey(jobID: r.jobID, state: .inFlight, outcome: nil), default: 0] -= 1
                        deltas[CounterKey(jobID: r.jobID, state: .pending, outcome: nil), default: 0] += 1
                    }
                    recorded += 1
                }
                for (k, d) in deltas { try addCounts(db, jobID: k.jobID, state: k.state, outcome: k.outcome, delta: d) }
                return recorded
            }
        }
    }

    public func release(taskIDs: [Int64], owner: String) throws {
        guard !taskIDs.isEmpty else { return }
        try withDatabase { db in
            try db.writeTransaction {
                let put = try db.prepare("""
                    UPDATE tasks SET state = 'pending', lease_owner = NULL WHERE id = ? AND state = 'in_flight' AND lease_owner = ?
                    RETURNING job_id
                    """)
                var perJob: [Int64: Int] = [:]
                for id in taskIDs {
                    put.bind(1, id)
                    put.bind(2, owner)
                    try put.forEachRow { perJob[$0.int64(0), default: 0] += 1 }
                }
                for (job, n) in perJob { try moveCounts(db, jobID: job, n, from: .inFlight, to: .pending) }
            }
        }
    }

    public func renewLeases(owner: String, until: Double) throws {
        try withDatabase { db in
            let s = try db.prepare("UPDATE leases SET expires_at = max(expires_at, ?) WHERE owner = ?")
            s.bind(1, until)
            s.bind(2, owner)
            try s.run()
        }
    }

    @discardableResult
    public func expireLeases(now: Double) throws -> Int {
        try withDatabase { db in try db.writeTransaction { try expireDue(db, now: now) } }
    }

    @discardableResult
    public func recoverLeases(now: Double) throws -> Int {
        try withDatabase { db in
            try db.writeTransaction {
                if try inFlightCount(db) > 0 {
                    // In-flight tasks whose owner has no lease row were leased by a reencryptd from before schema 4
                    // that went on running after a newer one migrated the store (an upgrade while the daemon ran).
                    // Their owner gets a lease until the latest expiry among them, and it expires like any other.
                    let adopt = try db.prepare("""
                        INSERT INTO leases (owner, expires_at)
                        SELECT lease_owner, coalesce(max(lease_expires_at), 0) FROM tasks
                        WHERE state = 'in_flight' AND lease_owner IS NOT NULL AND lease_owner NOT IN (SELECT owner FROM leases)
                        GROUP BY lease_owner
                        """)
                    try adopt.run()
                }
                return try expireDue(db, now: now)
            }
        }
    }

    public func endLease(owner: String) throws {
        try withDatabase { db in
            try db.writeTransaction {
                _ = try putBack(db, heldBy: "?1") { $0.bind(1, owner) }
                let drop = try db.prepare("DELETE FROM leases WHERE owner = ?")
                drop.bind(1, owner)
                try drop.run()
            }
        }
    }

    /// The workers holding a lease, by name; for tests and diagnostics.
    public func leaseHolders() throws -> [String] {
        try withDatabase { db in
            let s = try db.prepare("SELECT owner FROM leases ORDER BY owner")
            var owners: [String] = []
            try s.forEachRow { owners.append($0.string(0)) }
            return owners
        }
    }

    /// Returns to pending the tasks of every owner whose lease expired before `now`, and ends those leases.
    private func expireDue(_ db: Database, now: Double) throws -> Int {
        let expired = try db.prepare("SELECT count(*) FROM leases WHERE expires_at < ?")
        expired.bind(1, now)
        var owners = 0
        try expired.forEachRow { owners = $0.int(0) }
        guard owners > 0 else { return 0 }
        let returned = try putBack(db, heldBy: "SELECT owner FROM leases WHERE expires_at < ?1") { $0.bind(1, now) }
        let drop = try db.prepare("DELETE FROM leases WHERE expires_at < ?")
        drop.bind(1, now)
        try drop.run()
        return returned
    }

    /// Returns to pending every task held by the owners `owners` lists (SQL for an `IN (…)` list, its parameter bound
    /// by `bind`); returns how many. No index finds them (see schema 4): this scans the tasks once, unless the
    /// counters say no task at all is in flight, the usual case at a clean exit.
    private func putBack(_ db: Database, heldBy owners: String, _ bind: (Statement) -> Void) throws -> Int {
        guard try inFlightCount(db) > 0 else { return 0 }
        let put = try db.prepare("""
            UPDATE tasks SET state = 'pending', lease_owner = NULL WHERE state = 'in_flight' AND lease_owner IN (\(owners))
            RETURNING job_id
            """)
        bind(put)
        var perJob: [Int64: Int] = [:]
        try put.forEachRow { perJob[$0.int64(0), default: 0] += 1 }
        for (job, n) in perJob { try moveCounts(db, jobID: job, n, from: .inFlight, to: .pending) }
        return perJob.values.reduce(0, +)
    }

    /// Tasks in flight in every job, from the counters.
    private func inFlightCount(_ db: Database) throws -> Int {
        let s = try db.prepare("SELECT coalesce(sum(n), 0) FROM task_counts WHERE state = 'in_flight'")
        var n = 0
        try s.forEachRow { n = $0.int(0) }
        return n
    }

    public func retry(job name: String, outcomes: [OutcomeClass], now: Double) throws -> Int {
        try withDatabase { db in
            try db.writeTransaction {
                let find = try db.prepare("SELECT id, state FROM jobs WHERE name = ?")
                find.bind(1, name)
                var found: (Int64, String)?
                try find.forEachRow { found = ($0.int64(0), $0.string(1)) }
                guard let (jobID, state) = found else { throw JobStoreError.noSuchJob(name) }
                if state == JobState.cancelled.rawValue { throw JobStoreError("job '\(name)' is cancelled; its tasks cannot be retried") }
                let classes = outcomes.isEmpty ? OutcomeClass.failureClasses : outcomes
                var total = 0
                let put = try db.prepare("""
                    UPDATE tasks SET state = 'pending', outcome = NULL, attempts = 0, errors = 0, throttles = 0, next_attempt_at = 0,
                        finished_at = NULL WHERE job_id = ? AND state = 'failed' AND outcome = ?
                    """)
                for c in classes {
                    put.bind(1, jobID)
                    put.bind(2, c.rawValue)
                    try put.run()
                    let n = db.changes
                    if n > 0 { try moveCounts(db, jobID: jobID, n, from: .failed, outcome: c, to: .pending) }
                    total += n
                }
                if total > 0 {
                    // A finished job (complete, or failed at the threshold) runs again; a paused one waits for `resume`.
                    let reopen = try db.prepare("""
                        UPDATE jobs SET state = 'active', state_reason = NULL, updated_at = ?
                        WHERE id = ? AND state IN ('complete', 'failed')
                        """)
                    reopen.bind(1, now)
                    reopen.bind(2, jobID)
                    try reopen.run()
                }
                return total
            }
        }
    }

    public func completeFinishedJobs(now: Double) throws -> [Job] {
        try withDatabase { db in
            try db.writeTransaction {
                let find = try db.prepare("""
                    SELECT j.name FROM jobs j WHERE j.state = 'active' AND NOT EXISTS (
                        SELECT 1 FROM task_counts c WHERE c.job_id = j.id AND c.state IN ('pending', 'in_flight') AND c.n > 0)
                    """)
                var names: [String] = []
                try find.forEachRow { names.append($0.string(0)) }
                let set = try db.prepare("UPDATE jobs SET state = 'complete', state_reason = NULL, updated_at = ? WHERE name = ?")
                for name in names {
                    set.bind(1, now)
                    set.bind(2, name)
                    try set.run()
                }
                return try names.compactMap { try fetchJob(named: $0) }
            }
        }
    }

    public func applyFailureThreshold(percent: Double, minTasks: Int, now: Double) throws -> [Job] {
        try withDatabase { db in
            try db.writeTransaction {
                let find = try db.prepare("""
                    SELECT j.name, j.id,
                        coalesce(sum(CASE WHEN c.state = 'failed' THEN c.n END), 0),
                        coalesce(sum(CASE WHEN c.state IN ('failed', 'succeeded') THEN c.n END), 0)
                    FROM jobs j JOIN task_counts c ON c.job_id = j.id
                    WHERE j.state = 'active' GROUP BY j.id
                    """)
                var crossed: [(name: String, id: Int64, failed: Int, finished: Int)] = []
                try find.forEachRow { r in
                    let failed = r.int(2), finished = r.int(3)
                    if finished >= max(1, minTasks), Double(failed) * 100 > percent * Double(finished) {
                        crossed.append((r.string(0), r.int64(1), failed, finished))
                    }
                }
                let set = try db.prepare("UPDATE jobs SET state = 'failed', state_reason = ?, updated_at = ? WHERE name = ?")
                for job in crossed {
                    let share = Double(job.failed) * 100 / Double(job.finished)
                    var reason = String(format: "failure threshold crossed: %d of %d finished tasks failed (%.1f%% > %.0f%%)",
                                        job.failed, job.finished, share, percent)
                    if let cause = try commonestFailure(db, jobID: job.id) { reason += ", most of them \(cause)" }
                    reason += "; fix the cause, then `reencryptd retry --job \(job.name)` to run the failed tasks again and go "
                        + "on, or `reencryptd resume --job \(job.name)` to go on without them"
                    set.bind(1, reason)
                    set.bind(2, now)
                    set.bind(3, job.name)
                    try set.run()
                }
                return try crossed.compactMap { try fetchJob(named: $0.name) }
            }
        }
    }

    /// The job's commonest failure class with one example of its error, e.g.
    /// `access-denied (1015; e.g. HTTP 403 SignatureDoesNotMatch: The request signature we calculated…)`, so that the
    /// reason a job paused itself names what to fix. The class comes from the counters; the example is the first such
    /// task in table order (claims go in that order, so it is found among the first rows read).
    private func commonestFailure(_ db: Database, jobID: Int64) throws -> String? {
        let top = try db.prepare("""
            SELECT outcome, n FROM task_counts WHERE job_id = ? AND state = 'failed' AND n > 0 ORDER BY n DESC, outcome LIMIT 1
            """)
        top.bind(1, jobID)
        var found: (outcome: String, n: Int)?
        try top.forEachRow { found = ($0.string(0), $0.int(1)) }
        guard let found else { return nil }
        let example = try db.prepare("""
            SELECT http_status, error_code, error_message FROM tasks NOT INDEXED
            WHERE job_id = ? AND state = 'failed' AND outcome = ? LIMIT 1
            """)
        example.bind(1, jobID)
        example.bind(2, found.outcome)
        var text = "\(found.outcome) (\(found.n)"
        try example.forEachRow { r in
            var parts: [String] = []
            if r.int(0) > 0 { parts.append("HTTP \(r.int(0))") }
            if !r.string(1).isEmpty { parts.append(r.string(1)) }
            var line = parts.joined(separator: " ")
            let message = r.string(2)
            if !message.isEmpty { line += (line.isEmpty ? "" : ": ") + (message.count > 160 ? message.prefix(160) + "…" : message) }
            if !line.isEmpty { text += "; e.g. " + line }
        }
        return text + ")"
    }

    public func reportRates(_ perSecond: [Int64: Double], now: Double) throws {
        try withDatabase { db in
            let s = try db.prepare("""
                INSERT INTO job_rates (job_id, per_second, measured_at) VALUES (?, ?, ?)
                ON CONFLICT (job_id) DO UPDATE SET per_second = excluded.per_second, measured_at = excluded.measured_at
                """)
            for (job, rate) in perSecond {
                s.bind(1, job)
                s.bind(2, rate)
                s.bind(3, now)
                try s.run()
            }
        }
    }

    public func runnableCount() throws -> Int {
        try withDatabase { db in
            let s = try db.prepare("""
                SELECT coalesce(sum(c.n), 0) FROM task_counts c JOIN jobs j ON j.id = c.job_id
                WHERE j.state = 'active' AND c.state IN ('pending', 'in_flight')
                """)
            defer { s.reset() }
            return try s.step() ? s.int(0) : 0
        }
    }

    public func forEachTask(job name: String, failedOnly: Bool, _ body: (TaskRecord) throws -> Void) throws {
        try withDatabase { db in
            guard let job = try fetchJob(named: name) else { throw JobStoreError.noSuchJob(name) }
            let s = try db.prepare("""
                SELECT bucket, key, version_id, state, outcome, attempts, http_status, error_code, error_message, request_id,
                       created_at, started_at, finished_at
                FROM tasks WHERE job_id = ? \(failedOnly ? "AND state = 'failed'" : "") ORDER BY id
                """)
            s.bind(1, job.id)
            try s.forEachRow { r in
                let version = r.string(2)
                try body(TaskRecord(object: ObjectRef(bucket: r.string(0), key: r.string(1), versionId: version.isEmpty ? nil : version),
                                    state: TaskState(rawValue: r.string(3)) ?? .pending,
                                    outcome: r.optionalString(4).map { OutcomeClass(rawValue: $0) }, attempts: r.int(5),
                                    httpStatus: r.optionalInt(6), errorCode: r.optionalString(7), errorMessage: r.optionalString(8),
                                    requestID: r.optionalString(9), createdAt: r.double(10), startedAt: r.optionalDouble(11),
                                    finishedAt: r.optionalDouble(12)))
            }
        }
    }
}

struct CounterKey: Hashable {
    var jobID: Int64
    var state: TaskState
    var outcome: OutcomeClass?
}

/// A job's buckets with pending tasks in name order, from the first after `after`, wrapping round once to end with
/// `after` itself: one index seek per bucket, taken only when the claim needs another.
private struct BucketWalk {
    let statement: Statement
    let jobID: Int64
    let start: String
    private var last: String
    private var wrapped = false
    /// Every bucket has been listed.
    private(set) var finished = false

    init(statement: Statement, jobID: Int64, after: String) {
        self.statement = statement
        self.jobID = jobID
        start = after
        last = after
    }

    mutating func next() throws -> String? {
        while !finished {
            statement.bind(1, jobID)
            statement.bind(2, last)  // bucket names are never empty, so "" comes before them all
            var name: String?
            try statement.forEachRow { name = $0.optionalString(0) }
            if let name, !wrapped || name <= start {
                last = name
                return name
            }
            if wrapped || start.isEmpty {
                finished = true
            } else {
                wrapped = true
                last = ""
            }
        }
        return nil
    }
}
