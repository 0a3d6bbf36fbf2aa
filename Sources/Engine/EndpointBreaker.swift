/// Holds every call while S3 cannot be reached at all, so that an outage does not use up the tasks' retry budgets.
///
/// Without it, each task backs off on its own: with S3 (or the network, or the credential source) down, hundreds of
/// tasks a second fail, back off and fail again, and within a minute thousands end `retries-exhausted` (seen: 1,000 of
/// 5,000 in 18 s against a closed port, and the job then paused itself at the failure threshold). An outage is not the
/// objects' fault. This is the circuit breaker the SDKs approximate with a retry quota (botocore's standard mode stops
/// retrying once its quota is spent), shaped for a daemon that must wait the outage out rather than give up:
/// - closed: calls go out; `tripAfter` calls in a row that got no HTTP answer (refused, reset, timed out, no
///   credentials) open it. Any answer from S3, from any bucket, resets the count. A 5xx is an answer: objects or a
///   partition that keep failing with 500 must end `retries-exhausted` (at a job's tail they may be all that is left,
///   and would otherwise hold the run for ever).
/// - open: no call goes out, and unreachable answers still arriving cost their tasks no attempt. After the cool-down
///   one call goes out as a probe; an answer from S3 closes the breaker, another failure doubles the cool-down, up to
///   `maxCooldown`, and is charged to its task like any failure, so that tasks whose objects alone cannot be reached
///   still end.
/// Not thread-safe: the engine's queue owns it. Times are seconds on the caller's clock.
/// https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html (retry quota)
struct EndpointBreaker {
    static let tripAfter = 32
    static let firstCooldown = 1.0
    static let maxCooldown = 30.0

    enum Event: Equatable {
        case opened
        /// A probe failed; the next goes out at `probeAt`.
        case stillUnreachable
        case closed
    }

    private(set) var isOpen = false
    private(set) var consecutiveUnreachable = 0
    /// When open: when the next probe may go out.
    private(set) var probeAt = 0.0
    private(set) var cooldown = firstCooldown
    private var probing = false

    /// Whether a call may go out now: always when closed; when open, the one probe once the cool-down is over.
    func allowsCall(now: Double) -> Bool { !isOpen || (!probing && now >= probeAt) }

    /// A call went out (when open, it is the probe).
    mutating func sent() {
        if isOpen { probing = true }
    }

    /// Takes an answer into account; says when the breaker changed state or a probe failed.
    mutating func record(unreachable: Bool, now: Double) -> Event? {
        guard unreachable else {
            consecutiveUnreachable = 0
            guard isOpen else { return nil }
            isOpen = false
            probing = false
            cooldown = Self.firstCooldown
            return .closed
        }
        consecutiveUnreachable += 1
        if isOpen {
            // Calls that were in flight when it opened also answer here; only while a probe is out can this be it.
            guard probing else { return nil }
            probing = false
            cooldown = min(cooldown * 2, Self.maxCooldown)
            probeAt = now + cooldown
            return .stillUnreachable
        }
        guard consecutiveUnreachable >= Self.tripAfter else { return nil }
        isOpen = true
        cooldown = Self.firstCooldown
        probeAt = now + cooldown
        return .opened
    }
}
