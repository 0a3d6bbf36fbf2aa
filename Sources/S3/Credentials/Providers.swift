import Foundation

/// A source in the chain. Returns nil when it is not configured (the chain moves on); throws when it is configured
/// but fails (the chain stops, as the SDKs do, so a broken role is not silently replaced by another identity).
protocol CredentialSource: Sendable {
    var name: String { get }
    func fetch() throws -> AWSCredentials?
}

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`.
struct EnvironmentCredentials: CredentialSource {
    let environment: [String: String]
    var name: String { "environment" }

    func fetch() throws -> AWSCredentials? {
        guard let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty else { return nil }
        guard let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else {
            throw S3ClientError.credentials("AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not")
        }
        let token = environment["AWS_SESSION_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: token)
    }
}

/// The shared files: `~/.aws/credentials` and `~/.aws/config` (or `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`),
/// static keys per profile, and `role_arn` with `source_profile` through STS AssumeRole.
/// https://docs.aws.amazon.com/sdkref/latest/guide/file-format.html
struct SharedFileCredentials: CredentialSource {
    let environment: [String: String]
    let profile: String
    let sts: STSClient
    var name: String { "shared config files (profile \(profile))" }

    var credentialsPath: String { environment["AWS_SHARED_CREDENTIALS_FILE"] ?? "\(SharedConfig.home(environment))/.aws/credentials" }
    var configPath: String { SharedConfig.path(environment) }

    func fetch() throws -> AWSCredentials? {
        let credentials = (try? String(contentsOfFile: credentialsPath, encoding: .utf8)).map { INI.parse($0) } ?? [:]
        let config = (try? String(contentsOfFile: configPath, encoding: .utf8)).map { INI.parse($0) } ?? [:]
        return try resolve(profile, credentials: credentials, config: config, depth: 0)
    }

    private func settings(_ profile: String, _ credentials: [String: [String: String]], _ config: [String: [String: String]]) -> [String: String]? {
        // Credentials file wins per key.
        let fromConfig = SharedConfig.section(profile, in: config)
        let fromCredentials = credentials[profile]
        if fromConfig == nil && fromCredentials == nil { return nil }
        return (fromConfig ?? [:]).merging(fromCredentials ?? [:]) { _, new in new }
    }

    private func resolve(_ profile: String, credentials: [String: [String: String]], config: [String: [String: String]],
                         depth: Int) throws -> AWSCredentials? {
        guard depth < 5 else { throw S3ClientError.credentials("profile \(profile): source_profile chain is too long or circular") }
        guard let s = settings(profile, credentials, config) else {
            if depth == 0 && profile == "default" { return nil }
            throw S3ClientError.credentials("profile '\(profile)' is not in \(credentialsPath) or \(configPath)")
        }
        if let roleARN = s["role_arn"] {
            guard let source = s["source_profile"] else {
                throw S3ClientError.credentials("profile \(profile): role_arn needs source_profile (credential_source is not supported)")
            }
            guard let base = try resolve(source, credentials: credentials, config: config, depth: depth + 1) else {
                throw S3ClientError.credentials("profile \(profile): source_profile '\(source)' has no credentials")
            }
            let session = s["role_session_name"] ?? "reencryptd-\(Int(Date().timeIntervalSince1970))"
            return try sts.assumeRole(roleARN: roleARN, sessionName: session, externalID: s["external_id"],
                                      credentials: base, region: s["region"] ?? environment["AWS_REGION"] ?? "us-east-1")
        }
        guard let id = s["aws_access_key_id"], let secret = s["aws_secret_access_key"] else {
            // A profile that gets its credentials another way (IAM Identity Center, an external process) names an
            // identity this chain cannot take on. Moving on would run as whatever comes next, an instance role, say:
            // say so instead.
            if let way = Self.otherWay(s) {
                throw S3ClientError.credentials("profile \(profile) gets its credentials through \(way), which reencryptd does "
                    + "not read; give them through the environment instead, e.g. eval \"$(aws configure export-credentials "
                    + "--profile \(profile) --format env)\"")
            }
            return nil
        }
        return AWSCredentials(accessKeyID: id, secretAccessKey: secret, sessionToken: s["aws_session_token"])
    }
}

/// The shared config file (`~/.aws/config`, or `AWS_CONFIG_FILE`) as the AWS SDKs read it.
/// https://docs.aws.amazon.com/sdkref/latest/guide/file-format.html
public enum SharedConfig {
    static func home(_ environment: [String: String]) -> String { environment["HOME"] ?? NSHomeDirectory() }
    public static func path(_ environment: [String: String]) -> String { environment["AWS_CONFIG_FILE"] ?? "\(home(environment))/.aws/config" }

    /// A profile's settings: `[default]`, or `[profile NAME]` for the others (a bare `[NAME]` is accepted too).
    static func section(_ profile: String, in config: [String: [String: String]]) -> [String: String]? {
        config[profile == "default" ? "default" : "profile \(profile)"] ?? config[profile]
    }

    /// The profile's `region`, if the file names one.
    public static func region(profile: String, environment: [String: String]) -> String? {
        guard let text = try? String(contentsOfFile: path(environment), encoding: .utf8),
              let region = section(profile, in: INI.parse(text))?["region"], !region.isEmpty else { return nil }
        return region
    }
}

extension SharedFileCredentials {
    /// How a profile without keys says it gets credentials, when it is a way this chain does not follow.
    /// https://docs.aws.amazon.com/sdkref/latest/guide/feature-process-credentials.html ;
    /// https://docs.aws.amazon.com/sdkref/latest/guide/feature-sso-credentials.html
    static func otherWay(_ settings: [String: String]) -> String? {
        if settings["credential_process"] != nil { return "credential_process" }
        if settings["sso_session"] != nil || settings["sso_account_id"] != nil || settings["sso_start_url"] != nil {
            return "IAM Identity Center (sso_*)"
        }
        return nil
    }
}

/// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (+ `AWS_ROLE_SESSION_NAME`): STS AssumeRoleWithWebIdentity (EKS IRSA).
struct WebIdentityCredentials: CredentialSource {
    let environment: [String: String]
    let sts: STSClient
    var name: String { "web identity" }

    func fetch() throws -> AWSCredentials? {
        guard let tokenFile = environment["AWS_WEB_IDENTITY_TOKEN_FILE"], !tokenFile.isEmpty,
              let role = environment["AWS_ROLE_ARN"], !role.isEmpty else { return nil }
        guard let token = try? String(contentsOfFile: tokenFile, encoding: .utf8) else {
            throw S3ClientError.credentials("cannot read AWS_WEB_IDENTITY_TOKEN_FILE \(tokenFile)")
        }
        let session = environment["AWS_ROLE_SESSION_NAME"] ?? "reencryptd-\(Int(Date().timeIntervalSince1970))"
        return try sts.assumeRoleWithWebIdentity(roleARN: role, sessionName: session,
                                                 token: token.trimmingCharacters(in: .whitespacesAndNewlines),
                                                 region: environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? "us-east-1")
    }
}

/// The ECS/EKS container endpoint: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` on 169.254.170.2, or
/// `AWS_CONTAINER_CREDENTIALS_FULL_URI`, with `AWS_CONTAINER_AUTHORIZATION_TOKEN(_FILE)`.
/// https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html
struct ContainerCredentials: CredentialSource {
    let environment: [String: String]
    let http: BlockingHTTP
    var name: String { "container endpoint" }

    func fetch() throws -> AWSCredentials? {
        let url: String
        if let relative = environment["AWS_CONTAINER_CREDENTIALS_RELATIVE_URI"], !relative.isEmpty {
            url = "http://169.254.170.2" + relative
        } else if let full = environment["AWS_CONTAINER_CREDENTIALS_FULL_URI"], !full.isEmpty {
            try Self.checkFullURI(full)
            url = full
        } else {
            return nil
        }
        var headers: [(name: String, value: String)] = []
        if let file = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"], !file.isEmpty {
            guard let token = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw S3ClientError.credentials("cannot read AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE \(file)")
            }
            headers.append(("Authorization", token.trimmingCharacters(in: .whitespacesAndNewlines)))
        } else if let token = environment["AWS_CONTAINER_AUTHORIZATION_TOKEN"], !token.isEmpty {
            headers.append(("Authorization", token))
        }
        let response = try http.send(method: "GET", url: url, headers: headers, what: "container credentials endpoint")
        return try JSONCredentials.parse(response.body, source: "container credentials endpoint")
    }
}

extension ContainerCredentials {
    /// Hosts plain http may reach besides loopback: the ECS and EKS Pod Identity endpoints.
    static let plainHTTPHosts: Set<String> = ["169.254.170.2", "169.254.170.23", "fd00:ec2::23", "localhost"]

    /// The SDKs send the authorization token only over https, or over http to loopback or the ECS/EKS endpoints: a
    /// full URI naming any other host over http would hand the token (and the credentials back) to the network.
    /// https://docs.aws.amazon.com/sdkref/latest/guide/feature-container-credentials.html ; botocore utils.py
    /// ContainerMetadataFetcher._validate_allowed_url
    static func checkFullURI(_ uri: String) throws {
        guard let parts = URLComponents(string: uri), let scheme = parts.scheme?.lowercased(), var host = parts.host,
              !host.isEmpty else {
            throw S3ClientError.credentials("AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL: \(uri)")
        }
        if scheme == "https" { return }
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard scheme == "http", plainHTTPHosts.contains(host.lowercased()) || isLoopback(host) else {
            throw S3ClientError.credentials("AWS_CONTAINER_CREDENTIALS_FULL_URI \(uri) must be https, or http to a loopback "
                + "address or one of \(plainHTTPHosts.sorted().joined(separator: ", ")), as the AWS SDKs require")
        }
    }

    /// 127.0.0.0/8 or ::1, as parsed addresses (a name is not resolved here).
    static func isLoopback(_ host: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, host, &v6) == 1 else { return false }
        return withUnsafeBytes(of: &v6) { $0.prefix(15).allSatisfy { $0 == 0 } && $0[15] == 1 }
    }
}

/// EC2 instance metadata, IMDSv2 only: a session token by PUT, then the role's credentials.
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT` overrides the address; `AWS_EC2_METADATA_DISABLED=true` turns it off.
/// https://docs.aws.amazon.com/sdkref/latest/guide/feature-imds-credentials.html
struct InstanceMetadataCredentials: CredentialSource {
    let environment: [String: String]
    let http: BlockingHTTP
    var name: String { "EC2 instance metadata" }

    func fetch() throws -> AWSCredentials? {
        if environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true" { return nil }
        var base = environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"] ?? "http://169.254.169.254"
        while base.hasSuffix("/") { base.removeLast() }
        let token: HTTPResponse
        do {
            token = try http.send(method: "PUT", url: base + "/latest/api/token",
                                  headers: [("x-aws-ec2-metadata-token-ttl-seconds", "21600")], what: "instance metadata")
        } catch {
            return nil  // not on EC2 (or IMDS unreachable): the chain has nothing more to try
        }
        let auth: [(name: String, value: String)] = [("x-aws-ec2-metadata-token", String(decoding: token.body, as: UTF8.self))]
        let roles = try http.send(method: "GET", url: base + "/latest/meta-data/iam/security-credentials/", headers: auth,
                                  what: "instance metadata")
        guard let role = String(decoding: roles.body, as: UTF8.self).split(separator: "\n").first.map(String.init), !role.isEmpty else {
            throw S3ClientError.credentials("the instance has no IAM role attached")
        }
        let creds = try http.send(method: "GET", url: base + "/latest/meta-data/iam/security-credentials/" + role, headers: auth,
                                  what: "instance metadata")
        return try JSONCredentials.parse(creds.body, source: "instance metadata role \(role)")
    }
}

enum JSONCredentials {
    /// `{"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}` as the container endpoint and IMDS return them.
    static func parse(_ body: [UInt8], source: String) throws -> AWSCredentials {
        struct Payload: Decodable {
            let AccessKeyId: String
            let SecretAccessKey: String
            let Token: String?
            let Expiration: String?
        }
        guard let p = try? JSONDecoder().decode(Payload.self, from: Data(body)) else {
            throw S3ClientError.credentials("\(source) returned no credentials")
        }
        return AWSCredentials(accessKeyID: p.AccessKeyId, secretAccessKey: p.SecretAccessKey, sessionToken: p.Token,
                              expiration: p.Expiration.flatMap(ISO8601.parse))
    }
}

enum ISO8601 {
    static func parse(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s)
    }
}

/// Minimal INI reader for the shared config files: `[section]`, `key = value`, `#`/`;` comments.
enum INI {
    static func parse(_ text: String) -> [String: [String: String]] {
        var result: [String: [String: String]] = [:]
        var section: String?
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                section = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                if let section, result[section] == nil { result[section] = [:] }
                continue
            }
            guard let section, let eq = line.firstIndex(of: "=") else { continue }
            let key = line[..<eq].trimmingCharacters(in: .whitespaces)
            let value = line[line.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            result[section]?[key] = value
        }
        return result
    }
}
