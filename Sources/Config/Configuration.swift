/// Everything reencryptd can be configured with (PRODUCT.md §2). Each field's default is the built-in one;
/// `config/reencryptd.toml` documents every key. Credentials never come from here (the AWS chain provides them).
public struct Configuration: Sendable, Equatable {
    public var s3 = S3Settings()
    public var engine = EngineSettings()
    public var store = StoreSettings()
    public var metrics = MetricsSettings()
    public var log = LogSettings()

    public init() {}
}

public struct S3Settings: Sendable, Equatable {
    /// Signing region when a bucket's own region is not yet known. Default empty: the `region` of `profile` in the
    /// shared config file, as the AWS SDKs read it, else `us-east-1`.
    public var region = ""

    /// Whether `name` can be a region's name (lowercase letters, digits, hyphens): it becomes part of an endpoint's host.
    public static func isRegionName(_ name: String) -> Bool {
        !name.isEmpty && name.allSatisfy { $0.isLowercase || $0.isNumber || $0 == "-" }
    }
    /// Custom endpoint URL (e.g. `http://127.0.0.1:9000`); empty means AWS. Default empty.
    public var endpoint = ""
    /// Path-style addressing: automatic for IP-literal or `localhost` endpoints. Default `.auto`.
    public var pathStyle = PathStyle.auto
    /// A PEM bundle of CA certificates to trust for https; empty means the system's. Default empty.
    public var caBundle = ""
    /// The shared-config profile for credentials and region. Default `default`.
    public var profile = "default"
    /// Seconds to establish a connection. Default 5.
    public var connectTimeoutSeconds = 5.0
    /// Seconds for a whole request. Default 30.
    public var requestTimeoutSeconds = 30.0

    public enum PathStyle: String, Sendable, Equatable, CaseIterable { case auto, always, never }
}

public struct EngineSettings: Sendable, Equatable {
    /// Requests in flight at once. Default 256.
    public var concurrency = 256
    /// Global ceiling on requests per second; 0 means none. Default 0.
    public var maxRPS = 0.0
    /// Ceiling per bucket; S3 takes at least 3,500 PUTs/s per prefix. 0 means none. Default 3500.
    public var maxRPSPerBucket = 3500.0
    /// Back off on throttling and probe back up (CUBIC, as the SDKs' adaptive mode). Default true.
    public var adaptive = true
    /// Attempts per task before `retries-exhausted`. Default 10.
    public var maxAttempts = 10
    /// First retry delay ceiling (full jitter), seconds. Default 0.1.
    public var backoffBaseSeconds = 0.1
    /// Largest retry delay ceiling, seconds. Default 20 (the SDKs' cap).
    public var backoffCapSeconds = 20.0
    /// How long a claimed task stays leased before another worker may take it. Default 120.
    public var leaseSeconds = 120.0
    /// A job whose failed share exceeds this percentage pauses itself. Default 50.
    public var failureThresholdPercent = 50.0
    /// …once at least this many of its tasks have finished. Default 1000.
    public var failureThresholdMinTasks = 1000
    /// On SIGTERM, how long in-flight requests may take to finish. Default 20.
    public var shutdownGraceSeconds = 20.0
}

public struct StoreSettings: Sendable, Equatable {
    /// The SQLite job store. Default `./reencryptd.sqlite3`.
    public var path = "./reencryptd.sqlite3"
}

public struct MetricsSettings: Sendable, Equatable {
    /// `host:port` for Prometheus `/metrics`; empty turns metrics off. Default empty.
    public var listen = ""
}

public struct LogSettings: Sendable, Equatable {
    /// trace, debug, info, notice, warning, error, critical. Default info.
    public var level = "info"
    /// `text` or `json`. Default text.
    public var format = LogFormat.text

    public enum LogFormat: String, Sendable, Equatable, CaseIterable { case text, json }
}
