import Domain

/// S3's answer when it is not a success: the status, S3's code, message and request ids, and the call it answers.
/// Modelled on async-http-client's `HTTPClientError`: what a person needs to act, and never a secret.
/// https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html
public struct S3Error: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int
    /// S3's error code (`AccessDenied`, `SlowDown`, …); empty when there was no body (HEAD) or no response at all.
    public var code: String
    public var message: String
    public var requestID: String?
    public var hostID: String?
    /// The bucket's region, when S3 said it (`<Region>` or `x-amz-bucket-region`).
    public var region: String?
    /// `x-amz-retry-after` in milliseconds, when sent.
    public var retryAfterMilliseconds: Int?
    public var operation: String
    public var object: ObjectRef?

    public init(status: Int, code: String, message: String, requestID: String? = nil, hostID: String? = nil,
                region: String? = nil, retryAfterMilliseconds: Int? = nil, operation: String, object: ObjectRef? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.requestID = requestID
        self.hostID = hostID
        self.region = region
        self.retryAfterMilliseconds = retryAfterMilliseconds
        self.operation = operation
        self.object = object
    }

    /// Parses an error response. `body` may be empty (HEAD responses carry none).
    public init(status: Int, headers: [(name: String, value: String)], body: [UInt8], operation: String, object: ObjectRef?) {
        func header(_ name: String) -> String? { headers.first { ASCII.equalsLowercased($0.name, name) }?.value }
        self.init(status: status, body: body, header: header, operation: operation, object: object)
    }

    /// Parses an error response whose headers are read through `header` (lowercase names).
    init(status: Int, body: [UInt8], header: (String) -> String?, operation: String, object: ObjectRef?) {
        let code = XMLScan.first(Fields.code, in: body) ?? ""
        self.init(status: status, code: code.isEmpty ? Self.defaultCode(status) : code,
                  message: XMLScan.first(Fields.message, in: body) ?? "",
                  requestID: XMLScan.first(Fields.requestID, in: body) ?? header("x-amz-request-id"),
                  hostID: XMLScan.first(Fields.hostID, in: body) ?? header("x-amz-id-2"),
                  region: XMLScan.first(Fields.region, in: body) ?? header("x-amz-bucket-region"),
                  retryAfterMilliseconds: header("x-amz-retry-after").flatMap { Int($0) },
                  operation: operation, object: object)
    }

    /// The error document's elements, their tags made once rather than for every failed call.
    private enum Fields {
        static let code = XMLElementTag("Code"), message = XMLElementTag("Message"), requestID = XMLElementTag("RequestId")
        static let hostID = XMLElementTag("HostId"), region = XMLElementTag("Region")
    }

    /// What HEAD responses (no body) mean by their status.
    static func defaultCode(_ status: Int) -> String {
        switch status {
        case 301: return "PermanentRedirect"
        case 400: return "BadRequest"
        case 403: return "AccessDenied"
        case 404: return "NotFound"
        case 429: return "TooManyRequests"
        case 500: return "InternalError"
        case 503: return "ServiceUnavailable"
        default: return ""
        }
    }

    /// Whether a 200 response body is really an error document (S3 can send one on a 200; the SDKs retry it).
    public static func isErrorDocument(_ body: [UInt8]) -> Bool {
        guard body.count >= 7 else { return false }
        return ByteSearch.find(errorOpenTag, in: body.count <= 256 ? body : Array(body.prefix(256))) != nil
    }
    private static let errorOpenTag = Array("<Error>".utf8)

    public var description: String {
        var text = "\(operation)"
        if let object { text += " \(object)" }
        // "HTTP 404 NoSuchKey: message"; a failure with no answer has neither status nor code: "…: connection failed: …".
        var detail = [status > 0 ? "HTTP \(status)" : "", code].filter { !$0.isEmpty }.joined(separator: " ")
        if !message.isEmpty { detail += (detail.isEmpty ? "" : ": ") + message }
        text += ": " + detail
        if let requestID { text += " (request id \(requestID)" + (hostID.map { ", host id \($0)" } ?? "") + ")" }
        return text
    }
}
