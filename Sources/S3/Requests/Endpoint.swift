import Foundation

/// Where requests go and how buckets are addressed.
///
/// AWS: virtual-hosted `bucket.s3.REGION.amazonaws.com`, except path style for bucket names with dots over https
/// (the wildcard certificate does not cover them). Custom endpoints: path style when the host is an IP literal or
/// `localhost`. `pathStyle` in the configuration overrides both.
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html
public struct S3Endpoint: Sendable, Equatable {
    public enum PathStyle: String, Sendable { case auto, always, never }

    public var scheme: String { didSet { derive() } }
    /// Host for custom endpoints; nil means AWS, whose host depends on the region.
    public var customHost: String? { didSet { derive() } }
    public var port: Int? { didSet { derive() } }
    public var pathStyle: PathStyle
    /// A base path of a custom endpoint (rare; e.g. behind a proxy), without a trailing slash.
    public var basePath: String

    /// Worked out once from the fields above (they are read for every request): whether the custom host is an IP
    /// literal or `localhost`, and its `Host` header and URL prefix when requests to it use path style.
    private var customIsLiteral = false
    private var customPathStyleAddress: (host: String, urlPrefix: String)?

    private mutating func derive() {
        customIsLiteral = customHost.map(Self.isIPLiteralOrLocalhost) ?? false
        customPathStyleAddress = customHost.map { hostAndPrefix(host: $0) }
    }

    private func hostAndPrefix(host: String) -> (host: String, urlPrefix: String) {
        let defaultPort = scheme == "https" ? 443 : 80
        let hostHeader = port.map { $0 == defaultPort ? host : "\(host):\($0)" } ?? host
        let hostForURL = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        let authority = port.map { "\(hostForURL):\($0)" } ?? hostForURL
        return (hostHeader, "\(scheme)://\(authority)")
    }

    /// AWS itself.
    public static func aws(pathStyle: PathStyle = .auto) -> S3Endpoint {
        S3Endpoint(scheme: "https", customHost: nil, port: nil, pathStyle: pathStyle, basePath: "")
    }

    /// Parses a custom endpoint URL such as `http://127.0.0.1:9000`.
    public init(url: String, pathStyle: PathStyle = .auto) throws {
        guard let components = URLComponents(string: url), let scheme = components.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = components.host, !host.isEmpty else {
            throw S3ClientError.configuration("endpoint '\(url)' is not an http:// or https:// URL with a host")
        }
        self.init(scheme: scheme, customHost: host, port: components.port, pathStyle: pathStyle,
                  basePath: components.path.hasSuffix("/") ? String(components.path.dropLast()) : components.path)
    }

    public init(scheme: String, customHost: String?, port: Int?, pathStyle: PathStyle, basePath: String) {
        self.scheme = scheme
        self.customHost = customHost
        self.port = port
        self.pathStyle = pathStyle
        self.basePath = basePath
        derive()
    }

    public static func == (a: S3Endpoint, b: S3Endpoint) -> Bool {
        a.scheme == b.scheme && a.customHost == b.customHost && a.port == b.port && a.pathStyle == b.pathStyle && a.basePath == b.basePath
    }

    static func isIPLiteralOrLocalhost(_ host: String) -> Bool {
        if host == "localhost" || host.hasSuffix(".localhost") || host.hasPrefix("[") { return true }
        return isIPLiteral(host[...])
    }

    /// An IPv6 literal (it has a ':'; give the host without its port), or four dot-separated decimal numbers below
    /// 256. The simulator uses it too, to tell a virtual-hosted request from one sent to an address.
    public static func isIPLiteral(_ host: Substring) -> Bool {
        var parts = 0, digits = 0, value = 0
        for b in host.utf8 {
            switch b {
            case 0x3A: return true
            case 0x2E:
                guard digits > 0 else { return false }
                parts += 1
                digits = 0
                value = 0
            case 0x30...0x39:
                digits += 1
                value = value * 10 + Int(b - 0x30)
                if digits > 3 || value > 255 { return false }
            default: return false
            }
        }
        return parts == 3 && digits > 0
    }

    func usesPathStyle(bucket: String) -> Bool {
        switch pathStyle {
        case .always: return true
        case .never: return false
        case .auto:
            if customIsLiteral { return true }
            return scheme == "https" && bucket.utf8.contains(0x2E)  // '.'
        }
    }

    /// The URL, `Host` header value and canonical URI for an object (or a bucket when `key` is empty).
    public func address(bucket: String, key: String, region: String) -> (host: String, canonicalURI: String, urlPrefix: String) {
        let pathStyle = usesPathStyle(bucket: bucket)
        var path = CanonicalURI.s3(bucket: pathStyle ? bucket : nil, key: key)
        if !basePath.isEmpty { path = basePath + path }
        if pathStyle, let fixed = customPathStyleAddress { return (fixed.host, path, fixed.urlPrefix) }
        var host = customHost ?? "s3.\(region).amazonaws.com"
        if !pathStyle { host = "\(bucket).\(host)" }
        let (hostHeader, urlPrefix) = hostAndPrefix(host: host)
        return (hostHeader, path, urlPrefix)
    }
}
