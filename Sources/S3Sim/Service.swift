import Foundation
import NIOConcurrencyHelpers
import S3

/// A request as the server received it.
public struct SimRequest: Sendable {
    public var method: String
    /// The request target as sent: raw path and query, still percent-encoded.
    public var uri: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, uri: String, headers: [(name: String, value: String)], body: [UInt8]) {
        self.method = method
        self.uri = uri
        self.headers = headers
        self.body = body
    }

    func header(_ name: String) -> String? {
        headers.first { ASCII.equalsLowercased($0.name, name) }?.value
    }
}

public struct SimResponse: Sendable {
    public enum Fault: Sendable, Equatable { case reset, delay(seconds: Double) }
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Sent only for HEAD: the length of what GET would return.
    public var contentLengthOverride: Int?
    public var fault: Fault?
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
    // Mutable settings and fault state, behind `lock`.
    private let lock = NIOLock()
    private var _faults = SimFaults()
    private var credentials: [String: SimCredential] = [:]
    private var throttle: SimTokenBucket?
    private var kmsThrottle: SimTokenBucket?
    private var random = SplitMix64(seed: 0x5EED)
    private var requestCounter: UInt64 = 0
    private var signers: [String: SigV4Signer] = [:]
    private var dateSecond = 0
    private var dateHeader = ""

    static func hex16(_ v: UInt64) -> String {
        let digits = Array("0123456789ABCDEF".utf8)
        var out = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { out[15 - i] = digits[Int((v >> (UInt64(i) * 4)) & 15)] }
        return String(decoding: out, as: UTF8.self)
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
                _faults = newValue
            }
        }
    }

    public func addCredential(_ credential: SimCredential) { lock.withLock { credentials[credential.accessKeyID] = credential } }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    var now: Date { Date().addingTimeInterval(lock.withLock { _faults.clockOffsetSeconds }) }

    // MARK: Entry point

    public func handle(_ request: SimRequest) -> SimResponse {
        let (requestID, date) = lock.withLock { () -> (String, String) in
            requestCounter &+= 1
            let second = Int(Date().timeIntervalSince1970 + _faults.clockOffsetSeconds)
            if second != dateSecond {
                dateSecond = second
                dateHeader = HTTPDate.format(Date(timeIntervalSince1970: Double(second)))
            }
            return (Self.hex16(requestCounter &* 0x2545F4914F6CDD1D), dateHeader)
        }
        var response = route(request, requestID: requestID)
        if response.fault == nil {
            let latency = drawLatency()
            if latency > 0 { response.fault = .delay(seconds: latency) }
        }
        response.headers.append(("x-amz-request-id", requestID))
        response.headers.append(("x-amz-id-2", "sim/" + requestID))
        response.headers.append(("Date", date))
        state.count { $0.countResponse(response.status) }
        return response
    }

    struct Target {
        var bucket: String
        var key: String
        var query: [(name: String, value: String)]
        var canonicalURI: String
        func param(_ name: String) -> String? { query.first { $0.name == name }?.value }
        func has(_ name: String) -> Bool { query.contains { $0.name == name } }
    }

    private func route(_ request: SimRequest, requestID: String) -> SimResponse {
        // Byte-level splitting throughout: Character-level String operations cost graphemes on every request.
        let (pathPart, queryPart) = UTF8Split.once(request.uri[...], 0x3F)  // '?'
        let rawPath = String(pathPart)
        if rawPath.hasPrefix("/_sim/") { return admin(rawPath) }
        guard let path = URIEncoding.decode(rawPath) else {
            return error(400, "InvalidURI", "Couldn't parse the specified URI.", resource: rawPath, requestID: requestID)
        }
        var query: [(name: String, value: String)] = []
        if let queryPart, !queryPart.isEmpty {
            for pair in UTF8Split.all(queryPart, 0x26) where !pair.isEmpty {  // '&'
                let (rawName, rawValue) = UTF8Split.once(pair, 0x3D)  // '='
                guard let name = URIEncoding.decode(rawName), let value = rawValue.map({ URIEncoding.decode($0) }) ?? "" else {
                    return error(400, "InvalidURI", "Couldn't parse the specified URI.", resource: rawPath, requestID: requestID)
                }
                query.append((name, value))
            }
        }
        // Virtual-hosted (Host: bucket.<endpoint>) or path style (/bucket/key).
        var host = Substring(request.header("host") ?? "")
        if !host.hasSuffix("]"), let colon = host.utf8.lastIndex(of: 0x3A) { host = host[..<colon] }
        let target: Target
        let firstLabel = host.utf8.firstIndex(of: 0x2E).map { String(host[..<$0]) }
        if let firstLabel, !SimService.isIP(host), state.bucketRegion(firstLabel) != nil {
            let key = path.hasPrefix("/") ? String(path.utf8.dropFirst())! : path
            target = Target(bucket: firstLabel, key: key, query: query, canonicalURI: CanonicalURI.s3(bucket: nil, key: key))
        } else {
            let trimmed = path.hasPrefix("/") ? Substring(path.utf8.dropFirst()) : Substring(path)
            let (bucket, rest) = UTF8Split.once(trimmed, 0x2F)  // '/'
            let key = rest.map(String.init) ?? ""
            target = Target(bucket: String(bucket), key: key, query: query,
                            canonicalURI: CanonicalURI.s3(bucket: bucket.isEmpty ? nil : String(bucket), key: key))
        }
        let resource = "/" + target.bucket + (target.key.isEmpty ? "" : "/" + target.key)
        if verifySignatures, let failure = authenticate(request, target, resource: resource, requestID: requestID) {
            return failure
        }
        if let fault = injectFault(request, target, resource: resource, requestID: requestID) { return fault }
        guard !target.bucket.isEmpty else {
            return error(501, "NotImplemented", "ListBuckets is not implemented by the simulator", resource: "/", requestID: requestID)
        }
        guard state.bucketRegion(target.bucket) != nil else {
            return error(404, "NoSuchBucket", Messages.noSuchBucket, resource: resource, requestID: requestID, head: request.method == "HEAD",
                         extra: [("BucketName", target.bucket)])
        }
        if target.key.isEmpty {
            switch (request.method, target.has("versions"), target.param("list-type")) {
            case ("HEAD", _, _): return headBucket(target)
            case ("GET", true, _): return listObjectVersions(target)
            case ("GET", false, "2"): return listObjectsV2(target)
            default:
                return error(501, "NotImplemented", "This bucket operation is not implemented by the simulator", resource: resource,
                             requestID: requestID)
            }
        }
        switch request.method {
        case "PUT" where target.has("encryption"): return updateObjectEncryption(request, target, resource: resource, requestID: requestID)
        case "PUT": return putObject(request, target, requestID: requestID)
        case "HEAD": return getObject(request, target, resource: resource, requestID: requestID, head: true)
        case "GET": return getObject(request, target, resource: resource, requestID: requestID, head: false)
        default: return error(405, "MethodNotAllowed", Messages.methodNotAllowed, resource: resource, requestID: requestID)
        }
    }

    static func isIP(_ host: Substring) -> Bool {
        if host.utf8.contains(0x3A) { return true }
        let parts = UTF8Split.all(host, 0x2E)
        return parts.count == 4 && parts.allSatisfy { UInt8($0) != nil }
    }

    // MARK: SigV4, checked from the server's side

    private func authenticate(_ request: SimRequest, _ target: Target, resource: String, requestID: String) -> SimResponse? {
        let head = request.method == "HEAD"
        func deny(_ status: Int, _ code: String, _ message: String, extra: [(String, String)] = []) -> SimResponse {
            state.count { $0.signatureFailures += 1 }
            return error(status, code, message, resource: resource, requestID: requestID, head: head, extra: extra)
        }
        guard let authorization = request.header("authorization") else {
            if target.has("encryption") { return deny(400, "InvalidRequest", Messages.needSigV4) }
            return deny(403, "AccessDenied", Messages.accessDenied)
        }
        guard authorization.hasPrefix("AWS4-HMAC-SHA256 "),
              let auth = ParsedAuthorization(authorization.dropFirst("AWS4-HMAC-SHA256 ".count)) else {
            if target.has("encryption") { return deny(400, "InvalidRequest", Messages.needSigV4) }
            return deny(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the authorization header requires three components: Credential, SignedHeaders, and Signature.")
        }
        guard let credential = lock.withLock({ credentials[auth.accessKeyID] }) else {
            return deny(403, "InvalidAccessKeyId", Messages.unknownAccessKey, extra: [("AWSAccessKeyId", auth.accessKeyID)])
        }
        guard let amzDateText = request.header("x-amz-date"), let amzDate = SigV4Date(amzDate: amzDateText),
              let seconds = amzDate.secondsSince1970 else {
            return deny(403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header")
        }
        let serverNow = now
        if abs(Double(seconds) - serverNow.timeIntervalSince1970) > 15 * 60 {
            return deny(403, "RequestTimeTooSkewed", Messages.skewed, extra: [
                ("RequestTime", amzDateText), ("ServerTime", ISO8601DateFormatter().string(from: serverNow)),
                ("MaxAllowedSkewMilliseconds", "900000"),
            ])
        }
        if auth.day != amzDate.day || auth.service != "s3" || auth.terminator != "aws4_request" {
            return deny(400, "AuthorizationHeaderMalformed", "The authorization header is malformed; the credential scope "
                + "'\(auth.day)/\(auth.region)/\(auth.service)/\(auth.terminator)' does not match the request date or service.")
        }
        if let bucketRegion = state.bucketRegion(target.bucket), bucketRegion != auth.region {
            state.count { $0.wrongRegion += 1 }
            var response = error(400, "AuthorizationHeaderMalformed",
                                 "The authorization header is malformed; the region '\(auth.region)' is wrong; expecting '\(bucketRegion)'",
                                 resource: resource, requestID: requestID, head: head, extra: [("Region", bucketRegion)])
            response.headers.append(("x-amz-bucket-region", bucketRegion))
            return response
        }
        if let token = credential.sessionToken {
            guard request.header("x-amz-security-token") == token else { return deny(403, "InvalidToken", Messages.invalidToken) }
        }
        let signed = Set(auth.signedHeaders)
        guard signed.contains("host") else { return deny(403, "AccessDenied", Messages.unsignedHeaders) }
        for (name, _) in request.headers where name.utf8.count > 6 && ASCII.hasLowercasePrefix(name, "x-amz-") {
            let lower = name.lowercased()
            if !signed.contains(lower) { return deny(403, "AccessDenied", Messages.unsignedHeaders, extra: [("HeadersNotSigned", lower)]) }
        }
        guard let contentSHA = request.header("x-amz-content-sha256") else {
            return deny(400, "InvalidRequest", "Missing required header for this request: x-amz-content-sha256")
        }
        if contentSHA != "UNSIGNED-PAYLOAD" && contentSHA != "STREAMING-UNSIGNED-PAYLOAD-TRAILER" {
            if contentSHA != Crypto.sha256Hex(request.body) {
                return deny(400, "XAmzContentSHA256Mismatch", Messages.contentSHAMismatch, extra: [
                    ("ClientComputedContentSHA256", contentSHA), ("S3ComputedContentSHA256", Crypto.sha256Hex(request.body)),
                ])
            }
        }
        var headers: [(name: String, value: String)] = []
        for name in auth.signedHeaders {
            let values = request.headers.filter { ASCII.equalsLowercased($0.name, name) }.map(\.value)
            guard !values.isEmpty else {
                return deny(403, "SignatureDoesNotMatch", Messages.signatureMismatch)
            }
            for v in values { headers.append((name, v)) }
        }
        let signer = lock.withLock { () -> SigV4Signer in
            if let s = signers[auth.region] { return s }
            let s = SigV4Signer(service: "s3", region: auth.region)
            signers[auth.region] = s
            return s
        }
        let result = signer.sign(SigV4Request(method: request.method, canonicalURI: target.canonicalURI, query: target.query,
                                              headers: headers, payloadHash: contentSHA),
                                 credentials: AWSCredentials(accessKeyID: credential.accessKeyID,
                                                             secretAccessKey: credential.secretAccessKey),
                                 date: amzDate)
        guard result.signature == auth.signature else {
            return deny(403, "SignatureDoesNotMatch", Messages.signatureMismatch, extra: [
                ("AWSAccessKeyId", auth.accessKeyID), ("StringToSign", result.stringToSign),
                ("SignatureProvided", auth.signature), ("CanonicalRequest", result.canonicalRequest),
            ])
        }
        return nil
    }

    struct ParsedAuthorization {
        var accessKeyID = "", day = "", region = "", service = "", terminator = ""
        var signedHeaders: [String] = []
        var signature = ""

        init?(_ text: Substring) {
            for rawPart in UTF8Split.all(text, 0x2C) {  // ','
                let part = rawPart.drop(while: { $0 == " " })
                let (name, value) = UTF8Split.once(part, 0x3D)  // '='
                guard let value else { return nil }
                switch name {
                case "Credential":
                    let scope = UTF8Split.all(value, 0x2F)  // '/'
                    guard scope.count == 5 else { return nil }
                    (accessKeyID, day, region, service, terminator) =
                        (String(scope[0]), String(scope[1]), String(scope[2]), String(scope[3]), String(scope[4]))
                case "SignedHeaders": signedHeaders = UTF8Split.all(value, 0x3B).map(String.init)
                case "Signature": signature = String(value)
                default: return nil
                }
            }
            if accessKeyID.isEmpty || signedHeaders.isEmpty || signature.isEmpty { return nil }
        }
    }

    // MARK: Faults

    private func injectFault(_ request: SimRequest, _ target: Target, resource: String, requestID: String) -> SimResponse? {
        let now = Self.monotonic()
        let (faults, throttled, kmsThrottled, roll) = lock.withLock { () -> (SimFaults, Bool, Bool, Double) in
            var throttled = false
            if var bucket = throttle {
                throttled = !bucket.take(now: now)
                throttle = bucket
            }
            var kmsThrottled = false
            if target.has("encryption"), var bucket = kmsThrottle {
                kmsThrottled = !bucket.take(now: now)
                kmsThrottle = bucket
            }
            return (_faults, throttled, kmsThrottled, Double.random(in: 0..<1, using: &random))
        }
        var response: SimResponse?
        if throttled {
            state.count { $0.throttled += 1 }
            response = error(503, "SlowDown", Messages.slowDown, resource: resource, requestID: requestID, head: request.method == "HEAD")
        } else if kmsThrottled {
            state.count { $0.kmsThrottled += 1 }
            response = error(503, "SlowDown", Messages.slowDownKMS, resource: resource, requestID: requestID)
        } else if roll < faults.errorRate {
            state.count { $0.injectedErrors += 1 }
            response = error(500, "InternalError", Messages.internalError, resource: resource, requestID: requestID,
                             head: request.method == "HEAD")
        } else if roll < faults.errorRate + faults.resetRate {
            state.count { $0.injectedResets += 1 }
            return SimResponse(status: 0, headers: [], body: [], fault: .reset)
        } else if roll < faults.errorRate + faults.resetRate + faults.slowRate {
            state.count { $0.injectedSlow += 1 }
            return SimResponse(status: 500, headers: [], body: [], fault: .delay(seconds: faults.slowSeconds))
        } else if target.has("encryption"), roll < faults.errorRate + faults.resetRate + faults.slowRate + faults.errorIn200Rate {
            state.count { $0.injectedErrorIn200 += 1 }
            var r = error(500, "InternalError", Messages.internalError, resource: resource, requestID: requestID)
            r.status = 200
            response = r
        }
        return response
    }

    /// The configured latency, drawn for one answer; the handler holds the answer back without blocking a thread.
    func drawLatency() -> Double {
        lock.withLock {
            switch _faults.latency {
            case .none: return 0
            case .fixed(let ms): return ms / 1000
            case .uniform(let lo, let hi): return Double.random(in: lo...max(lo, hi), using: &random) / 1000
            case .exponential(let mean): return -log(1 - Double.random(in: 0..<1, using: &random)) * mean / 1000
            }
        }
    }

    // MARK: Responses

    func error(_ status: Int, _ code: String, _ message: String, resource: String, requestID: String, head: Bool = false,
               extra: [(String, String)] = []) -> SimResponse {
        if head {
            // HEAD answers carry no body: only the status says what happened.
            return SimResponse(status: status, headers: [], body: [], contentLengthOverride: 0)
        }
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>\(code)</Code><Message>\(xmlEscape(message))</Message>"
        for (name, value) in extra { xml += "<\(name)>\(xmlEscape(value))</\(name)>" }
        xml += "<Resource>\(xmlEscape(resource))</Resource><RequestId>\(requestID)</RequestId><HostId>sim/\(requestID)</HostId></Error>"
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

func xmlEscape(_ s: String) -> String {
    guard s.contains(where: { "&<>\"'".contains($0) }) else { return s }
    return s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
        .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
        .replacingOccurrences(of: "'", with: "&apos;")
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
        guard let i = s.utf8.firstIndex(of: separator) else { return (s, nil) }
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
