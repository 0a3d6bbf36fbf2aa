import Foundation

/// Blocking HTTP for credential sources, over a transport of their own (never the S3 transport: a refresh
/// started from its driver thread would wait on itself).
final class BlockingHTTP: @unchecked Sendable {
    // Created lazily so that a chain that ends at the environment never starts a thread. Guarded by `lock`.
    private let lock = NSLock()
    private var transport: CurlTransport?
    private let timeout: Double

    init(timeout: Double = 5) { self.timeout = timeout }

    deinit { transport?.shutdown() }

    func send(method: String, url: String, headers: [(name: String, value: String)], body: [UInt8] = [], what: String) throws -> HTTPResponse {
        let transport = try lock.withLock { () -> CurlTransport in
            if let t = self.transport { return t }
            var c = TransportConfiguration()
            c.connectTimeout = min(timeout, 2)
            c.requestTimeout = timeout
            c.maxHostConnections = 4
            let t = try CurlTransport(configuration: c)
            self.transport = t
            return t
        }
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        transport.submit(PreparedRequest(method: method, url: url, headers: headers, body: body)) { result in
            box.set(result)
            done.signal()
        }
        done.wait()
        switch box.get() {
        case .response(let r) where (200..<300).contains(r.status): return r
        case .response(let r):
            let e = S3Error(status: r.status, headers: r.headers, body: r.body, operation: what, object: nil)
            throw S3ClientError.credentials("\(what) answered HTTP \(r.status)\(e.code.isEmpty ? "" : " \(e.code)")\(e.message.isEmpty ? "" : ": \(e.message)")")
        case .failure(_, let message)?: throw S3ClientError.credentials("\(what) unreachable: \(message)")
        case nil: throw S3ClientError.credentials("\(what): no answer")
        }
    }

    private final class ResultBox: @unchecked Sendable {
        private let lock = NSLock()
        private var value: TransportResult?
        func set(_ v: TransportResult) { lock.withLock { value = v } }
        func get() -> TransportResult? { lock.withLock { value } }
    }
}

/// STS AssumeRole (signed) and AssumeRoleWithWebIdentity (unsigned), Query protocol over POST.
/// `AWS_ENDPOINT_URL_STS` overrides the regional endpoint. https://docs.aws.amazon.com/STS/latest/APIReference/
struct STSClient: Sendable {
    let environment: [String: String]
    let http: BlockingHTTP

    func endpoint(region: String) -> String {
        if let url = environment["AWS_ENDPOINT_URL_STS"] ?? environment["AWS_ENDPOINT_URL"], !url.isEmpty { return url }
        return "https://sts.\(region).amazonaws.com"
    }

    func assumeRole(roleARN: String, sessionName: String, externalID: String?, credentials: AWSCredentials,
                    region: String) throws -> AWSCredentials {
        var form = [("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", roleARN), ("RoleSessionName", sessionName)]
        if let externalID { form.append(("ExternalId", externalID)) }
        return try call(form: form, region: region, signWith: credentials, what: "STS AssumeRole for \(roleARN)")
    }

    func assumeRoleWithWebIdentity(roleARN: String, sessionName: String, token: String, region: String) throws -> AWSCredentials {
        try call(form: [("Action", "AssumeRoleWithWebIdentity"), ("Version", "2011-06-15"), ("RoleArn", roleARN),
                        ("RoleSessionName", sessionName), ("WebIdentityToken", token)],
                 region: region, signWith: nil, what: "STS AssumeRoleWithWebIdentity for \(roleARN)")
    }

    private func call(form: [(String, String)], region: String, signWith: AWSCredentials?, what: String) throws -> AWSCredentials {
        let url = endpoint(region: region)
        guard let components = URLComponents(string: url), let host = components.host else {
            throw S3ClientError.credentials("STS endpoint '\(url)' is not a URL")
        }
        let body = Array(form.map { URIEncoding.encode($0.0, keepSlash: false) + "=" + URIEncoding.encode($0.1, keepSlash: false) }
            .joined(separator: "&").utf8)
        let hostHeader = components.port.map { "\(host):\($0)" } ?? host
        var headers: [(name: String, value: String)] = [("Host", hostHeader),
                                                        ("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")]
        if let creds = signWith {
            let date = SigV4Date(Date())
            let hash = Crypto.sha256Hex(body)
            var signed: [(name: String, value: String)] = [("host", hostHeader), ("content-type", headers[1].value),
                                                           ("x-amz-date", date.amzDate)]
            if let token = creds.sessionToken { signed.append(("x-amz-security-token", token)) }
            let path = components.path.isEmpty ? "/" : components.path
            let signature = SigV4Signer(service: "sts", region: region).sign(
                SigV4Request(method: "POST", canonicalURI: CanonicalURI.generic(path: path, normalize: true), headers: signed,
                             payloadHash: hash), credentials: creds, date: date)
            headers = signed.map { $0.name == "host" ? (name: "Host", value: $0.value) : $0 }
            headers.append(("Authorization", signature.authorization))
        }
        let response = try http.send(method: "POST", url: url, headers: headers, body: body, what: what)
        let xml = String(decoding: response.body, as: UTF8.self)
        guard let id = XMLScan.first("AccessKeyId", in: xml), let secret = XMLScan.first("SecretAccessKey", in: xml) else {
            throw S3ClientError.credentials("\(what) returned no credentials")
        }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: XMLScan.first("SessionToken", in: xml),
                              expiration: XMLScan.first("Expiration", in: xml).flatMap(ISO8601.parse))
    }
}
