import Domain
import Foundation
import NIOConcurrencyHelpers
import S3
import Synchronization

public struct SimResponse: Sendable {
    public enum Fault: Sendable, Equatable { case reset, delay(seconds: Double) }
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Sent only for HEAD: the length of what GET would return.
    public var contentLengthOverride: Int?
    public var fault: Fault?
    /// Already counted in `SimCounters` (by an operation that held the state's lock anyway).
    var counted = false
}

/// Who may call the simulator.
public struct SimCredential: Sendable, Equatable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?
    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
    /// The credentials tests and the demo use by default.
    public static let `default` = SimCredential(accessKeyID: "AKIDSIMULATOR", secretAccessKey: "simulator/secret+key")
}

/// S3 as far as reencryptd uses it: SigV4 verification, objects with versions, encryption and Object Lock,
/// UpdateObjectEncryption with every error of its API page, HeadObject, GetObject, PutObject, the list calls and
/// HeadBucket, and switchable faults.
public final class SimService: @unchecked Sendable {
    public let state: SimState
    public let verifySignatures: Bool
    // Settings (faults, credentials) and the throttles' token buckets, behind `lock`. Each event loop answers from
    // its own copy of the settings (`LoopCache`), taken again when `settingsGeneration` moves on.
    private let lock = NIOLock()
    private var _faults = SimFaults()
    private var credentials: [String: SimCredential] = [:]
    private var throttle: SimTokenBucket?
    private var kmsThrottle: SimTokenBucket?
    private var bucketThrottles: [String: SimTokenBucket] = [:]
    /// Bumped (under `lock`) by every change of the settings. An atomic so that a request can see that nothing
    /// changed without taking `lock`. https://github.com/swiftlang/swift-evolution/blob/main/proposals/0410-atomics.md
    private let settingsGeneration = Atomic<UInt64>(0)

    static func hex16(_ v: UInt64) -> String {
        String(unsafeUninitializedCapacity: 16) { out in
            for i in 0..<16 {
                let d = UInt8((v >> (UInt64(15 - i) * 4)) & 15)
                out[i] = d < 10 ? 0x30 + d : 0x37 + d  // '0'…'9', 'A'…'F'
            }
            return 16
        }
    }

    public init(state: SimState, credentials: [SimCredential] = [.default], verifySignatures: Bool = true) {
        self.state = state
        self.verifySignatures = verifySignatures
        for c in credentials { self.credentials[c.accessKeyID] = c }
    }

    public var faults: SimFaults {
        get { lock.withLock { _faults } }
        set {
            lock.withLock {
                let now = Self.monotonic()
                if newValue.throttleRPS != _faults.throttleRPS { throttle = newValue.throttleRPS.map { SimTokenBucket(rate: $0, now: now) } }
                if newValue.kmsThrottleRPS != _faults.kmsThrottleRPS {
                    kmsThrottle = newValue.kmsThrottleRPS.map { SimTokenBucket(rate: $0, now: now) }
                }
                if newValue.bucketThrottleRPS != _faults.bucketThrottleRPS {
                    bucketThrottles = newValue.bucketThrottleRPS.mapValues { SimTokenBucket(rate: $0, now: now) }
                }
                _faults = newValue
                settingsGeneration.add(1, ordering: .releasing)
            }
        }
    }

    public func addCredential(_ credential: SimCredential) {
        lock.withLock {
            credentials[credential.accessKeyID] = credential
            settingsGeneration.add(1, ordering: .releasing)
        }
    }

    /// Brings `loop`'s copies of the settings up to date; a load of one atomic when nothing changed.
    func refresh(_ loop: LoopCache) {
        guard settingsGeneration.load(ordering: .acquiring) != loop.generation else { return }
        lock.withLock {
            loop.faults = _faults
            loop.credentials = credentials
            loop.generation = settingsGeneration.load(ordering: .relaxed)
        }
        loop.lastCredential = nil
        loop.lastSigningKey = nil
    }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    // MARK: Entry point

    /// Answers `request` on the event loop that `loop` belongs to.
    func handle(_ request: SimRequest, on loop: LoopCache) -> SimResponse {
        refresh(loop)
        let requestID = loop.nextRequestID()
        var response = route(request, requestID: requestID, loop: loop)
        if response.fault == nil {
            let latency = drawLatency(loop)
            if latency > 0 { response.fault = .delay(seconds: latency) }
        }
        response.headers.append(contentsOf: [("x-amz-request-id", requestID), ("x-amz-id-2", "sim/" + requestID), ("Date", loop.date())])
        if !response.counted { state.count { $0.countResponse(response.status) } }
        return response
    }

    struct Target {
        var bucket: String
        var key: String
        var query: [(name: String, value: String)]
        /// The bucket's region; nil when no such bucket exists.
        var region: String?
        /// `/bucket/key`, as S3 names the resource in an error (built only when one is).
        var resource: String { "/" + bucket + (key.isEmpty ? "" : "/" + key) }
        func param(_ name: String) -> String? { query.first { $0.name == name }?.value }
        func has(_ name: String) -> Bool { query.contains { $0.name == name } }
    }

    private func route(_ request: SimRequest, requestID: String, loop: LoopCache) -> SimResponse {
        // Byte-level splitting throughout: Character-level String operations cost graphemes on every request.
        let (pathPart, queryPart) = UTF8Split.once(request.uri[...], 0x3F)  // '?'
        if pathPart.utf8.starts(with: "/_sim/".utf8) { return admin(String(pathPart)) }
        guard let path = URIEncoding.decode(pathPart) else {
            return error(400, "InvalidURI", "Couldn't parse the specified URI.", resource: String(pathPart), requestID: requestID)
        }
        var query: [(name: String, value: String)] = []
        if let queryPart, !queryPart.isEmpty {
            for pair in UTF8Split.all(queryPart, 0x26) where !pair.isEmpty {  // '&'
                let (rawName, rawValue) = UTF8Split.once(pair, 0x3D)  // '='
                guard let name = URIEncoding.decode(rawName), let value = rawValue.map({ URIEncoding.decode($0) }) ?? "" else {
                    return error(400, "InvalidURI", "Couldn't parse the specified URI.", resource: String(pathPart), requestID: requestID)
                }
                query.append((name, value))
            }
        }
        // Virtual-hosted (Host: bucket.<endpoint>) or path style (/bucket/key).
        var host = Substring(request.header("host") ?? "")
        if !host.hasSuffix("]"), let colon = host.utf8.lastIndex(of: 0x3A) { host = host[..<colon] }
        var target: Target
        if !S3Endpoint.isIPLiteral(host), let dot = host.utf8.firstIndex(of: 0x2E), let region = loop.region(of: String(host[..<dot]), in: state) {
            let key = path.hasPrefix("/") ? String(path.utf8.dropFirst())! : path
            target = Target(bucket: String(host[..<dot]), key: key, query: query, region: region)
        } else {
            let trimmed = path.hasPrefix("/") ? Substring(path.utf8.dropFirst()) : Substring(path)
            let (bucket, rest) = UTF8Split.once(trimmed, 0x2F)  // '/'
            target = Target(bucket: String(bucket), key: rest.map(String.init) ?? "", query: query)
            target.region = loop.region(of: target.bucket, in: state)
        }
        if verifySignatures, let failure = authenticate(request, target, requestID: requestID, loop: loop) { return failure }
        if let fault = injectFault(request, target, requestID: requestID, loop: loop) { return fault }
        guard !target.bucket.isEmpty else {
            return error(501, "NotImplemented", "ListBuckets is not implemented by the simulator", resource: "/", requestID: requestID)
        }
        guard target.region != nil else {
            return error(404, "NoSuchBucket", Messages.noSuchBucket, resource: target.resource, requestID: requestID,
                         head: request.method == "HEAD", extra: [("BucketName", target.bucket)])
        }
        if target.key.isEmpty {
            switch (request.method, target.has("versions"), target.param("list-type")) {
            case ("HEAD", _, _): return headBucket(target)
            case ("GET", true, _): return listObjectVersions(target, requestID: requestID)
            case ("GET", false, "2"): return listObjectsV2(target, requestID: requestID)
            default:
                return error(501, "NotImplemented", "This bucket operation is not implemented by the simulator",
                             resource: target.resource, requestID: requestID)
            }
        }
        switch request.method {
        case "PUT" where target.has("encryption"): return updateObjectEncryption(request, target, requestID: requestID, loop: loop)
        case "PUT": return putObject(request, target, requestID: requestID)
        case "HEAD": return getObject(request, target, resource: target.resource, requestID: requestID, head: true)
        case "GET": return getObject(request, target, resource: target.resource, requestID: requestID, head: false)
        default: return error(405, "MethodNotAllowed", Messages.methodNotAllowed, resource: target.resource, requestID: requestID)
        }
    }

    // MARK: SigV4, checked from the server's side

    private func authenticate(_ request: SimRequest, _ target: Target, requestID: String, loop: LoopCache) -> SimResponse? {
        let head = request.method == "HEAD"
        func deny(_ status: Int, _ code: String, _ message: String, extra: [(String, String)] = []) -> SimResponse {
            state.count { $0.signatureFailures += 1 }
            return error(status, code, message, resource: target.resource, requestID: requestID, head: head, extra: extra)
        }
        guard let authorization = request.headerRange("authorization") else {
            if target.has("encryption") { return deny(400, "InvalidRequest", Messages.needSigV4) }
            return deny(403, "AccessDenied", Messages.accessDenied)
        }
        guard let auth = request.fieldBytes.withUnsafeBufferPointer({ AuthorizationHeader($0, authorization) }) else {
            if target.has("encryption") { return deny(400, "InvalidRequest", Messages.needSigV4) }
            return deny(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the authorization header requires three components: Credential, SignedHeaders, and Signature.")
        }
        let bytes = { (r: Range<Int>) in request.fieldBytes[r] }
        guard let credential = credential(accessKeyID: request.fieldBytes[auth.accessKeyID], loop: loop) else {
            return deny(403, "InvalidAccessKeyId", Messages.unknownAccessKey, extra: [("AWSAccessKeyId", request.text(auth.accessKeyID))])
        }
        guard let amzDate = request.headerBytes("x-amz-date"), let seconds = SigV4Date.secondsSince1970(amzDate: amzDate) else {
            return deny(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
        }
        let serverNow = loop.now
        if abs(Double(seconds) - serverNow.timeIntervalSince1970) > 15 * 60 {
            return deny(403, "RequestTimeTooSkewed", Messages.skewed, extra: [
                ("RequestTime", String(decoding: amzDate, as: UTF8.self)), ("ServerTime", ISO8601DateFormatter().string(from: serverNow)),
                ("MaxAllowedSkewMilliseconds", "900000"),
            ])
        }
        if !bytes(auth.day).elementsEqual(amzDate.prefix(8)) || !bytes(auth.service).equals("s3")
            || !bytes(auth.terminator).equals("aws4_request") {
            return deny(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the credential scope "
                + "'\(request.text(auth.day))/\(request.text(auth.region))/\(request.text(auth.service))/\(request.text(auth.terminator))' "
                + "does not match the request date or service.")
        }
        if let bucketRegion = target.region, !bytes(auth.region).equals(bucketRegion) {
            state.count { $0.wrongRegion += 1 }
            var response = error(400, "AuthorizationHeaderMalformed",
                                 "The authorization header is malformed; the region '\(request.text(auth.region))' is wrong; expecting '\(bucketRegion)'",
                                 resource: target.resource, requestID: requestID, head: head, extra: [("Region", bucketRegion)])
            response.headers.append(("x-amz-bucket-region", bucketRegion))
            return response
        }
        if let token = credential.sessionToken {
            guard let sent = request.headerBytes("x-amz-security-token"), sent.equals(token) else {
                return deny(403, "InvalidToken", Messages.invalidToken)
            }
        }
        let isSigned = { (name: ArraySlice<UInt8>) in Self.list(request.fieldBytes[auth.signedHeaders], contains: name) }
        guard isSigned(Self.host[...]) else { return deny(403, "AccessDenied", Messages.unsignedHeaders) }
        for f in request.fields {
            let name = request.name(f)
            guard name.hasPrefix(Self.amzPrefix), !isSigned(name) else { continue }
            return deny(403, "AccessDenied", Messages.unsignedHeaders, extra: [("HeadersNotSigned", String(decoding: name, as: UTF8.self))])
        }
        guard let contentSHA = request.headerRange("x-amz-content-sha256") else {
            return deny(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
        }
        if !bytes(contentSHA).equals("UNSIGNED-PAYLOAD") && !bytes(contentSHA).equals("STREAMING-UNSIGNED-PAYLOAD-TRAILER") {
            let digest = loop.bodySHA256.value(for: request.body) { Crypto.sha256($0) }
            if !HexDigit.matches(bytes(contentSHA), digest) {
                return deny(400, "XAmzContentSHA256Mismatch", Messages.contentSHAMismatch, extra: [
                    ("ClientComputedContentSHA256", request.text(contentSHA)), ("S3ComputedContentSHA256", HexDigit.encode(digest)),
                ])
            }
        }
        let canonical: [UInt8]
        do {
            canonical = try CanonicalRequest.build(request, authorization: auth, payloadHash: contentSHA)
        } catch .malformedURI {
            return deny(400, "InvalidURI", "Couldn't parse the specified URI.")
        } catch {
            return deny(403, "SignatureDoesNotMatch", Messages.signatureMismatch)
        }
        let scope = bytes(auth.day.lowerBound..<auth.credential.upperBound)  // day/region/s3/aws4_request
        let stringToSign = SigV4Signer.stringToSign(canonicalRequest: canonical, amzDate: amzDate, scope: scope)
        let key = signingKey(credential, request: request, auth: auth, loop: loop)
        let signature = key.mac(stringToSign)
        guard HexDigit.matches(bytes(auth.signature), signature) else {
            return deny(403, "SignatureDoesNotMatch", Messages.signatureMismatch, extra: [
                ("AWSAccessKeyId", request.text(auth.accessKeyID)), ("StringToSign", String(decoding: stringToSign, as: UTF8.self)),
                ("SignatureProvided", request.text(auth.signature)), ("CanonicalRequest", String(decoding: canonical, as: UTF8.self)),
            ])
        }
        return nil
    }

    static let amzPrefix = Array("x-amz-".utf8)
    static let host = Array("host".utf8)

    /// Whether the `;`-separated `list` names `name` (without splitting it into an array per request).
    static func list(_ list: ArraySlice<UInt8>, contains name: ArraySlice<UInt8>) -> Bool {
        list.withUnsafeBufferPointer { l in
            name.withUnsafeBufferPointer { n in
                var start = 0
                while start <= l.count {
                    let end = ByteSearch.index(of: 0x3B, in: UnsafeRawBufferPointer(l), start..<l.count) ?? l.count  // ';'
                    if end - start == n.count && (n.count == 0 || memcmp(l.baseAddress! + start, n.baseAddress!, n.count) == 0) {
                        return true
                    }
                    start = end + 1
                }
                return false
            }
        }
    }

    /// kSigning for the credential's secret, day and region, derived once per scope on each loop (as S3 and the SDKs
    /// cache it).
    private func signingKey(_ credential: SimCredential, request: SimRequest, auth: AuthorizationHeader, loop: LoopCache) -> Crypto.HMACKey {
        let scopeBytes = request.fieldBytes[auth.credential]
        if let last = loop.lastSigningKey, last.scope[...].equals(scopeBytes) { return last.key }
        let key = Crypto.HMACKey(SigV4Signer(service: "s3", region: request.text(auth.region))
            .signingKey(credentials: AWSCredentials(accessKeyID: credential.accessKeyID, secretAccessKey: credential.secretAccessKey),
                        day: request.text(auth.day)))
        loop.lastSigningKey = (Array(scopeBytes), key)
        return key
    }

    /// The credential of the access key id in `bytes`, if the simulator knows it.
    private func credential(accessKeyID bytes: ArraySlice<UInt8>, loop: LoopCache) -> SimCredential? {
        if let last = loop.lastCredential, last.accessKeyID[...].equals(bytes) { return last.credential }
        guard let found = loop.credentials[String(decoding: bytes, as: UTF8.self)] else { return nil }
        loop.lastCredential = (Array(bytes), found)
        return found
    }

    // MARK: Faults

    private func injectFault(_ request: SimRequest, _ target: Target, requestID: String, loop: LoopCache) -> SimResponse? {
        let faults = loop.faults
        var (throttled, kmsThrottled) = (false, false)
        // The token buckets are shared by the loops: a rate is the whole simulator's.
        if faults.throttleRPS != nil || faults.kmsThrottleRPS != nil || !faults.bucketThrottleRPS.isEmpty {
            let now = Self.monotonic()
            (throttled, kmsThrottled) = lock.withLock { () -> (Bool, Bool) in
                var throttled = false
                if var bucket = throttle {
                    throttled = !bucket.take(now: now)
                    throttle = bucket
                }
                if !throttled, var bucket = bucketThrottles[target.bucket] {
                    throttled = !bucket.take(now: now)
                    bucketThrottles[target.bucket] = bucket
                }
                var kmsThrottled = false
                if target.has("encryption"), var bucket = kmsThrottle {
                    kmsThrottled = !bucket.take(now: now)
                    kmsThrottle = bucket
                }
                return (throttled, kmsThrottled)
            }
        }
        let roll = Double.random(in: 0..<1, using: &loop.random)
        var response: SimResponse?
        if throttled {
            state.count { $0.throttled += 1 }
            response = error(503, "SlowDown", Messages.slowDown, resource: target.resource, requestID: requestID, head: request.method == "HEAD")
        } else if kmsThrottled {
            state.count { $0.kmsThrottled += 1 }
            response = error(503, "SlowDown", Messages.slowDownKMS, resource: target.resource, requestID: requestID)
        } else if roll < faults.errorRate {
            state.count { $0.injectedErrors += 1 }
            response = error(500, "InternalError", Messages.internalError, resource: target.resource, requestID: requestID,
                             head: request.method == "HEAD")
        } else if roll < faults.errorRate + faults.resetRate {
            state.count { $0.injectedResets += 1 }
            return SimResponse(status: 0, headers: [], body: [], fault: .reset)
        } else if roll < faults.errorRate + faults.resetRate + faults.slowRate {
            state.count { $0.injectedSlow += 1 }
            return SimResponse(status: 500, headers: [], body: [], fault: .delay(seconds: faults.slowSeconds))
        } else if target.has("encryption"), roll < faults.errorRate + faults.resetRate + faults.slowRate + faults.errorIn200Rate {
            state.count { $0.injectedErrorIn200 += 1 }
            var r = error(500, "InternalError", Messages.internalError, resource: target.resource, requestID: requestID)
            r.status = 200
            response = r
        }
        return response
    }

    /// The configured latency, drawn for one answer; the handler holds the answer back without blocking a thread.
    func drawLatency(_ loop: LoopCache) -> Double {
        switch loop.faults.latency {
        case .none: return 0
        case .fixed(let ms): return ms / 1000
        case .uniform(let lo, let hi): return Double.random(in: lo...max(lo, hi), using: &loop.random) / 1000
        case .exponential(let mean): return -log(1 - Double.random(in: 0..<1, using: &loop.random)) * mean / 1000
        }
    }

    // MARK: Responses

    func error(_ status: Int, _ code: String, _ message: String, resource: String, requestID: String, head: Bool = false,
               extra: [(String, String)] = []) -> SimResponse {
        if head {
            // HEAD answers carry no body: only the status says what happened.
            return SimResponse(status: status, headers: [], body: [], contentLengthOverride: 0)
        }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(code)</Code><Message>\(XMLText.escape(message))</Message>"
        for (name, value) in extra { xml += "<\(name)>\(XMLText.escape(value))</\(name)>" }
        xml += "<Resource>\(XMLText.escape(resource))</Resource><RequestId>\(requestID)</RequestId><HostId>sim/\(requestID)</HostId></Error>"
        return SimResponse(status: status, headers: [("Content-Type", "application/xml")], body: Array(xml.utf8))
    }

    private func admin(_ path: String) -> SimResponse {
        switch path {
        case "/_sim/counters":
            let data = (try? JSONEncoder().encode(state.snapshotCounters)) ?? Data()
            return SimResponse(status: 200, headers: [("Content-Type", "application/json")], body: Array(data))
        default:
            return SimResponse(status: 404, headers: [], body: Array("unknown admin path\n".utf8))
        }
    }
}

/// RFC 7231 dates for the `Date` and `Last-Modified` headers.
enum HTTPDate {
    static func format(_ date: Date) -> String {
        var t = time_t(date.timeIntervalSince1970)
        var parts = tm()
        gmtime_r(&t, &parts)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = strftime(&buffer, 64, "%a, %d %b %Y %H:%M:%S GMT", &parts)
        return String(decoding: buffer.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Splitting on one ASCII byte, over UTF-8 (no grapheme breaking).
enum UTF8Split {
    /// Before and after the first `separator`; `after` is nil when there is none.
    static func once(_ s: Substring, _ separator: UInt8) -> (Substring, Substring?) {
        // memchr over the contiguous bytes (a native string's): the generic search walks validated indices.
        let offset: Int?? = s.utf8.withContiguousStorageIfAvailable {
            ByteSearch.index(of: separator, in: UnsafeRawBufferPointer($0), 0..<$0.count)
        }
        let found = offset.map { $0.map { s.utf8.index(s.utf8.startIndex, offsetBy: $0) } } ?? s.utf8.firstIndex(of: separator)
        guard let i = found else { return (s, nil) }
        return (s[..<i], s[s.utf8.index(after: i)...])
    }

    static func all(_ s: Substring, _ separator: UInt8) -> [Substring] {
        var parts: [Substring] = []
        var start = s.startIndex
        var i = s.utf8.startIndex
        while i < s.utf8.endIndex {
            if s.utf8[i] == separator {
                parts.append(s[start..<i])
                start = s.utf8.index(after: i)
            }
            i = s.utf8.index(after: i)
        }
        parts.append(s[start...])
        return parts
    }
}
