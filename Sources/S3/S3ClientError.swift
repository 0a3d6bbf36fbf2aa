/// Errors of the S3 client that are not S3's answers (those are `S3Error`).
public enum S3ClientError: Error, Sendable, CustomStringConvertible {
    case configuration(String)
    case credentials(String)
    case transport(String)

    public var description: String {
        switch self {
        case .configuration(let s): return "S3 configuration: \(s)"
        case .credentials(let s): return "AWS credentials: \(s)"
        case .transport(let s): return s
        }
    }
}
