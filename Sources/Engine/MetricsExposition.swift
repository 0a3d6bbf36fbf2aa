import Domain
import JobStore

/// Prometheus text exposition (format 0.0.4) of the daemon's state, for `[metrics] listen`. Hand-written: a few
/// counters rendered on scrape do not need a metrics library's registry on the hot path.
/// https://prometheus.io/docs/instrumenting/exposition_formats/
public enum MetricsExposition {
    public static func render(_ p: EngineProgress, jobs: [JobSummary]) -> String {
        var out = ""
        func family(_ name: String, _ type: String, _ help: String) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
        }
        family("reencryptd_tasks_total", "counter", "Tasks finished by this daemon, by outcome class.")
        for (outcome, n) in p.outcomes.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            out += "reencryptd_tasks_total{outcome=\"\(outcome.rawValue)\"} \(n)\n"
        }
        family("reencryptd_task_retries_total", "counter", "Attempts that will be retried.")
        out += "reencryptd_task_retries_total \(p.retried)\n"
        family("reencryptd_requests_total", "counter", "UpdateObjectEncryption answers by HTTP status (0: no answer).")
        for (status, n) in p.responsesByStatus.sorted(by: { $0.key < $1.key }) {
            out += "reencryptd_requests_total{status=\"\(status)\"} \(n)\n"
        }
        family("reencryptd_throttles_total", "counter", "Answers that were throttling (SlowDown, 429, ...).")
        out += "reencryptd_throttles_total \(p.throttled)\n"
        family("reencryptd_requests_in_flight", "gauge", "UpdateObjectEncryption calls in flight.")
        out += "reencryptd_requests_in_flight \(p.inFlight)\n"
        family("reencryptd_tasks_queued", "gauge", "Claimed tasks waiting for a rate-limit token or a free slot.")
        out += "reencryptd_tasks_queued \(p.queued)\n"
        family("reencryptd_rate_limit_requests_per_second", "gauge", "The tightest adaptive per-bucket limit (absent when none applies).")
        if let limit = p.tightestBucketLimit { out += "reencryptd_rate_limit_requests_per_second \(limit)\n" }
        family("reencryptd_s3_unreachable", "gauge", "1 while calls are held because S3 cannot be reached, else 0.")
        out += "reencryptd_s3_unreachable \(p.s3Unreachable ? 1 : 0)\n"
        family("reencryptd_objects_per_second", "gauge", "Objects finished per second, smoothed.")
        out += "reencryptd_objects_per_second \(p.ratePerSecond)\n"
        family("reencryptd_request_duration_seconds", "histogram", "UpdateObjectEncryption latency.")
        var cumulative = 0
        for (i, bound) in LatencyHistogram.bounds.enumerated() {
            cumulative += p.latency.counts[i]
            out += "reencryptd_request_duration_seconds_bucket{le=\"\(bound)\"} \(cumulative)\n"
        }
        out += "reencryptd_request_duration_seconds_bucket{le=\"+Inf\"} \(p.latency.count)\n"
        out += "reencryptd_request_duration_seconds_sum \(p.latency.sum)\n"
        out += "reencryptd_request_duration_seconds_count \(p.latency.count)\n"
        family("reencryptd_job_tasks", "gauge", "Tasks per job and state (pending is the queue depth).")
        for job in jobs {
            for state in TaskState.allCases {
                out += "reencryptd_job_tasks{job=\"\(escape(job.job.spec.name))\",state=\"\(state.rawValue)\"} \(job.tasks[state] ?? 0)\n"
            }
        }
        return out
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n")
    }
}
