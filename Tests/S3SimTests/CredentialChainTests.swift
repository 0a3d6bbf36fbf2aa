import Foundation
@testable import S3
@testable import S3Sim
import XCTest

/// Each credential source against a local stand-in endpoint (`AWS_ENDPOINT_URL_STS`,
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`); nothing leaves loopback.
final class CredentialChainTests: XCTestCase {
    var dir: URL!
    var stubs: [StubServer] = []

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("creds-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDown() {
        stubs.forEach { $0.stop() }
        try? FileManager.default.removeItem(at: dir)
    }

    /// An environment that points every network source at nothing reachable, so only what a test sets can answer.
    func baseEnvironment() -> [String: String] {
        ["HOME": dir.path, "AWS_EC2_METADATA_DISABLED": "true",
         "AWS_SHARED_CREDENTIALS_FILE": dir.appendingPathComponent("credentials").path,
         "AWS_CONFIG_FILE": dir.appendingPathComponent("config").path]
    }

    func write(_ name: String, _ text: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    func stub(_ handler: @escaping StubServer.Handler) throws -> (StubServer, String) {
        let s = StubServer()
        stubs.append(s)
        return (s, try s.start(handler))
    }

    static let stsAnswer = """
        <AssumeRoleResponse><AssumeRoleResult><Credentials><AccessKeyId>ASIAROLE</AccessKeyId>\
        <SecretAccessKey>role-secret</SecretAccessKey><SessionToken>role-token</SessionToken>\
        <Expiration>2099-01-01T00:00:00Z</Expiration></Credentials></AssumeRoleResult></AssumeRoleResponse>
        """

    func testEnvironmentComesFirst() throws {
        var env = baseEnvironment()
        env["AWS_ACCESS_KEY_ID"] = "AKIAENV"
        env["AWS_SECRET_ACCESS_KEY"] = "env-secret"
        env["AWS_SESSION_TOKEN"] = "env-token"
        _ = try write("credentials", "[default]\naws_access_key_id = AKIAFILE\naws_secret_access_key = file-secret\n")
        let chain = CredentialChain(environment: env)
        let c = try chain.credentials()
        XCTAssertEqual(c.accessKeyID, "AKIAENV")
        XCTAssertEqual(c.sessionToken, "env-token")
        XCTAssertEqual(chain.sourceName, "environment")
    }

    func testProfilesFromCredentialsAndConfigFiles() throws {
        _ = try write("credentials", "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\n# comment\n[ops]\naws_access_key_id=AKIAOPS\naws_secret_access_key=s2\n")
        _ = try write("config", "[profile cfg]\naws_access_key_id = AKIACFG\naws_secret_access_key = s3\nregion = eu-west-1\n")
        XCTAssertEqual(try CredentialChain(environment: baseEnvironment()).credentials().accessKeyID, "AKIADEFAULT")
        var env = baseEnvironment()
        env["AWS_PROFILE"] = "ops"
        XCTAssertEqual(try CredentialChain(environment: env).credentials().accessKeyID, "AKIAOPS")
        XCTAssertEqual(try CredentialChain(environment: baseEnvironment(), profile: "cfg").credentials().accessKeyID, "AKIACFG")
        XCTAssertThrowsError(try CredentialChain(environment: baseEnvironment(), profile: "nope").credentials()) { error in
            XCTAssertTrue("\(error)".contains("profile 'nope'"), "\(error)")
        }
    }

    /// A profile that gets credentials through a process or IAM Identity Center stops the chain with a way forward;
    /// it never falls through to the next source (here an instance metadata stand-in, which must not be asked).
    func testProfilesUsingAnotherWayAreRefusedNotSkipped() throws {
        let (imds, url) = try stub { _ in (200, [], "") }
        _ = try write("config", "[profile proc]\ncredential_process = /usr/bin/get-creds\n\n[profile sso]\nsso_session = corp\nsso_account_id = 111122223333\n")
        for (profile, way) in [("proc", "credential_process"), ("sso", "IAM Identity Center")] {
            var env = baseEnvironment()
            env["AWS_EC2_METADATA_DISABLED"] = nil
            env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = url
            XCTAssertThrowsError(try CredentialChain(environment: env, profile: profile).credentials()) { error in
                XCTAssertTrue("\(error)".contains(way), "\(error)")
                XCTAssertTrue("\(error)".contains("export-credentials --profile \(profile)"), "\(error)")
            }
        }
        XCTAssertEqual(imds.requests.count, 0, "the chain stopped at the profile")
    }

    func testRoleARNWithSourceProfileAssumesTheRoleThroughSTS() throws {
        let (server, url) = try stub { _ in (200, [("Content-Type", "text/xml")], Self.stsAnswer) }
        _ = try write("credentials", "[base]\naws_access_key_id = AKIABASE\naws_secret_access_key = base-secret\n")
        _ = try write("config", "[profile deploy]\nrole_arn = arn:aws:iam::111122223333:role/reencrypt\nsource_profile = base\nregion = eu-west-1\n")
        var env = baseEnvironment()
        env["AWS_ENDPOINT_URL_STS"] = url
        let c = try CredentialChain(environment: env, profile: "deploy").credentials()
        XCTAssertEqual(c.accessKeyID, "ASIAROLE")
        XCTAssertEqual(c.sessionToken, "role-token")
        XCTAssertNotNil(c.expiration)
        let request = try XCTUnwrap(server.requests.first)
        let form = String(decoding: request.body, as: UTF8.self)
        XCTAssertTrue(form.contains("Action=AssumeRole&"), form)
        XCTAssertTrue(form.contains("RoleArn=arn%3Aaws%3Aiam%3A%3A111122223333%3Arole%2Freencrypt"), form)
        let auth = try XCTUnwrap(request.header("authorization"))
        XCTAssertTrue(auth.contains("Credential=AKIABASE/"), "signed with the source profile's keys: \(auth)")
        XCTAssertTrue(auth.contains("/eu-west-1/sts/aws4_request"), auth)
    }

    func testWebIdentityCallsAssumeRoleWithWebIdentityUnsigned() throws {
        let (server, url) = try stub { _ in (200, [], Self.stsAnswer) }
        var env = baseEnvironment()
        env["AWS_ENDPOINT_URL_STS"] = url
        env["AWS_WEB_IDENTITY_TOKEN_FILE"] = try write("token", "eyJ.web.identity\n")
        env["AWS_ROLE_ARN"] = "arn:aws:iam::111122223333:role/irsa"
        env["AWS_ROLE_SESSION_NAME"] = "pod-1"
        let chain = CredentialChain(environment: env)
        XCTAssertEqual(try chain.credentials().accessKeyID, "ASIAROLE")
        XCTAssertEqual(chain.sourceName, "web identity")
        let request = try XCTUnwrap(server.requests.first)
        let form = String(decoding: request.body, as: UTF8.self)
        XCTAssertTrue(form.contains("Action=AssumeRoleWithWebIdentity"), form)
        XCTAssertTrue(form.contains("WebIdentityToken=eyJ.web.identity&") || form.hasSuffix("WebIdentityToken=eyJ.web.identity"), form)
        XCTAssertTrue(form.contains("RoleSessionName=pod-1"), form)
        XCTAssertNil(request.header("authorization"))
    }

    func testContainerEndpointWithAuthorizationTokenFile() throws {
        let body = #"{"AccessKeyId":"ASIACONT","SecretAccessKey":"c-secret","Token":"c-token","Expiration":"2099-01-01T00:00:00Z"}"#
        let (server, url) = try stub { r in r.header("authorization") == "token-from-file" ? (200, [], body) : (401, [], "") }
        var env = baseEnvironment()
        env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] = url + "/v2/credentials/abc"
        env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] = try write("ctoken", "token-from-file\n")
        let c = try CredentialChain(environment: env).credentials()
        XCTAssertEqual(c.accessKeyID, "ASIACONT")
        XCTAssertEqual(c.sessionToken, "c-token")
        XCTAssertEqual(server.requests.first?.uri, "/v2/credentials/abc")
    }

    /// The token goes over https, or over http only to loopback or the ECS/EKS endpoints (checked before any request,
    /// so the refused ones here are never contacted).
    func testContainerFullURIMustBeHTTPSOrLocal() throws {
        for allowed in ["https://creds.example.com/v1", "http://127.0.0.1:8080/creds", "http://127.9.8.7/c", "http://[::1]:9/c",
                        "http://localhost:1234/c", "http://169.254.170.2/v2/credentials/x", "http://169.254.170.23/v1/credentials",
                        "http://[fd00:ec2::23]/v1/credentials"] {
            XCTAssertNoThrow(try ContainerCredentials.checkFullURI(allowed), allowed)
        }
        for refused in ["http://192.0.2.10/creds", "http://creds.example.com/v1", "http://169.254.169.254/latest",
                        "http://127.0.0.1.example.com/c", "http://[::2]/c", "ftp://127.0.0.1/c", "not a url"] {
            XCTAssertThrowsError(try ContainerCredentials.checkFullURI(refused), refused) { error in
                XCTAssertTrue("\(error)".contains("AWS_CONTAINER_CREDENTIALS_FULL_URI"), "\(error)")
            }
        }
    }

    func testInstanceMetadataUsesIMDSv2SessionTokens() throws {
        let creds = #"{"Code":"Success","AccessKeyId":"ASIAIMDS","SecretAccessKey":"i-secret","Token":"i-token","Expiration":"2099-01-01T00:00:00Z"}"#
        let (server, url) = try stub { r in
            switch (r.method, r.uri) {
            case ("PUT", "/latest/api/token"):
                return r.header("x-aws-ec2-metadata-token-ttl-seconds") != nil ? (200, [], "imds-session") : (400, [], "")
            case (_, _) where r.header("x-aws-ec2-metadata-token") != "imds-session": return (401, [], "")
            case ("GET", "/latest/meta-data/iam/security-credentials/"): return (200, [], "reencrypt-role")
            case ("GET", "/latest/meta-data/iam/security-credentials/reencrypt-role"): return (200, [], creds)
            default: return (404, [], "")
            }
        }
        var env = baseEnvironment()
        env["AWS_EC2_METADATA_DISABLED"] = nil
        env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = url
        let chain = CredentialChain(environment: env)
        XCTAssertEqual(try chain.credentials().accessKeyID, "ASIAIMDS")
        XCTAssertEqual(chain.sourceName, "EC2 instance metadata")
        XCTAssertEqual(server.requests.map(\.method), ["PUT", "GET", "GET"])
    }

    func testNothingConfiguredIsAClearError() {
        XCTAssertThrowsError(try CredentialChain(environment: baseEnvironment()).credentials()) { error in
            XCTAssertTrue("\(error)".contains("no credentials found"), "\(error)")
        }
    }

    /// A source that counts fetches and hands out credentials expiring 20 minutes after the (injected) clock.
    final class CountingSource: CredentialSource, @unchecked Sendable {
        let lock = NSLock()
        var fetches = 0
        let clock: @Sendable () -> Date
        init(clock: @escaping @Sendable () -> Date) { self.clock = clock }
        var name: String { "counting" }
        func fetch() throws -> AWSCredentials? {
            let n = lock.withLock { fetches += 1; return fetches }
            return AWSCredentials(accessKeyID: "ASIA\(n)", secretAccessKey: "s", sessionToken: "t",
                                  expiration: clock().addingTimeInterval(20 * 60))
        }
        var count: Int { lock.withLock { fetches } }
    }

    final class Clock: @unchecked Sendable {
        let lock = NSLock()
        var now = Date(timeIntervalSince1970: 1_800_000_000)
        func advance(_ s: TimeInterval) { lock.withLock { now += s } }
        func read() -> Date { lock.withLock { now } }
    }

    func testTemporaryCredentialsRefreshAheadOfExpiryWithoutStallingCallers() throws {
        let clock = Clock()
        let source = CountingSource(clock: clock.read)
        let chain = CredentialChain(sources: [source], clock: clock.read)
        XCTAssertEqual(try chain.credentials().accessKeyID, "ASIA1")
        clock.advance(60)  // 19 min left: cached
        XCTAssertEqual(try chain.credentials().accessKeyID, "ASIA1")
        XCTAssertEqual(source.count, 1)
        clock.advance(6 * 60)  // 13 min left: advisory window, current ones returned while a refresh runs behind
        XCTAssertEqual(try chain.credentials().accessKeyID, "ASIA1")
        let deadline = Date().addingTimeInterval(10)
        while source.count < 2 && Date() < deadline { Thread.sleep(forTimeInterval: 0.01) }
        XCTAssertEqual(source.count, 2, "a background refresh ran")
        let refreshed = try chain.credentials().accessKeyID
        XCTAssertEqual(refreshed, "ASIA2")
        clock.advance(11 * 60)  // 9 min left of ASIA2's 20: mandatory window, refreshed before returning
        XCTAssertEqual(try chain.credentials().accessKeyID, "ASIA3")
        chain.invalidate()
        XCTAssertEqual(try chain.credentials().accessKeyID, "ASIA4")
    }
}
