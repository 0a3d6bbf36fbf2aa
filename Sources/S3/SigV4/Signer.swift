import Domain
import Foundation

/// The time a request is signed at, in SigV4's two forms. Passed in, never read from a clock here, so tests are
/// deterministic (soto-core's signer does the same).
public struct SigV4Date: Sendable, Equatable {
    /// `YYYYMMDD'T'HHMMSS'Z'`, the `x-amz-date` header.
    public let amzDate: String
    /// `YYYYMMDD`, the credential scope's date.
    public let day: String

    public init(secondsSince1970: Int) {
        var t = time_t(secondsSince1970)
        var parts = tm()
        gmtime_r(&t, &parts)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : "\(v)" }
        day = "\(parts.tm_year + 1900)\(two(parts.tm_mon + 1))\(two(parts.tm_mday))"
        amzDate = "\(day)T\(two(parts.tm_hour))\(two(parts.tm_min))\(two(parts.tm_sec))Z"
    }

    public init(_ date: Date) { self.init(secondsSince1970: Int(date.timeIntervalSince1970.rounded(.down))) }

    /// Parses an `x-amz-date` value; nil when malformed.
    public init?(amzDate: String) {
        guard Self.secondsSince1970(amzDate: Array(amzDate.utf8)[...]) != nil else { return nil }
        self.amzDate = amzDate
        day = String(amzDate.prefix(8))
    }

    /// Seconds since 1970 (for the server's clock-skew window).
    public var secondsSince1970: Int? { Self.secondsSince1970(amzDate: Array(amzDate.utf8)[...]) }

    /// `YYYYMMDD'T'HHMMSS'Z'` as bytes (how a server receives it) to seconds since 1970; nil when malformed.
    public static func secondsSince1970(amzDate b: ArraySlice<UInt8>) -> Int? {
        guard b.count == 16 else { return nil }
        let s = b.startIndex
        guard b[s + 8] == 0x54, b[s + 15] == 0x5A else { return nil }  // 'T', 'Z'
        var ok = true
        func digits(_ from: Int, _ count: Int) -> Int {
            var v = 0
            for i in from..<(from + count) {
                let c = b[s + i]
                if c < 0x30 || c > 0x39 { ok = false }
                v = v * 10 + Int(c &- 0x30)
            }
            return v
        }
        let year = digits(0, 4), month = digits(4, 2), day = digits(6, 2)
        let hour = digits(9, 2), minute = digits(11, 2), second = digits(13, 2)
        guard ok else { return nil }
        guard (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm), so no libc time zone state is involved.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return days * 86_400 + hour * 3_600 + minute * 60 + second
    }
}

/// What SigV4 signs of a request. Header names may be in any case; values are trimmed and folded here.
public struct SigV4Request: Sendable {
    public var method: String
    /// The canonical URI, already encoded by the service's rule (`CanonicalURI.s3` or `.generic`).
    public var canonicalURI: String
    /// Decoded query parameters; a bare flag such as `?encryption` is `("encryption", "")`.
    public var query: [(name: String, value: String)]
    /// The headers to sign, `host` included.
    public var headers: [(name: String, value: String)]
    /// Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`.
    public var payloadHash: String
    /// The caller vouches that `headers` are lowercase, trimmed and sorted (the S3 request signer, for requests it
    /// built itself); otherwise the signer checks, and canonicalises a copy when needed.
    var headersAreCanonical = false

    public init(method: String, canonicalURI: String, query: [(name: String, value: String)] = [],
                headers: [(name: String, value: String)], payloadHash: String) {
        self.method = method
        self.canonicalURI = canonicalURI
        self.query = query
        self.headers = headers
        self.payloadHash = payloadHash
    }
}

/// Canonical URI rules. S3 differs from every other service: the decoded key is encoded once and never normalised.
/// https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
public enum CanonicalURI {
    /// S3: `/bucket/key` (path style) or `/key` (virtual-hosted), the decoded key encoded once, `/` kept, no
    /// `.`/`..`/`//` normalisation: `a//b` and `./x/../y` are distinct objects.
    public static func s3(bucket: String?, key: String) -> String {
        var out: [UInt8] = []
        // Room for the usual case (few escapes): growing from one byte took three allocations per request.
        out.reserveCapacity(2 + (bucket?.utf8.count ?? 0) + key.utf8.count + 32)
        out.append(0x2F)
        if let bucket {
            URIEncoding.append(bucket, keepSlash: false, to: &out)
            if !key.isEmpty { out.append(0x2F) }
        }
        URIEncoding.append(key, keepSlash: true, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Other services (the generic SigV4 test suite): optionally remove dot segments and empty segments, then encode
    /// each segment of the path as received, so an already-encoded `%20` becomes `%2520` (double encoding).
    public static func generic(path: String, normalize: Bool) -> String {
        var segments = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        if segments.first == "" { segments.removeFirst() }
        let trailingSlash = path.hasSuffix("/") && path != "/"
        if normalize {
            var kept: [String] = []
            for s in segments {
                switch s {
                case "", ".": continue
                case "..": _ = kept.popLast()
                default: kept.append(s)
                }
            }
            segments = kept
            if trailingSlash || path.hasSuffix("/.") || path.hasSuffix("/..") { segments.append("") }
        }
        var out: [UInt8] = []
        for s in segments {
            out.append(0x2F)
            URIEncoding.append(s, keepSlash: false, to: &out)
        }
        return out.isEmpty ? "/" : String(decoding: out, as: UTF8.self)
    }
}

/// A SigV4 signer for one service and region: no I/O, no clock (pass the date).
/// Signing keys are derived once per day, region and access key, and cached.
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
public final class SigV4Signer: @unchecked Sendable {
    public let service: String
    public let region: String
    // Guarded by `lock`; @unchecked Sendable is sound because nothing else touches it.
    private var keyCache: DerivedKey?
    private let lock = NSLock()

    public init(service: String, region: String) {
        self.service = service
        self.region = region
    }

    /// A signature and what went into it. Only `authorization` is needed to send a request, so the rest stays bytes
    /// until asked for (each String would be an allocation per request).
    public struct Signed: Sendable {
        let canonicalRequestBytes: [UInt8]
        let stringToSignBytes: [UInt8]
        let signedHeaderBytes: [UInt8]
        public let authorization: String
        public var canonicalRequest: String { String(decoding: canonicalRequestBytes, as: UTF8.self) }
        public var stringToSign: String { String(decoding: stringToSignBytes, as: UTF8.self) }
        public var signedHeaders: String { String(decoding: signedHeaderBytes, as: UTF8.self) }
        /// The hex signature: the last 64 characters of `authorization`.
        public var signature: String { String(authorization.utf8.suffix(64))! }
    }

    /// The canonical request and the `;`-joined signed header names.
    public func canonicalRequest(_ r: SigV4Request) -> (text: String, signedHeaders: String) {
        let (bytes, signed) = canonicalRequestBytes(r)
        return (String(decoding: bytes, as: UTF8.self), String(decoding: signed, as: UTF8.self))
    }

    /// Built as bytes in one buffer: this runs for every request on both sides of a benchmark.
    func canonicalRequestBytes(_ r: SigV4Request) -> ([UInt8], [UInt8]) {
        var out: [UInt8] = []
        out.reserveCapacity(768)
        out += r.method.utf8
        out.append(0x0A)
        out += r.canonicalURI.utf8
        out.append(0x0A)
        Self.appendCanonicalQuery(r.query, to: &out)
        out.append(0x0A)
        var signed: [UInt8] = []
        signed.reserveCapacity(128)
        var previous: String?
        func appendHeader(_ name: String, _ value: String) {
            if name == previous {
                out.removeLast()  // the newline: fold duplicates into one line, comma-separated
                out.append(0x2C)
                out += value.utf8
                out.append(0x0A)
                return
            }
            if previous != nil { signed.append(0x3B) }
            signed += name.utf8
            previous = name
            out += name.utf8
            out.append(0x3A)
            out += value.utf8
            out.append(0x0A)
        }
        // The client's own headers are lowercase, trimmed and sorted already: use them as they are, without a copy.
        if r.headersAreCanonical
            || (r.headers.allSatisfy({ Self.isLowercase($0.name) && Self.isCanonicalValue($0.value) }) && Self.isSorted(r.headers)) {
            for (name, value) in r.headers { appendHeader(name, value) }
        } else {
            var headers: [(name: String, value: String)] = []
            headers.reserveCapacity(r.headers.count)
            for (name, value) in r.headers {
                headers.append((Self.isLowercase(name) ? name : name.lowercased(), Self.canonicalValue(value)))
            }
            Self.sortByName(&headers)
            for (name, value) in headers { appendHeader(name, value) }
        }
        out.append(0x0A)
        out += signed
        out.append(0x0A)
        out += r.payloadHash.utf8
        return (out, signed)
    }

    static func isLowercase(_ s: String) -> Bool { !s.utf8.contains { $0 >= 0x41 && $0 <= 0x5A } }

    /// Sorted by name, stably (duplicate names keep their order, as the suite requires); as is when already sorted.
    /// Insertion-sorted in place: a request's headers are few (S3 takes 8 KB of them), and a general sort of
    /// (offset, header) pairs allocated twice for every request.
    static func sortByName(_ h: inout [(name: String, value: String)]) {
        if isSorted(h) { return }
        for i in 1..<h.count {
            let item = h[i]
            var j = i
            while j > 0, item.name < h[j - 1].name {  // strictly less: equal names keep their order
                h[j] = h[j - 1]
                j -= 1
            }
            h[j] = item
        }
    }

    static func isSorted(_ h: [(name: String, value: String)]) -> Bool {
        var i = 1
        while i < h.count {
            if h[i - 1].name > h[i].name { return false }
            i += 1
        }
        return true
    }

    /// Encoded names and values, sorted by encoded name then value (bytes), `&`-joined. When the names need no
    /// encoding and are already in order (`?encryption`, `?encryption&versionId=…`: every UpdateObjectEncryption
    /// call) the pairs go straight into `out`, with no copies and no sort.
    static func appendCanonicalQuery(_ query: [(name: String, value: String)], to out: inout [UInt8]) {
        if namesArePlainAndInOrder(query) {
            for (i, q) in query.enumerated() {
                if i > 0 { out.append(0x26) }
                out += q.name.utf8
                out.append(0x3D)
                URIEncoding.append(q.value, keepSlash: false, to: &out)
            }
            return
        }
        var encoded: [(name: [UInt8], value: [UInt8])] = query.map {
            var n: [UInt8] = [], v: [UInt8] = []
            URIEncoding.append($0.name, keepSlash: false, to: &n)
            URIEncoding.append($0.value, keepSlash: false, to: &v)
            return (n, v)
        }
        encoded.sort { a, b in a.name != b.name ? a.name.lexicographicallyPrecedes(b.name) : a.value.lexicographicallyPrecedes(b.value) }
        for (i, p) in encoded.enumerated() {
            if i > 0 { out.append(0x26) }
            out += p.name
            out.append(0x3D)
            out += p.value
        }
    }

    /// Every name is unreserved characters only (its own encoding) and sorts strictly after the one before it.
    static func namesArePlainAndInOrder(_ query: [(name: String, value: String)]) -> Bool {
        var previous: Substring.UTF8View?
        for q in query {
            let name = q.name.utf8
            guard name.allSatisfy(URIEncoding.isUnreserved) else { return false }
            if let previous, !previous.lexicographicallyPrecedes(name[...]) { return false }
            previous = name[...]
        }
        return true
    }

    /// Space, tab, CR, LF: the white space a header value is trimmed of and folds (folded lines included).
    static func isBlank(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D }

    /// Whether `value` is already trimmed with no runs of blanks (then canonicalValue would return it unchanged).
    static func isCanonicalValue(_ value: String) -> Bool {
        var previousSpace = true
        for b in value.utf8 {
            let space = isBlank(b)
            if space && (previousSpace || b != 0x20) { return false }
            previousSpace = space
        }
        return !previousSpace || value.isEmpty
    }

    /// Trims, and folds runs of white space (including folded header lines) into one space.
    static func canonicalValue(_ value: String) -> String {
        if isCanonicalValue(value) { return value }  // most values have nothing to trim or fold
        var value = value
        var out: [UInt8] = []
        out.reserveCapacity(value.utf8.count)
        value.withUTF8 { appendCanonicalValue($0, to: &out) }
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `value` trimmed, each run of white space (space, tab, CR, LF: folded lines) as one space. The one rule
    /// for both sides: the client canonicalising what it signs, the simulator what it received.
    /// Each run of other bytes is copied whole: appending byte by byte checked the array's uniqueness (and, in a
    /// closure, its exclusive access) per byte, a fifth of the simulator's canonical request.
    public static func appendCanonicalValue(_ value: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        let n = value.count
        var i = 0
        var first = true
        while i < n {
            while i < n, isBlank(value[i]) { i += 1 }
            guard i < n else { return }
            var j = i + 1
            while j < n, !isBlank(value[j]) { j += 1 }
            if !first { out.append(0x20) }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: value[i..<j]))
            first = false
            i = j
        }
    }

    public func scope(day: String) -> String { "\(day)/\(region)/\(service)/aws4_request" }

    /// Signs `request` at `date`. The request's headers must already hold `x-amz-date` (and, when the credentials
    /// have one, `x-amz-security-token`) so that they are signed.
    public func sign(_ request: SigV4Request, credentials: AWSCredentials, date: SigV4Date) -> Signed {
        let (canonical, signedHeaders) = canonicalRequestBytes(request)
        let derived = lock.withLock { derive(credentials: credentials, day: date.day) }
        let scope = derived.scope
        let stringToSign = Self.stringToSign(canonicalRequest: canonical, amzDate: date.amzDate.utf8, scope: scope.utf8)
        var authorization: [UInt8] = []
        authorization.reserveCapacity(200 + credentials.accessKeyID.utf8.count + signedHeaders.count)
        authorization += "AWS4-HMAC-SHA256 Credential=".utf8
        authorization += credentials.accessKeyID.utf8
        authorization.append(0x2F)
        authorization += scope.utf8
        authorization += ", SignedHeaders=".utf8
        authorization += signedHeaders
        authorization += ", Signature=".utf8
        derived.hmac.appendMACHex(of: stringToSign, to: &authorization)
        return Signed(canonicalRequestBytes: canonical, stringToSignBytes: stringToSign, signedHeaderBytes: signedHeaders,
                      authorization: String(decoding: authorization, as: UTF8.self))
    }

    /// `AWS4-HMAC-SHA256\n<amz-date>\n<scope>\n<hex SHA-256 of the canonical request>`, for the client signing and
    /// for the simulator checking (which passes the bytes it received). Inlinable so each side gets it specialised to
    /// its byte collections: unspecialised across modules it would walk them through witness tables.
    @inlinable
    public static func stringToSign(canonicalRequest: [UInt8], amzDate: some Collection<UInt8>, scope: some Collection<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160)
        out += "AWS4-HMAC-SHA256\n".utf8
        out += amzDate
        out.append(0x0A)
        out += scope
        out.append(0x0A)
        Crypto.appendSHA256Hex(of: canonicalRequest, to: &out)
        return out
    }

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, day), region), service), "aws4_request").
    public func signingKey(credentials: AWSCredentials, day: String) -> [UInt8] {
        lock.withLock { derive(credentials: credentials, day: day).key }
    }

    /// A signing key (also ready for HMAC), its credential scope, and what it was derived for. A class: a cache hit,
    /// once per request, is one reference, where the tuple it replaces copied four strings, an array and the HMAC
    /// state.
    private final class DerivedKey: Sendable {
        let day: String
        let accessKeyID: String
        let secret: String
        let key: [UInt8]
        let hmac: Crypto.HMACKey
        let scope: String

        init(day: String, accessKeyID: String, secret: String, key: [UInt8], scope: String) {
            self.day = day
            self.accessKeyID = accessKeyID
            self.secret = secret
            self.key = key
            self.hmac = Crypto.HMACKey(key)
            self.scope = scope
        }
    }

    /// The cached key for `day`, or a new one (then cached). Called under `lock`.
    private func derive(credentials: AWSCredentials, day: String) -> DerivedKey {
        if let c = keyCache, c.day == day, c.accessKeyID == credentials.accessKeyID, c.secret == credentials.secretAccessKey {
            return c
        }
        let kDate = Crypto.hmacSHA256(key: Array(("AWS4" + credentials.secretAccessKey).utf8), Array(day.utf8))
        let kRegion = Crypto.hmacSHA256(key: kDate, Array(region.utf8))
        let kService = Crypto.hmacSHA256(key: kRegion, Array(service.utf8))
        let key = Crypto.hmacSHA256(key: kService, Array("aws4_request".utf8))
        let derived = DerivedKey(day: day, accessKeyID: credentials.accessKeyID, secret: credentials.secretAccessKey, key: key,
                                 scope: scope(day: day))
        keyCache = derived
        return derived
    }
}
