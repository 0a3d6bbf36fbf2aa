import Domain
import Foundation

/// The answer to one S3 call: the response, or an `S3Error` (S3's error, or a transport failure with status 0).
public enum S3Result: Sendable {
    case success(HTTPResponse)
    case failure(S3Error)
}

/// S3 client settings.
public struct S3ClientConfiguration: Sendable {
    public var endpoint: S3Endpoint
    /// Signing region until a bucket's own is learnt.
    public var region: String
    public var transport: TransportConfiguration
    public var userAgent: String

    public init(endpoint: S3Endpoint = .aws(), region: String = "us-east-1",
                transport: TransportConfiguration = TransportConfiguration(), userAgent: String = "reencryptd/0.1") {
        self.endpoint = endpoint
        self.region = region
        self.transport = transport
        self.userAgent = userAgent
    }
}

/// Signs and sends S3 calls over `CurlTransport`. Handles, once per call, what the SDKs handle: a wrong region
/// (learnt from `x-amz-bucket-region`, 301 PermanentRedirect or 400 AuthorizationHeaderMalformed `<Region>`, or from
/// HeadBucket when the answer names none; cached per bucket, request re-signed), clock skew (offset from the
/// response's `Date`; for a HEAD's bare failure, seen from that `Date` alone), expired temporary credentials
/// (refreshed). Everything else is returned for the caller (the engine) to classify and retry.
/// Sources: botocore utils.py S3RegionRedirectorv2; botocore endpoint.py (clock skew).
public final class S3Client: @unchecked Sendable {
    public let configuration: S3ClientConfiguration
    /// The first transport (the STS client and tests use one); requests are spread over the whole set
    /// (`chooseTransport`).
    public var transport: CurlTransport { transports[0] }
    /// One transport per driver thread (internal so that tests can tell which driver ran a completion).
    let transports: [CurlTransport]
    private var nextTransport = 0
    private let credentials: CredentialProvider
    private let requestSigner: S3RequestSigner
    // Mutable state under `lock`: region cache, clock offset, one signer per region (its key cache is per day).
    private let lock = NSLock()
    private var bucketRegions: [String: String] = [:]
    private var clockOffset: Double = 0
    private var signers: [String: SigV4Signer] = [:]
    /// The signer used last: a bulk run signs for one region, and this spares hashing its name for every request.
    private var lastSigner: SigV4Signer?
    /// The signing time's two strings, made once per second rather than per request.
    private var lastDate: (second: Int, date: SigV4Date)?
    private let clock: @Sendable () -> Date

    public init(configuration: S3ClientConfiguration, credentials: CredentialProvider,
                clock: @escaping @Sendable () -> Date = { Date() }) throws {
        self.configuration = configuration
        self.credentials = credentials
        self.clock = clock
        requestSigner = S3RequestSigner(endpoint: configuration.endpoint, userAgent: configuration.userAgent)
        let drivers = max(1, configuration.transport.drivers)
        transports = try (0..<drivers).map { index in
            var each = configuration.transport
            each.maxHostConnections = CurlTransport.share(of: configuration.transport.maxHostConnections, part: index, parts: drivers)
            return try CurlTransport(configuration: each)
        }
    }

    public func shutdown() { for t in transports { t.shutdown() } }

    /// Starts the requests sent so far without waiting for the transport's next poll (see `CurlTransport.flush`).
    public func flush() { for t in transports { t.flush() } }

    /// Runs `handler` on a driver thread after each batch of completions there (see `CurlTransport.afterCompletions`).
    public func afterCompletions(_ handler: CurlTransport.RoundHandler?) { for t in transports { t.afterCompletions(handler) } }

    /// How many more transfers the calling driver may hold than the least busy transport before sends go there.
    static let driverSlack = 16

    /// The transport for the next send. A send made on a driver thread (from a completion, or work run after a batch
    /// of them) goes to that driver: it starts on the driver's next pass with no wake-up. Unless that driver holds
    /// `driverSlack` more than another, or is at its connection share: then to the least busy, so that the drivers
    /// share the work (one driver's thread alone would cap the rate on a small machine). Elsewhere, round-robin.
    private func chooseTransport() -> CurlTransport {
        if transports.count == 1 { return transports[0] }
        if CurlTransport.onDriverThread, let mine = transports.firstIndex(where: \.isCurrentDriver) {
            let myLoad = transports[mine].inFlight
            var least = mine
            var leastLoad = myLoad
            for i in transports.indices where i != mine {
                let load = transports[i].inFlight
                if load < leastLoad { (least, leastLoad) = (i, load) }
            }
            let stay = myLoad <= leastLoad + Self.driverSlack && myLoad < transports[mine].connectionCap
            return transports[stay ? mine : least]
        }
        return lock.withLock {
            nextTransport = (nextTransport + 1) % transports.count
            return transports[nextTransport]
        }
    }

    /// The region a bucket is known to be in (learnt from S3), if any.
    public func knownRegion(of bucket: String) -> String? { lock.withLock { bucketRegions[bucket] } }
    public var currentClockOffset: Double { lock.withLock { clockOffset } }

    /// Sends `request`; `completion` runs once, on the transport's thread: keep it short.
    public func send(_ request: S3Request, object: ObjectRef? = nil, completion: @escaping @Sendable (S3Result) -> Void) {
        send(request, object: object, attempt: 0, downloadTo: nil, completion: completion)
    }

    /// GetObject streamed into the open file `fd` (a manifest can be larger than memory should hold).
    public func download(bucket: String, key: String, to fd: Int32) async throws(S3Error) {
        let object = ObjectRef(bucket: bucket, key: key)
        let result = await withCheckedContinuation { continuation in
            send(.getObject(bucket: bucket, key: key), object: object, attempt: 0, downloadTo: fd) { continuation.resume(returning: $0) }
        }
        if case .failure(let e) = result { throw e }
    }

    /// Sends and waits (for the command line; the engine uses the callback form).
    public func send(_ request: S3Request, object: ObjectRef? = nil) async -> S3Result {
        await withCheckedContinuation { continuation in
            send(request, object: object) { continuation.resume(returning: $0) }
        }
    }

    /// When a wrong-region answer names no region (a HEAD's bare 400, a redirect without the header), HeadBucket is
    /// asked, as botocore does: its answer, success or error, carries `x-amz-bucket-region`. `learnt` is that region
    /// when it differs from the one the failed call was signed for (it is then remembered for the bucket); nil
    /// otherwise, and the call's own error stands. The probe is sent as a retry, so it is not redirected in turn.
    /// https://github.com/boto/botocore/blob/develop/botocore/utils.py (S3RegionRedirectorv2.get_bucket_region)
    private func askRegion(of bucket: String, signedFor region: String, learnt: @escaping @Sendable (String?) -> Void) {
        send(.headBucket(bucket), object: nil, attempt: 1, downloadTo: nil) { [self] result in
            let named: String?
            switch result {
            case .success(let response): named = response.header("x-amz-bucket-region")
            case .failure(let e): named = e.region
            }
            guard let named, !named.isEmpty, named != region else { return learnt(nil) }
            lock.withLock { bucketRegions[bucket] = named }
            learnt(named)
        }
    }

    /// The signer for `region` (caller holds `lock`).
    private func signerLocked(for region: String) -> SigV4Signer {
        if let s = lastSigner, s.region == region { return s }
        let s = signers[region] ?? SigV4Signer(service: "s3", region: region)
        signers[region] = s
        lastSigner = s
        return s
    }

    private func send(_ request: S3Request, object: ObjectRef?, attempt: Int, downloadTo fd: Int32?,
                      completion: @escaping @Sendable (S3Result) -> Void) {
        let now = clock()
        let transport = chooseTransport()
        // One lock round for the date, the region and its signer: with two drivers sending, each round on this
        // shared lock can cost a cache line's trip between the cores.
        let (region, date, signer) = lock.withLock { () -> (String, SigV4Date, SigV4Signer) in
            let second = Int((now.timeIntervalSince1970 + clockOffset).rounded(.down))
            if lastDate?.second != second { lastDate = (second, SigV4Date(secondsSince1970: second)) }
            // Most runs never learn a bucket's region (the configured one is right): no name to hash then.
            let learnt = bucketRegions.isEmpty ? nil : bucketRegions[request.bucket]
            let region = learnt ?? configuration.region
            return (region, lastDate!.date, signerLocked(for: region))
        }
        let creds: AWSCredentials
        do {
            creds = try credentials.credentials()
        } catch {
            completion(.failure(S3Error(status: 0, code: "CredentialsUnavailable", message: "\(error)",
                                        operation: request.operation, object: object)))
            return
        }
        let prepared = requestSigner.prepare(request, region: region, signer: signer, credentials: creds,
                                             date: date)
        transport.submit(prepared, downloadTo: fd) { [self] result in
            switch result {
            case .failure(let code, let message):
                completion(.failure(S3Error(status: 0, code: "", message: "connection failed: \(message) (curl code \(code))",
                                            operation: request.operation, object: object)))
            case .response(let response):
                // A 200 can carry an error document, except where the body is the object itself: GetObject's content
                // may be any bytes, `<Error>` included (botocore skips operations whose payload is a blob).
                let errorIn200 = response.status == 200 && S3Error.isErrorDocument(response.body) && request.operation != "GetObject"
                if (200..<300).contains(response.status) && !errorIn200 {
                    // A success was signed for the right region; only HeadBucket is asked in order to learn it (as
                    // botocore's region redirector does), so other successes skip the header search.
                    if request.operation == "HeadBucket", let learnt = response.header("x-amz-bucket-region") {
                        lock.withLock { bucketRegions[request.bucket] = learnt }
                    }
                    completion(.success(response))
                    return
                }
                var error = S3Error(status: response.status, body: response.body, header: response.header,
                                    operation: request.operation, object: object)
                if response.status == 200 && error.code.isEmpty { error.code = "InternalError" }
                guard attempt == 0 else {
                    completion(.failure(error))
                    return
                }
                var classification = Classifier.classify(error)
                // Only a failure that would otherwise be final: a redirect or a throttle says what it is.
                if case .terminal = classification, request.method == "HEAD", Self.headShowsClockSkew(response, signedAt: date) {
                    classification = .clockSkew
                }
                switch classification {
                case .wrongRegion(let learnt?) where learnt != region:
                    lock.withLock { bucketRegions[request.bucket] = learnt }
                    send(request, object: object, attempt: attempt + 1, downloadTo: fd, completion: completion)
                case .wrongRegion(nil) where request.operation != "HeadBucket" && !request.bucket.isEmpty:
                    let unredirected = error
                    askRegion(of: request.bucket, signedFor: region) { [self] learnt in
                        guard learnt != nil else { return completion(.failure(unredirected)) }
                        send(request, object: object, attempt: attempt + 1, downloadTo: fd, completion: completion)
                    }
                case .clockSkew:
                    if let serverDate = response.header("date").flatMap(HTTPDates.parse) {
                        lock.withLock { clockOffset = serverDate.timeIntervalSince(clock()) }
                        send(request, object: object, attempt: attempt + 1, downloadTo: fd, completion: completion)
                    } else {
                        completion(.failure(error))
                    }
                case .expiredCredentials:
                    credentials.invalidate()
                    send(request, object: object, attempt: attempt + 1, downloadTo: fd, completion: completion)
                default:
                    completion(.failure(error))
                }
            }
        }
    }
}

extension S3Client {
    /// Skew over which an unexplained HEAD failure is put down to the clock: the AWS SDKs' five minutes.
    static let headSkewThreshold: Double = 300

    /// S3 answers a HEAD signed at a skewed time with a bare 403: no body to say RequestTimeTooSkewed. The AWS SDKs
    /// then compare the response's `Date` with the time the request was signed at, and take a gap of over five
    /// minutes as skew (aws-sdk-swift AWSClockSkewProvider: "Certain S3 HEAD methods will return generic HTTP 403
    /// errors when the cause of the failure is clock skew").
    /// https://github.com/awslabs/aws-sdk-swift/blob/main/Sources/Core/AWSClientRuntime/Sources/AWSClientRuntime/AWSClockSkewProvider.swift
    static func headShowsClockSkew(_ response: HTTPResponse, signedAt date: SigV4Date) -> Bool {
        guard let signed = date.secondsSince1970, let server = response.header("date").flatMap(HTTPDates.parse) else { return false }
        return abs(server.timeIntervalSince1970 - Double(signed)) > headSkewThreshold
    }
}

enum HTTPDates {
    /// RFC 7231 `Date` values, e.g. `Sun, 29 Nov 2026 13:43:36 GMT`.
    static func parse(_ text: String) -> Date? {
        // strptime is not exposed by Glibc's Swift overlay; the format is fixed, so split it.
        let f = text.split(separator: " ")
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        guard f.count == 6, let day = Int32(f[1]), let month = months.firstIndex(of: String(f[2])), let year = Int32(f[3]) else {
            return nil
        }
        let hms = f[4].split(separator: ":").compactMap { Int32($0) }
        guard hms.count == 3 else { return nil }
        var parts = tm()
        parts.tm_year = year - 1900
        parts.tm_mon = Int32(month)
        parts.tm_mday = day
        parts.tm_hour = hms[0]
        parts.tm_min = hms[1]
        parts.tm_sec = hms[2]
        let t = timegm(&parts)
        return t == -1 ? nil : Date(timeIntervalSince1970: Double(t))
    }
}
