import Config
import Domain
import Foundation
import S3

/// Builds the S3 client from the configuration (PRODUCT.md §2 `[s3]`) and the standard credential chain.
enum S3Wiring {
    /// The signing region: as configured (flag, environment, file), else the profile's in the shared config file, as
    /// the AWS SDKs take it, else us-east-1. A bucket elsewhere is learnt from S3's answer, at one round trip.
    static func region(_ s3: S3Settings, environment: [String: String]) throws -> String {
        if !s3.region.isEmpty { return s3.region }
        guard let region = SharedConfig.region(profile: s3.profile, environment: environment) else { return "us-east-1" }
        // The same rule as the `region` key's.
        guard S3Settings.isRegionName(region) else {
            throw InvalidInput("\(SharedConfig.path(environment)): profile \(s3.profile): region '\(region)' is not an AWS region name")
        }
        return region
    }

    static func client(_ configuration: Configuration) throws -> S3Client {
        let s3 = configuration.s3
        let environment = ProcessInfo.processInfo.environment
        let style: S3Endpoint.PathStyle
        switch s3.pathStyle {
        case .auto: style = .auto
        case .always: style = .always
        case .never: style = .never
        }
        let endpoint = s3.endpoint.isEmpty ? S3Endpoint.aws(pathStyle: style) : try S3Endpoint(url: s3.endpoint, pathStyle: style)
        var transport = TransportConfiguration()
        transport.connectTimeout = s3.connectTimeoutSeconds
        transport.requestTimeout = s3.requestTimeoutSeconds
        transport.maxHostConnections = max(64, configuration.engine.concurrency)
        transport.caBundle = s3.caBundle.isEmpty ? nil : s3.caBundle
        let credentials = CredentialChain(environment: environment, profile: s3.profile)
        return try S3Client(configuration: S3ClientConfiguration(endpoint: endpoint, region: try region(s3, environment: environment),
                                                                 transport: transport),
                            credentials: credentials)
    }
}

/// `s3://bucket/key` as typed by a person.
struct S3URI: CustomStringConvertible {
    var bucket: String
    var key: String

    init(_ text: String, keyRequired: Bool = true) throws {
        guard text.hasPrefix("s3://") else { throw InvalidInput("'\(text)' is not an s3://bucket/key URI") }
        let rest = text.dropFirst(5)
        bucket = String(rest.prefix { $0 != "/" })
        key = String(rest.dropFirst(bucket.count + 1))
        if let problem = BucketName.problem(bucket) { throw InvalidInput("'\(text)': \(problem)") }
        if keyRequired && key.isEmpty { throw InvalidInput("'\(text)' names no object key") }
    }

    var description: String { "s3://\(bucket)/\(key)" }
}

/// Fetches `s3://` manifests to a private temporary folder so the local readers can stream them: a CSV as is; an
/// inventory `manifest.json` together with the data files it lists (from its `destinationBucket`), laid out by key.
enum RemoteManifests {
    static func fetch(_ uri: S3URI, client: S3Client, into folder: URL) async throws -> String {
        let local = try await download(bucket: uri.bucket, key: uri.key, client: client, into: folder)
        guard uri.key.hasSuffix(".json") else { return local }
        struct Inventory: Decodable {
            struct File: Decodable { let key: String }
            let destinationBucket: String?
            let files: [File]
        }
        guard let inventory = try? JSONDecoder().decode(Inventory.self, from: Data(contentsOf: URL(fileURLWithPath: local))) else {
            return local  // not an inventory manifest: the reader reports what is wrong with it
        }
        // destinationBucket is an ARN (arn:aws:s3:::bucket); the data files live there.
        let bucket = inventory.destinationBucket.map { String($0.split(separator: ":").last ?? "") } ?? uri.bucket
        // manifest.checksum beside it, when there is one, lets the reader verify manifest.json.
        let checksumKey = (uri.key as NSString).deletingLastPathComponent + "/manifest.checksum"
        _ = try? await download(bucket: uri.bucket, key: checksumKey, client: client, into: folder)
        for file in inventory.files {
            _ = try await download(bucket: bucket.isEmpty ? uri.bucket : bucket, key: file.key, client: client, into: folder)
        }
        return local
    }

    /// Local copies are named by their key under the folder (see `download`); this maps a local path back to its URI.
    static func uri(forLocal path: String, folder: URL, bucket: String) -> String? {
        let prefix = folder.path + "/"
        guard path.hasPrefix(prefix) else { return nil }
        return "s3://\(bucket)/" + path.dropFirst(prefix.count)
    }

    private static func download(bucket: String, key: String, client: S3Client, into folder: URL) async throws -> String {
        // Keys may hold '..' or leading slashes: keep every byte inside the folder by encoding the path segments.
        let safe = key.split(separator: "/", omittingEmptySubsequences: false)
            .map { $0 == ".." || $0 == "." || $0.isEmpty ? "%" + String($0.count) : String($0) }.joined(separator: "/")
        let path = folder.appendingPathComponent(safe).path
        try FileManager.default.createDirectory(atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw InvalidInput("cannot write \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        do {
            try await client.download(bucket: bucket, key: key, to: fd)
        } catch {
            throw InvalidInput("cannot read manifest s3://\(bucket)/\(key): \(error)")
        }
        return path
    }
}
