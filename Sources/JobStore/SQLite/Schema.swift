/// Schema migrations, applied in order; `PRAGMA user_version` records how many have run.
/// Append new migrations; never edit one that has shipped.
enum Schema {
    static let migrations: [String] = [
        // 1: jobs, tasks, per-job counters, rate samples.
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            kms_key_arn TEXT NOT NULL,
            bucket_key_enabled INTEGER NOT NULL,
            expected_bucket_owner TEXT,
            priority INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL,
            state_reason TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        ) STRICT;
        -- version_id is '' for "the current version", so the unique index treats it as a value (NULLs never collide).
        CREATE TABLE tasks (
            id INTEGER PRIMARY KEY,
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            bucket TEXT NOT NULL,
            key TEXT NOT NULL,
            version_id TEXT NOT NULL DEFAULT '',
            state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires_at REAL,
            outcome TEXT,
            http_status INTEGER,
            error_code TEXT,
            error_message TEXT,
            request_id TEXT,
            created_at REAL NOT NULL,
            started_at REAL,
            finished_at REAL
        ) STRICT;
        CREATE UNIQUE INDEX tasks_object ON tasks(job_id, bucket, key, version_id);
        -- Claims read pending tasks of a job in next-attempt order; new tasks append at the index's end.
        CREATE INDEX tasks_runnable ON tasks(job_id, state, next_attempt_at);
        -- Counters kept in step with every transition, in the same transaction, so `status` is instant at millions of tasks.
        CREATE TABLE task_counts (
            job_id INTEGER NOT NULL REFERENCES jobs(id),
            state TEXT NOT NULL,
            outcome TEXT NOT NULL DEFAULT '',
            n INTEGER NOT NULL,
            PRIMARY KEY (job_id, state, outcome)
        ) STRICT, WITHOUT ROWID;
        -- The running daemon's measured rate per job, for `status`.
        CREATE TABLE job_rates (
            job_id INTEGER PRIMARY KEY REFERENCES jobs(id),
            per_second REAL NOT NULL,
            measured_at REAL NOT NULL
        ) STRICT;
        """,
        // 2: the retry budget counts errors and throttles apart (throttles use it up more slowly); an index for reports
        // and the engine's lease expiry.
        """
        ALTER TABLE tasks ADD COLUMN errors INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE tasks ADD COLUMN throttles INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX tasks_leases ON tasks(state, lease_expires_at) WHERE state = 'in_flight';
        """,
        // 3: claims go bucket by bucket (fairness across buckets), reading only pending tasks; finished tasks leave
        // the index, so recording an outcome no longer writes to it.
        """
        DROP INDEX tasks_runnable;
        CREATE INDEX tasks_pending ON tasks(job_id, bucket, next_attempt_at) WHERE state = 'pending';
        """,
        // 4: a lease is held by a worker, not by each task: one row per owner with its expiry, renewed in one write.
        // A leased task names its owner only. The per-task expiry and its index cost an index insert and delete per
        // task, and a rewrite of every held row per renewal: without them a run writes 20% fewer pages and spends 4.5%
        // fewer instructions per task (bench/HISTORY.md, tenth session). The price: a dead worker's tasks are found by
        // scanning the table, once, when its lease expires (about 0.1 s per million tasks).
        // `tasks.lease_expires_at` is no longer used (dropping a column rewrites the table).
        """
        CREATE TABLE leases (
            owner TEXT PRIMARY KEY,
            expires_at REAL NOT NULL
        ) STRICT, WITHOUT ROWID;
        INSERT INTO leases (owner, expires_at)
            SELECT lease_owner, max(lease_expires_at) FROM tasks
            WHERE state = 'in_flight' AND lease_owner IS NOT NULL GROUP BY lease_owner;
        UPDATE tasks SET lease_expires_at = NULL WHERE state = 'in_flight';
        DROP INDEX tasks_leases;
        """,
    ]
}
