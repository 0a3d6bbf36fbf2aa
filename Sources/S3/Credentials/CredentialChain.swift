import Foundation

/// The SDKs' default chain: environment → shared files (profile, role_arn + source_profile) → web identity →
/// container endpoint → EC2 IMDSv2. The first configured source wins. Temporary credentials are cached and refreshed
/// ahead of expiry: in the advisory window (15 min before) by one background refresh while callers keep the current
/// ones; only inside the mandatory window (10 min) does a caller wait. Source: botocore credentials.py.
public final class CredentialChain: CredentialProvider, @unchecked Sendable {
    private let sources: [CredentialSource]
    private let clock: @Sendable () -> Date
    private let advisory: TimeInterval = 15 * 60
    private let mandatory: TimeInterval = 10 * 60
    // Cache and refresh state, behind `lock`.
    private let lock = NSLock()
    private var cached: AWSCredentials?
    private var refreshing = false
    /// Which source gave the current credentials (for `inspect` and logs; never the secret).
    public private(set) var sourceName: String?

    public convenience init(environment: [String: String] = ProcessInfo.processInfo.environment, profile: String? = nil) {
        let http = BlockingHTTP()
        let sts = STSClient(environment: environment, http: http)
        let profile = profile ?? environment["AWS_PROFILE"] ?? "default"
        self.init(sources: [
            EnvironmentCredentials(environment: environment),
            SharedFileCredentials(environment: environment, profile: profile, sts: sts),
            WebIdentityCredentials(environment: environment, sts: sts),
            ContainerCredentials(environment: environment, http: http),
            InstanceMetadataCredentials(environment: environment, http: http),
        ])
    }

    init(sources: [CredentialSource], clock: @escaping @Sendable () -> Date = { Date() }) {
        self.sources = sources
        self.clock = clock
    }

    public func credentials() throws -> AWSCredentials {
        let now = clock()
        let (current, startBackground) = lock.withLock { () -> (AWSCredentials?, Bool) in
            guard let c = cached else { return (nil, false) }
            guard let expiry = c.expiration else { return (c, false) }
            let left = expiry.timeIntervalSince(now)
            if left <= mandatory { return (nil, false) }
            if left <= advisory && !refreshing {
                refreshing = true
                return (c, true)
            }
            return (c, false)
        }
        if startBackground {
            Thread.detachNewThread { [self] in
                let fresh = try? resolve()
                lock.withLock {
                    if let fresh { cached = fresh.0; sourceName = fresh.1 }
                    refreshing = false
                }
            }
        }
        if let current { return current }
        let (fresh, name) = try resolve()
        lock.withLock {
            cached = fresh
            sourceName = name
        }
        return fresh
    }

    public func invalidate() { lock.withLock { cached = nil } }

    private func resolve() throws -> (AWSCredentials, String) {
        for source in sources {
            if let c = try source.fetch() { return (c, source.name) }
        }
        throw S3ClientError.credentials("no credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile in "
            + "~/.aws/credentials or ~/.aws/config (AWS_PROFILE), AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, "
            + "a container credentials endpoint, or run on EC2 with an instance role")
    }
}
