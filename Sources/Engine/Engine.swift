import DequeModule
import Domain
import Foundation
import JobStore
import Logging
import S3

/// Engine settings (PRODUCT.md §2 `[engine]`, and `run`'s flags).
public struct EngineConfiguration: Sendable {
    public var concurrency = 256
    /// Global ceiling, requests/s; 0: none.
    public var maxRPS = 0.0
    /// Per-bucket ceiling, requests/s; 0: none.
    public var maxRPSPerBucket = 3500.0
    public var adaptive = true
    public var retry = RetryPolicy(maxAttempts: 10, base: 0.1, cap: 20)
    public var leaseSeconds = 120.0
    public var failureThresholdPercent = 50.0
    public var failureThresholdMinTasks = 1000
    /// On stop, how long in-flight requests may take before what is left is released.
    public var shutdownGrace = 20.0
    /// Exit when no task is runnable (`run --until-idle`).
    public var untilIdle = false
    /// Drain and exit at this time (`run --stop-at`).
    public var stopAt: Date?
    /// Identifies this worker's leases.
    public var owner = "\(ProcessInfo.processInfo.hostName)/\(getpid())/\(UInt32.random(in: 0...UInt32.max))"

    public init() {}
}

/// What the engine has done so far; the demo and `systemd` status show it.
public struct EngineProgress: Sendable {
    public var recorded = 0
    public var succeeded = 0
    public var failed = 0
    public var retried = 0
    public var throttled = 0
    public var inFlight = 0
    public var queued = 0
    /// Objects finished per second, smoothed.
    public var ratePerSecond = 0.0
    /// The lowest adaptive rate limit among buckets, if any is limited.
    public var tightestBucketLimit: Double?
    /// Committed terminal outcomes by class.
    public var outcomes: [OutcomeClass: Int] = [:]
    /// Whether calls are held because S3 cannot be reached (see `EndpointBreaker`).
    public var s3Unreachable = false
    /// Answers by HTTP status (0: no answer: reset, timeout, refused).
    public var responsesByStatus: [Int: Int] = [:]
    /// Request latency histogram: counts per upper bound in `LatencyHistogram.bounds` (+Inf last), sum and count.
    public var latency = LatencyHistogram()
}

/// Cumulative-ready latency buckets for the Prometheus histogram.
public struct LatencyHistogram: Sendable {
    public static let bounds: [Double] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Per-bucket (not cumulative) counts; the last is above every bound.
    public var counts = [Int](repeating: 0, count: LatencyHistogram.bounds.count + 1)
    public var sum = 0.0
    public var count = 0

    mutating func observe(_ seconds: Double) {
        let i = Self.bounds.firstIndex { seconds <= $0 } ?? Self.bounds.count
        counts[i] += 1
        sum += seconds
        count += 1
    }
}

/// Why `run` returned.
public enum EngineStop: Sendable, Equatable {
    case idle
    case stopAt
    case signal
    case storeFailure(String)
}

/// The daemon: claims tasks in batches under leases, fans calls out over the transport within rate limits and a bound
/// on requests in flight, classifies each answer, and records outcomes in batched transactions.
///
/// Threads: `queue` (serial) owns every piece of mutable state below; `storeQueue` (serial) does all SQLite work, so a
/// slow commit never stalls dispatch. A transport driver thread runs its batches of answers on `queue` with
/// `queue.sync` (see `deliver`), which serializes them with everything else there.
/// That discipline is what makes `@unchecked Sendable` sound.
public final class Engine: @unchecked Sendable {
    private let store: TaskQueue
    private let client: S3Client
    private let configuration: EngineConfiguration
    private let logger: Logger
    private let queue = DispatchQueue(label: "reencryptd.engine")
    private let storeQueue = DispatchQueue(label: "reencryptd.engine.store")
    private let finished = DispatchSemaphore(value: 0)

    // MARK: State owned by `queue`
    //
    // The fields touched for every task are exempt from Swift's run-time exclusivity checks (each access to a class's
    // stored property otherwise records itself in a per-thread set: some 40 per task, about 1% of a task's
    // instructions). That check only ever catches overlapping accesses on one thread; these fields are only touched
    // on `queue`, one access at a time. https://www.swift.org/blog/swift-5-exclusivity/

    private struct JobInfo {
        var job: Job
        /// The request body for this job's target, built once.
        var body: S3Request.EncryptionBody
        /// The limits of the job's KMS key.
        var key: KeyLane
    }
    private var jobs: [Int64: JobInfo] = [:]
    /// Every bucket with work here or a learnt rate, by name: its queued tasks and its limits (idle ones are dropped
    /// each second, `pruneLanes`). Looked up once per claimed task; sending and
    /// answering reach a lane through the rotation and the answer instead of hashing its name four times more.
    private var lanes: [String: BucketLane] = [:]
    /// Lanes with queued tasks, in round-robin order.
    @exclusivity(unchecked) private var rotation: Deque<BucketLane> = []
    @exclusivity(unchecked) private var queuedCount = 0
    /// Tasks whose call is out, by task id (their leases travel with the calls).
    @exclusivity(unchecked) private var inFlight: Set<Int64> = []
    @exclusivity(unchecked) private var results: [TaskResult] = []
    private var recording = false
    private var claiming = false
    /// Buckets that had pending tasks in the store at the last claim, whether it looked at every bucket (with many,
    /// a claim stops once it is full), and when it ran.
    private var bucketsWithWork: Set<String> = []
    private var bucketsUnseen = false
    private var lastClaim = 0.0
    /// The last claim found nothing due.
    private var lastClaimEmpty = false
    private var draining = false
    private var stopReason: EngineStop?
    private var drainDeadline: Double?
    @exclusivity(unchecked) private var global: TokenBucket
    /// Every KMS key's limits, by ARN.
    private var keyLanes: [String: KeyLane] = [:]
    @exclusivity(unchecked) private var rng = SystemRandomNumberGenerator()
    @exclusivity(unchecked) private var progress = EngineProgress()
    private var finishedSinceTick: [Int64: Int] = [:]
    private var jobRates: [Int64: Double] = [:]
    private var lastSecond = 0.0
    private var lastRenewal = 0.0
    private var lastIdleCheck = 0.0
    private var idleCheckPending = false
    private var timer: DispatchSourceTimer?
    /// The timer ticks every 50 ms rather than 5 while there is no work (`pace`).
    private var slowTicks = false
    private var ticks = 0
    /// Holds calls while S3 cannot be reached at all (see `EndpointBreaker`).
    @exclusivity(unchecked) private var breaker = EndpointBreaker()

    public init(store: TaskQueue, client: S3Client, configuration: EngineConfiguration, logger: Logger) {
        self.store = store
        self.client = client
        self.configuration = configuration
        self.logger = logger
        global = TokenBucket(rate: configuration.maxRPS, now: Self.now())
    }

    static func now() -> Double { Date().timeIntervalSince1970 }

    /// Runs until idle (with `untilIdle`), `stopAt`, or `requestStop()`; returns why it stopped.
    public func run() -> EngineStop {
        do {
            let expired = try store.recoverLeases(now: Self.now())
            if expired > 0 { logger.notice("returned \(expired) tasks whose leases had expired (a worker died) to the queue") }
        } catch {
            return .storeFailure("\(error)")
        }
        client.afterCompletions { [weak self] in self?.afterCompletions() }
        defer { client.afterCompletions(nil) }
        queue.sync {
            refreshJobs()
            let t = DispatchSource.makeTimerSource(queue: queue)
            t.schedule(deadline: .now(), repeating: .milliseconds(5), leeway: .milliseconds(1))
            t.setEventHandler { [unowned self] in tick() }
            timer = t
            t.resume()
        }
        finished.wait()
        return queue.sync { stopReason ?? .signal }
    }

    /// Begins a graceful stop: no more claims, in-flight calls finish within the grace period, the rest is released.
    public func requestStop(_ reason: EngineStop = .signal) {
        queue.async { [self] in beginDrain(reason) }
    }

    public var snapshot: EngineProgress {
        queue.sync {
            var p = progress
            p.inFlight = inFlight.count
            p.queued = queuedCount
            p.tightestBucketLimit = lanes.values.compactMap(\.adaptive.fillRate).min()
            return p
        }
    }

    /// Buckets with a lane here now (tests).
    var laneCount: Int { queue.sync { lanes.count } }
    /// Ticks so far (tests).
    var tickCount: Int { queue.sync { ticks } }

    // MARK: The loop (on `queue`)

    private func tick() {
        ticks += 1
        completeStrandedAnswers()
        let now = Self.now()
        if !draining, let stopAt = configuration.stopAt, Date(timeIntervalSince1970: now) >= stopAt {
            logger.notice("stop time reached: draining")
            beginDrain(.stopAt)
        }
        dispatch(now: now)
        if !recording, !results.isEmpty { flushResults() }
        if !draining, !claiming, needsWork(now: now) { claimMore(now: now) }
        if now - lastSecond >= 1 {
            lastSecond = now
            everySecond(now: now)
        }
        if draining { checkDrained(now: now) } else { checkIdleSoon(now: now) }
        pace()
    }

    /// With nothing queued, out or to record, and the last claim finding nothing due, a tick can only ask for work,
    /// which it does at most every 50 ms: the timer then ticks every 50 ms instead of 5 (an idle daemon used 1.3% of a
    /// core, mostly waking up). A claim that brings work, or a drain, sets it back at once. Answers never wait on the
    /// tick: the transport's threads complete them.
    private func pace() {
        let slow = !draining && holdsNothing && lastClaimEmpty
        guard slow != slowTicks, let timer else { return }
        slowTicks = slow
        let period: DispatchTimeInterval = .milliseconds(slow ? 50 : 5)
        timer.schedule(deadline: .now() + period, repeating: period, leeway: .milliseconds(slow ? 5 : 1))
    }

    /// With `--until-idle`, once nothing is queued, in flight or waiting to be recorded, asks the store at once (then
    /// every 50 ms) whether anything is left, instead of waiting for the once-a-second check: a finished run exits
    /// within moments rather than up to a second later.
    private func checkIdleSoon(now: Double) {
        // A claim may be under way (one is asked for every tick while the queue is empty): tasks it takes are in flight
        // in the store, which the count includes, so the check cannot end a run they belong to.
        guard configuration.untilIdle, !idleCheckPending, now - lastIdleCheck >= 0.05, holdsNothing else { return }
        lastIdleCheck = now
        idleCheckPending = true
        storeQueue.async { [self] in
            let runnable = (try? store.runnableCount()) ?? 1
            queue.async { [self] in
                idleCheckPending = false
                checkIdle(runnable: runnable)
            }
        }
    }

    private func dispatch(now: Double) {
        var skipped = 0
        var sent = 0
        // One transport wake-up for the round, so these calls start now rather than at the transport's next poll.
        defer { if sent > 0 { client.flush() } }
        while inFlight.count < configuration.concurrency, !rotation.isEmpty, skipped < rotation.count {
            guard global.available(now: now), breaker.allowsCall(now: now) else { return }
            let lane = rotation.removeFirst()
            guard let lease = lane.ready.first else {
                lane.inRotation = false
                continue
            }
            guard let info = jobs[lease.jobID], info.job.state == .active else {
                // The job was paused or cancelled since the claim: hand its tasks back. The lane goes back in the
                // rotation first, so that other jobs' tasks queued behind this one keep their turn.
                rotation.append(lane)
                releaseQueued(jobID: lease.jobID)
                continue
            }
            let adaptive = configuration.adaptive
            if !lane.allows(now: now, adaptive: adaptive) || !info.key.allows(now: now, adaptive: adaptive) {
                rotation.append(lane)
                skipped += 1
                continue
            }
            skipped = 0
            lane.ready.removeFirst()
            queuedCount -= 1
            if lane.ready.isEmpty { lane.inRotation = false } else { rotation.append(lane) }
            global.take(now: now)
            lane.ceiling.take(now: now)
            info.key.ceiling?.take(now: now)
            send(lease, lane: lane, info: info, now: now)
            breaker.sent()
            sent += 1
        }
    }

    private func send(_ lease: Lease, lane: BucketLane, info: JobInfo, now: Double) {
        inFlight.insert(lease.taskID)
        lane.calls += 1
        lane.lastSend = now
        lane.adaptive.recordSend(now: now)
        info.key.adaptive.recordSend(now: now)
        let request = S3Request.updateObjectEncryption(lease.object, body: info.body,
                                                       expectedBucketOwner: info.job.spec.expectedBucketOwner?.rawValue)
        let key = info.key
        client.send(request, object: lease.object) { [self] result in
            deliver(Answer(lease: lease, lane: lane, key: key, sentAt: now, result: result))
        }
    }

    /// An answer on its way from the transport's thread to `queue`. The lanes are only touched on `queue`.
    private struct Answer {
        var lease: Lease
        var lane: BucketLane
        var key: KeyLane
        var sentAt: Double
        var result: S3Result
    }

    /// Answers wait under `answersLock` and are taken in batches. A driver thread leaves its answers there and, once
    /// its pass has run all its completions, completes the batch itself: `queue.sync` executes on the calling thread,
    /// so classifying the answers and sending their successors (to that same driver, which starts them on its next
    /// pass) happen where the answers already are, with no thread woken. Handing each batch to a dispatch thread cost a
    /// wake-up and a context switch per batch on both sides, and in (b) a queue to wait in between an answer and its
    /// successor. `answersTaken` says a run is queued or under way: another driver finding it set leaves its answers
    /// to that run and goes back to its sockets rather than wait. Answers given on any other thread (a send refused at
    /// once) schedule a run on `queue`, and `tick` completes any left behind.
    private let answersLock = NSLock()
    private var answers: [Answer] = []
    private var answersTaken = false
    /// Batches taken so far, and how many had been taken when `tick` last found answers waiting (nil: it found none).
    private var batchesTaken = 0
    private var batchesTakenAtLastTick: Int?

    private func deliver(_ answer: consuming Answer) {
        // Locked by hand: a closure could not take the answer over, so `append` would copy it.
        answersLock.lock()
        answers.append(answer)
        // On a driver, `afterCompletions` runs the batch once the pass is over.
        let schedule = !CurlTransport.onDriverThread && !answersTaken
        if schedule { answersTaken = true }
        answersLock.unlock()
        if schedule { queue.async { [self] in completeAnswers(batches: .max) } }
    }

    /// On a driver thread, after a pass that ran completions.
    private func afterCompletions() {
        let run = answersLock.withLock { () -> Bool in
            guard !answersTaken, !answers.isEmpty else { return false }
            answersTaken = true
            return true
        }
        // Never called on `queue` (a driver thread is never one of its threads), so `sync` cannot deadlock.
        if run { queue.sync { completeAnswers(batches: Self.batchesPerDriverRun) } }
    }

    /// Batches a driver completes in one run. Each batch after the first is what the other driver delivered during the
    /// one before, so they shrink fast; the bound returns a driver to its sockets should they not. With 2, 5.5% of
    /// the dispatching went to the hand-off at 20,000 answers/s (perf, (a)); with 8, 2.6%.
    private static let batchesPerDriverRun = 8

    /// On `queue`: completes the answers waiting, a batch at a time, dispatching after each. After `batches` batches,
    /// what is left (the other driver's answers keep coming) goes to a run on `queue`'s own thread, so that a driver
    /// gets back to its sockets.
    private func completeAnswers(batches: Int) {
        var batch: [Answer] = []
        for _ in 0..<batches {
            let any = answersLock.withLock { () -> Bool in
                swap(&batch, &answers)
                if batch.isEmpty { answersTaken = false } else { batchesTaken += 1 }
                return !batch.isEmpty
            }
            guard any else { return }
            // Read in place: `for a in batch` copied each answer (a retain per reference in it) only to drop it.
            batch.withUnsafeBufferPointer { p in
                for i in p.indices { complete(p[i].lease, lane: p[i].lane, key: p[i].key, sentAt: p[i].sentAt, result: p[i].result) }
            }
            batch.removeAll(keepingCapacity: true)
            dispatch(now: Self.now())
        }
        let left = answersLock.withLock { () -> Bool in
            if answers.isEmpty { answersTaken = false }
            return !answers.isEmpty
        }
        if left { queue.async { [self] in completeAnswers(batches: .max) } }
    }

    /// The backstop, every tick: answers that were already waiting at the previous tick, with no batch taken since,
    /// are completed here. Answers a driver is about to take are left to it: taking them here was 11–14% of the
    /// dispatching at 20,000 answers/s, each batch a hop to this thread that the driver would have saved (perf, (a)).
    private func completeStrandedAnswers() {
        let stranded = answersLock.withLock { () -> Bool in
            defer { batchesTakenAtLastTick = answers.isEmpty ? nil : batchesTaken }
            return !answers.isEmpty && batchesTakenAtLastTick == batchesTaken
        }
        if stranded { completeAnswers(batches: .max) }
    }

    /// Classifies one answer and queues its result for the store (the caller dispatches more work after a batch).
    private func complete(_ lease: Lease, lane: BucketLane, key: KeyLane, sentAt: Double, result: S3Result) {
        lane.calls -= 1
        guard inFlight.remove(lease.taskID) != nil else { return }  // released at shutdown
        let now = Self.now()
        let classification: Classification
        var error: S3Error?
        var requestID: String?
        var status: Int?
        switch result {
        case .success(let response):
            classification = .succeeded
            requestID = response.header("x-amz-request-id")
            status = response.status
        case .failure(let e):
            classification = Classifier.classify(e)
            error = e
            requestID = e.requestID
            status = e.status == 0 ? nil : e.status
        }
        let throttled = classification.isThrottle
        progress.responsesByStatus[status ?? 0, default: 0] += 1
        progress.latency.observe(max(0, now - sentAt))
        if configuration.adaptive {
            // A KMS SlowDown slows the key (every bucket using it); an S3 SlowDown slows the bucket.
            var kmsThrottle = false
            if case .retryable(.throttled(kms: true)) = classification { kmsThrottle = true }
            lane.adaptive.recordResponse(throttled: throttled && !kmsThrottle, sentAt: sentAt, now: now)
            key.adaptive.recordResponse(throttled: kmsThrottle, sentAt: sentAt, now: now)
        }
        // No answer from S3 at all: refused, reset, timed out, no credentials. (A 5xx is an answer: S3 is there, and
        // an object or partition that keeps failing must end `retries-exhausted`, not hold everything.)
        var unreachable = false
        if case .retryable(.transient) = classification { unreachable = status == nil }
        let event = breaker.record(unreachable: unreachable, now: now)
        if let event { breakerChanged(event, error: error, now: now) }
        // A failed probe is charged like any failure: should only some objects be unreachable, their tasks still end.
        let refund = unreachable && breaker.isOpen && event != .stillUnreachable
        let attempts = lease.attempts + 1
        var errors = lease.errors
        var throttles = lease.throttles
        let disposition: TaskResult.Disposition
        switch classification {
        case .succeeded:
            disposition = .terminal(.succeeded)
        case .terminal(let outcome):
            disposition = .terminal(outcome)
        case .retryable where refund:
            // S3 is down, not this object: the task waits for it without spending its retry budget.
            disposition = .retry(notBefore: now)
        case .retryable, .clockSkew, .wrongRegion, .expiredCredentials:
            if throttled { throttles += 1; progress.throttled += 1 } else { errors += 1 }
            if configuration.retry.exhausted(errors: errors, throttles: throttles) {
                disposition = .terminal(.retriesExhausted)
            } else {
                let delay = configuration.retry.delay(retries: errors + throttles - 1,
                                                      retryAfterMilliseconds: error?.retryAfterMilliseconds, using: &rng)
                disposition = .retry(notBefore: now + delay)
            }
        }
        results.append(TaskResult(taskID: lease.taskID, jobID: lease.jobID, disposition: disposition, attempts: attempts,
                                  errors: errors, throttles: throttles, httpStatus: status,
                                  errorCode: error.map { $0.code.isEmpty ? "ConnectionError" : $0.code },
                                  errorMessage: error.map { $0.message }, requestID: requestID))
        if results.count >= 1000, !recording { flushResults() }
    }

    private func breakerChanged(_ event: EndpointBreaker.Event, error: S3Error?, now: Double) {
        let wait = String(format: "%.0f s", breaker.probeAt - now)
        switch event {
        case .opened:
            progress.s3Unreachable = true
            let last = error.map { " (last: \($0.code.isEmpty ? "" : $0.code + ": ")\($0.message))" } ?? ""
            let message = "S3 unreachable: the last \(EndpointBreaker.tripAfter) calls got no answer\(last); holding "
                + "all calls and trying one in \(wait); tasks keep their retry budget meanwhile"
            logger.error("\(message)")
        case .stillUnreachable:
            let last = error.map { " (\($0.message))" } ?? ""
            logger.warning("S3 still unreachable\(last); trying again in \(wait)")
        case .closed:
            progress.s3Unreachable = false
            logger.notice("S3 answers again: resuming calls")
        }
    }

    private func flushResults() {
        let batch = results
        results.removeAll(keepingCapacity: true)
        recording = true
        let owner = configuration.owner
        let threshold = (configuration.failureThresholdPercent, configuration.failureThresholdMinTasks)
        storeQueue.async { [self] in
            do {
                try store.record(batch, owner: owner, now: Self.now())
                // The threshold is checked after every batch, so a misconfigured key stops within one batch.
                let paused = try store.applyFailureThreshold(percent: threshold.0, minTasks: threshold.1, now: Self.now())
                for job in paused { logger.error("job \(job.spec.name) paused itself: \(job.stateReason ?? "failure threshold crossed")") }
                let refreshed = paused.isEmpty ? nil : try store.jobs()
                queue.async { [self] in
                    if let refreshed { applyJobs(refreshed) }
                    recording = false
                    for r in batch {
                        switch r.disposition {
                        case .terminal(let outcome):
                            progress.recorded += 1
                            progress.outcomes[outcome, default: 0] += 1
                            if outcome == .succeeded { progress.succeeded += 1 } else { progress.failed += 1 }
                            finishedSinceTick[r.jobID, default: 0] += 1
                        case .retry: progress.retried += 1
                        }
                    }
                }
            } catch {
                logger.critical("cannot record outcomes: \(error); stopping (leases will expire and the tasks run again)")
                queue.async { [self] in
                    recording = false
                    failStore("\(error)")
                }
            }
        }
    }

    /// A claim is asked for once fewer tasks than this are queued in buckets that can take more: four rounds of slots.
    /// A claim waits behind the store's other work (a batch of outcomes, a checkpoint): in (a), where 256 in flight
    /// finish about 21,000 tasks a second, it arrived 5 ms after it was asked for at the median and 11–18 ms at the
    /// 90th–99th percentile. Refilling below one round (12 ms of work there) let the queue run dry, with slots idle, in
    /// 7–10% of samples; below four rounds (50 ms) in 0.2–0.3% (the run's last moments), and (a) ran 3.3% faster on
    /// average in ten interleaved pairs at 1,000,000 tasks, faster in eight. Bigger claims also write fewer pages per
    /// task. (bench/HISTORY.md, ninth session.)
    private var refillBelow: Int { configuration.concurrency * 4 }

    /// Tasks a bucket may have queued here; buckets at it are skipped by claims. Twice the refill mark, so one bucket
    /// alone keeps every slot busy between claims.
    private var perBucketQueue: Int { max(refillBelow * 2, 256) }

    /// Queued tasks in buckets that can take more: a bucket held back by its rate limit fills up to
    /// `perBucketQueue` and then stops counting, so claims go on for the others.
    private var openQueued: Int {
        var n = queuedCount
        for lane in rotation where lane.ready.count >= perBucketQueue { n -= lane.ready.count }
        return n
    }

    /// A bucket with fewer queued than this, and more work in the store, is running dry.
    private static let lowWater = 64

    private func needsWork(now: Double) -> Bool {
        // The total stays bounded even with many throttled buckets.
        guard queuedCount < 16 * perBucketQueue else { return false }
        // After a claim that found nothing due (every task backing off, or no active job), the next waits 50 ms:
        // asking on every tick kept a waiting daemon at 10% of a core, mostly in empty write transactions.
        if lastClaimEmpty && now - lastClaim < 0.05 { return false }
        if openQueued < refillBelow { return true }
        // A bucket running dry while another (rate-limited) bucket holds the queue, or buckets the last claim did not
        // reach: claim for them, at most every 50 ms.
        guard now - lastClaim >= 0.05 else { return false }
        return bucketsUnseen || bucketsWithWork.contains { (lanes[$0]?.ready.count ?? 0) < Self.lowWater }
    }

    private func claimMore(now: Double) {
        claiming = true
        lastClaim = now
        // At least up to the refill mark again, shared by the buckets with room.
        let want = max(refillBelow, perBucketQueue - openQueued)
        let perBucket = perBucketQueue
        let queued = Dictionary(rotation.map { ($0.name, $0.ready.count) }, uniquingKeysWith: { a, _ in a })
        let owner = configuration.owner
        let lease = configuration.leaseSeconds
        storeQueue.async { [self] in
            do {
                let claim = try store.claim(owner: owner, limit: want, perBucket: perBucket, queued: queued, now: Self.now(),
                                            leaseSeconds: lease)
                let claimed = claim.leases
                queue.async { [self] in
                    claiming = false
                    lastClaimEmpty = claimed.isEmpty
                    if draining {
                        release(claimed.map(\.taskID))
                        return
                    }
                    var current: BucketLane?
                    for l in claimed {
                        // A claim lists a bucket's tasks together: one look-up per run of them.
                        if current?.name != l.object.bucket { current = lane(l.object.bucket, now: now) }
                        let target = current!
                        target.ready.append(l)
                        if !target.inRotation {
                            target.inRotation = true
                            rotation.append(target)
                        }
                    }
                    queuedCount += claimed.count
                    bucketsWithWork = claim.bucketsWithPending
                    bucketsUnseen = !claim.sawEveryBucket
                    dispatch(now: Self.now())
                    pace()
                }
            } catch {
                logger.critical("cannot claim tasks: \(error)")
                queue.async { [self] in
                    claiming = false
                    failStore("\(error)")
                }
            }
        }
    }

    private func everySecond(now: Double) {
        // Rates per job, smoothed, for `status` and the ETA.
        for (job, n) in finishedSinceTick {
            jobRates[job] = (jobRates[job] ?? Double(n)) * 0.5 + Double(n) * 0.5
        }
        for job in jobRates.keys where finishedSinceTick[job] == nil { jobRates[job] = (jobRates[job] ?? 0) * 0.5 }
        progress.ratePerSecond = jobRates.values.reduce(0, +)
        finishedSinceTick.removeAll()
        pruneLanes(now: now)
        if logger.logLevel <= .debug {
            for lane in lanes.values.sorted(by: { $0.name < $1.name }) {
                let rate = lane.adaptive
                let limit = rate.fillRate.map { String(format: "%.0f/s", $0) } ?? "none"
                let sending = String(format: "%.0f/s", rate.measuredRate)
                logger.debug("bucket \(lane.name): adaptive limit \(limit), sending \(sending), \(lane.ready.count) queued, \(rate.throttles) throttles")
            }
        }
        let rates = jobRates
        let owner = configuration.owner
        let leaseUntil = now + configuration.leaseSeconds
        // Leases are renewed a quarter of the way through their term (one row write in the store).
        let renew = now - lastRenewal >= configuration.leaseSeconds / 4
        if renew { lastRenewal = now }
        storeQueue.async { [self] in
            do {
                try store.reportRates(rates, now: Self.now())
                if renew { try store.renewLeases(owner: owner, until: leaseUntil) }
                _ = try store.expireLeases(now: Self.now())
                for job in try store.completeFinishedJobs(now: Self.now()) { logger.notice("job \(job.spec.name) complete") }
                let refreshed = try store.jobs()
                let runnable = try store.runnableCount()
                queue.async { [self] in
                    applyJobs(refreshed)
                    checkIdle(runnable: runnable)
                }
            } catch {
                logger.error("job store: \(error)")
            }
        }
    }

    private func refreshJobs() {
        if let all = try? store.jobs() { applyJobs(all) }
    }

    private func applyJobs(_ all: [Job]) {
        var next: [Int64: JobInfo] = [:]
        for job in all {
            let body = jobs[job.id].flatMap { $0.job.spec == job.spec ? $0.body : nil }
                ?? S3Request.EncryptionBody(kmsKeyARN: job.spec.kmsKeyARN.rawValue, bucketKeyEnabled: job.spec.bucketKeyEnabled)
            next[job.id] = JobInfo(job: job, body: body, key: keyLane(job.spec.kmsKeyARN.rawValue))
        }
        for (id, old) in jobs where old.job.state == .active && next[id]?.job.state != .active {
            let state = next[id]?.job.state.rawValue ?? "gone"
            logger.notice("job \(old.job.spec.name) is \(state): its queued tasks go back, calls in flight finish")
            releaseQueued(jobID: id)
        }
        jobs = next
    }

    /// Nothing queued here, in flight, or waiting to be recorded or being recorded.
    private var holdsNothing: Bool { inFlight.isEmpty && queuedCount == 0 && results.isEmpty && !recording }

    private func checkIdle(runnable: Int) {
        guard configuration.untilIdle, !draining else { return }
        // Results and completions still being recorded count as runnable until committed.
        if runnable == 0 && holdsNothing {
            storeQueue.async { [self] in
                for job in (try? store.completeFinishedJobs(now: Self.now())) ?? [] { logger.notice("job \(job.spec.name) complete") }
                queue.async { [self] in beginDrain(.idle) }
            }
        }
    }

    /// The lane of `bucket`, made on first sight.
    private func lane(_ bucket: String, now: Double) -> BucketLane {
        if let lane = lanes[bucket] { return lane }
        let lane = BucketLane(name: bucket, maxRate: configuration.maxRPSPerBucket, now: now)
        lanes[bucket] = lane
        return lane
    }

    /// Drops the lanes of idle buckets (`BucketLane.isIdle`). Without this a job over 100,000 buckets kept a lane for
    /// every bucket it had touched, 50 MB of them (bench/HISTORY.md, thirteenth session).
    private func pruneLanes(now: Double) {
        var idle: [String] = []
        for (name, lane) in lanes where lane.isIdle(now: now) { idle.append(name) }
        for name in idle { lanes[name] = nil }
    }

    /// The lane of the KMS key `arn`, made on first sight.
    private func keyLane(_ arn: String) -> KeyLane {
        if let lane = keyLanes[arn] { return lane }
        let lane = KeyLane()
        keyLanes[arn] = lane
        return lane
    }

    private func releaseQueued(jobID: Int64) {
        var released: [Int64] = []
        for lane in rotation where lane.ready.contains(where: { $0.jobID == jobID }) {
            released += lane.ready.filter { $0.jobID == jobID }.map(\.taskID)
            lane.ready = Deque(lane.ready.filter { $0.jobID != jobID })
        }
        for lane in rotation where lane.ready.isEmpty { lane.inRotation = false }
        rotation = Deque(rotation.filter(\.inRotation))
        queuedCount -= released.count
        release(released)
    }

    private func release(_ ids: [Int64]) {
        guard !ids.isEmpty else { return }
        let owner = configuration.owner
        storeQueue.async { [self] in
            do { try store.release(taskIDs: ids, owner: owner) } catch { logger.error("cannot release tasks: \(error)") }
        }
    }

    private func beginDrain(_ reason: EngineStop) {
        guard !draining else { return }
        draining = true
        pace()
        stopReason = reason
        drainDeadline = Self.now() + configuration.shutdownGrace
        let queued = rotation.flatMap { $0.ready.map(\.taskID) }
        for lane in rotation {
            lane.ready.removeAll()
            lane.inRotation = false
        }
        rotation.removeAll()
        queuedCount = 0
        release(queued)
        if reason != .idle {
            logger.notice("stopping: \(inFlight.count) calls in flight may take up to \(Int(configuration.shutdownGrace)) s")
        }
    }

    private func failStore(_ message: String) {
        beginDrain(.storeFailure(message))
    }

    private func checkDrained(now: Double) {
        let timedOut = drainDeadline.map { now >= $0 } ?? false
        guard inFlight.isEmpty || timedOut, !claiming else { return }
        if !results.isEmpty {
            if !recording { flushResults() }
            return
        }
        guard !recording else { return }
        let leftover = Array(inFlight)
        inFlight.removeAll()
        timer?.cancel()
        timer = nil
        // This daemon no longer works on its jobs: `status` should show no rate and no ETA for them now, not for the
        // 30 s it would otherwise take the last reported rate to count as stale.
        let stoppedRates = jobRates.mapValues { _ in 0.0 }
        storeQueue.async { [self] in
            do { try store.reportRates(stoppedRates, now: Self.now()) } catch { logger.error("cannot clear the job rates: \(error)") }
            if !leftover.isEmpty {
                logger.warning("\(leftover.count) calls did not finish within the grace period; their tasks go back to the queue")
                try? store.release(taskIDs: leftover, owner: configuration.owner)
            }
            // The release above goes by task id; ending the lease is the backstop for anything still held (it scans only
            // if some task is still in flight).
            do { try store.endLease(owner: configuration.owner) } catch { logger.error("cannot end the lease: \(error)") }
            finished.signal()
        }
    }
}
