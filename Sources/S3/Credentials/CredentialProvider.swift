import Foundation

/// Supplies credentials for signing. `credentials()` is called per request and must be cheap (cached);
/// temporary credentials are refreshed ahead of expiry without stalling callers.
public protocol CredentialProvider: Sendable {
    func credentials() throws -> AWSCredentials
    /// Drops cached credentials (after S3 said ExpiredToken), so the next call fetches anew.
    func invalidate()
}

/// Fixed credentials (tests, the demo).
public struct StaticCredentialProvider: CredentialProvider {
    let value: AWSCredentials
    public init(_ value: AWSCredentials) { self.value = value }
    public func credentials() throws -> AWSCredentials { value }
    public func invalidate() {}
}
