import Domain

/// What a response means for a task (PRODUCT.md §3), plus what the engine must do about retryable ones.
public enum Classification: Sendable, Equatable {
    case succeeded
    /// Final: recorded with this class and never retried.
    case terminal(OutcomeClass)
    /// Worth another attempt after a backoff.
    case retryable(RetryReason)
    /// The local clock is off: correct the offset from the response's `Date` and retry.
    case clockSkew
    /// The bucket lives in another region: re-sign for it and retry once.
    case wrongRegion(String?)
    /// Temporary credentials expired: refresh them and retry.
    case expiredCredentials

    public enum RetryReason: Sendable, Equatable {
        /// S3 throttling; `kms` when the message names AWS KMS (slow every bucket that uses that key).
        case throttled(kms: Bool)
        /// 5xx, timeouts, resets, a 200 carrying an error.
        case transient
    }

    public var isThrottle: Bool {
        if case .retryable(.throttled) = self { return true }
        return false
    }
}

/// Maps S3 answers to classifications. The Object Lock and KMS-key AccessDenied cases are told apart by their
/// messages, which the UpdateObjectEncryption API page lists.
/// Sources: https://docs.aws.amazon.com/AmazonS3/latest/API/API_UpdateObjectEncryption.html ;
/// botocore retries/standard.py and adaptive.py (throttling codes); aws-sdk-swift AWSRetryErrorInfoProvider.swift.
public enum Classifier {
    /// botocore's throttling error codes.
    static let throttlingCodes: Set<String> = [
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException", "TooManyRequestsException",
        "ProvisionedThroughputExceededException", "TransactionInProgressException", "RequestLimitExceeded",
        "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
        "EC2ThrottledException",
    ]
    static let transientCodes: Set<String> = [
        "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeoutException", "InternalFailure",
        "OperationAborted",
    ]
    static let clockSkewCodes: Set<String> = [
        "RequestTimeTooSkewed", "RequestExpired", "RequestInTheFuture", "InvalidSignatureException",
    ]
    static let notFoundCodes: Set<String> = ["NoSuchKey", "NoSuchVersion", "NoSuchBucket", "NotFound"]
    static let credentialCodes: Set<String> = ["ExpiredToken", "TokenRefreshRequired", "ExpiredTokenException"]

    /// A HEAD signed for the wrong region gets a bare 400: no body says AuthorizationHeaderMalformed. botocore takes
    /// it as a redirect when `x-amz-bucket-region` names the region, and for HeadObject even when nothing does (it then
    /// asks HeadBucket; `S3Client` does the same). A 400 without a body gets `S3Error.defaultCode(400)` as its code.
    /// https://github.com/boto/botocore/blob/develop/botocore/utils.py (S3RegionRedirectorv2.redirect_from_error)
    static func isBodilessWrongRegion(_ error: S3Error) -> Bool {
        error.status == 400 && error.code == S3Error.defaultCode(400) && (error.region != nil || error.operation == "HeadObject")
    }

    public static func classify(_ error: S3Error) -> Classification {
        let code = error.code
        if error.status == 429 || throttlingCodes.contains(code) {
            return .retryable(.throttled(kms: ByteSearch.contains("AWS KMS", in: error.message)))
        }
        if clockSkewCodes.contains(code) && code != "InvalidSignatureException" { return .clockSkew }
        if credentialCodes.contains(code) { return .expiredCredentials }
        // 302 and 307 (TemporaryRedirect: a new bucket reached through an endpoint whose DNS has not caught up) are
        // redirects too, as botocore's `is_redirect_status` takes them.
        if code == "PermanentRedirect" || code == "TemporaryRedirect" || [301, 302, 307].contains(error.status)
            || (code == "AuthorizationHeaderMalformed" && error.region != nil)
            || (code == "IllegalLocationConstraintException")
            || isBodilessWrongRegion(error) {
            return .wrongRegion(error.region)
        }
        if notFoundCodes.contains(code) || (error.status == 404 && code.isEmpty) { return .terminal(.notFound) }
        if code == "AccessDenied" || (error.status == 403 && code.isEmpty) {
            return .terminal(accessDeniedClass(error.message))
        }
        if code == "InvalidRequest" {
            // "…doesn't supported unencrypted source objects…", "…doesn't support source objects with the encryption
            // type DSSE-KMS or SSE-C…": the object's current encryption, not our request, is the problem.
            return .terminal(ByteSearch.contains("source objects", in: error.message) ? .unsupportedEncryption : .invalidRequest)
        }
        if transientCodes.contains(code) || error.status >= 500 || error.status == 0 { return .retryable(.transient) }
        if error.status == 403 {
            // SignatureDoesNotMatch, InvalidAccessKeyId and the like: the caller's identity or setup is wrong.
            return .terminal(.accessDenied)
        }
        return .terminal(.invalidRequest)
    }

    static func accessDeniedClass(_ message: String) -> OutcomeClass {
        if ByteSearch.contains("Object Lock", in: message) { return .objectLock }
        // "The Amazon Web Services KMS key in the request must be owned by the same account as the bucket…",
        // "…KMS key must be from the same organization…", "…isn't part of an organization in Organizations…".
        if ByteSearch.contains("KMS key", in: message),
           ByteSearch.contains("same account", in: message) || ByteSearch.contains("organization", in: message) {
            return .kmsKeyDenied
        }
        return .accessDenied
    }

    /// A transport failure (no HTTP response): always retryable.
    public static func classifyTransportFailure() -> Classification { .retryable(.transient) }
}
