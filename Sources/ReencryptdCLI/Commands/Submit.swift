import ArgumentParser
import Domain
import Foundation
import JobStore
import Manifest

extension ManifestFormat: ExpressibleByArgument {}

struct Submit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a job (or add manifests to an unfinished one) and load the manifests' tasks atomically.",
        discussion: """
            MANIFEST is a local path, - for stdin, or s3://bucket/key. Batch Operations CSV rows are
            bucket,key[,versionId] with URL-encoded keys; an S3 Inventory report is given by its manifest.json.
            A malformed row fails the whole submit (nothing is stored) unless --skip-invalid is given.
            """)

    @OptionGroup var global: GlobalOptions

    @Option(help: "The job's name (letters, digits, '-', '_', '.').")
    var job: String

    @Option(name: .customLong("kms-key-arn"), help: "Target KMS key, as a full key ARN.")
    var kmsKeyARN: String

    @Flag(name: .customLong("bucket-key"), help: "Enable S3 Bucket Keys on the re-encrypted objects.")
    var bucketKey = false

    @Option(name: .customLong("expected-bucket-owner"), help: "12-digit account that must own every bucket.")
    var expectedBucketOwner: String?

    @Option(help: "Job priority; higher runs first.")
    var priority: Int = 0

    @Option(help: "Manifest format: auto, csv or inventory.")
    var format: ManifestFormat = .auto

    @Flag(name: .customLong("skip-invalid"), help: "Leave malformed rows out (counted) instead of failing.")
    var skipInvalid = false

    @Argument(help: "Manifests: paths, - for stdin, or s3://bucket/key.")
    var manifests: [String]

    func validate() throws {
        if manifests.isEmpty { throw ValidationError("give at least one MANIFEST") }
        if manifests.filter({ $0 == "-" }).count > 1 { throw ValidationError("stdin (-) can be given only once") }
    }

    func run() async throws {
        if let problem = JobSpec.validateName(job) { throw Domain.InvalidInput(problem) }
        // Checked before anything is read or stored.
        let spec = JobSpec(name: job, kmsKeyARN: try KMSKeyARN(kmsKeyARN), bucketKeyEnabled: bucketKey,
                           expectedBucketOwner: try expectedBucketOwner.map { try AccountID($0) }, priority: priority)
        let configuration = try global.loadConfiguration()
        let store = try global.openStore(configuration, create: true)
        // s3:// manifests are fetched first (streamed to a private folder), then read like local ones.
        var paths = manifests
        var scratch: URL?
        defer { if let scratch { try? FileManager.default.removeItem(at: scratch) } }
        if manifests.contains(where: { $0.hasPrefix("s3://") }) {
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("reencryptd-manifests-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
            scratch = folder
            let client = try S3Wiring.client(configuration)
            defer { client.shutdown() }
            for (i, m) in manifests.enumerated() where m.hasPrefix("s3://") {
                paths[i] = try await RemoteManifests.fetch(try S3URI(m), client: client, into: folder.appendingPathComponent("\(i)"))
            }
        }
        let loader = ManifestLoader(options: .init(format: format, skipInvalid: skipInvalid))
        let result: SubmitResult
        do {
            result = try store.submit(spec, now: now()) { sink in
                for manifest in paths {
                    try loader.load(path: manifest) { entry in
                        _ = try sink.add(entry.object, skippedAs: entry.skippedAs)
                    }
                }
            }
        } catch let error as ManifestError {
            throw remoteNamed(error, scratch: scratch)
        }
        for rejection in loader.rejections.map({ remoteNamed($0, scratch: scratch) }) {
            FileHandle.standardError.write(Data("reencryptd: skipped invalid row: \(rejection)\n".utf8))
        }
        if loader.rejectedCount > loader.rejections.count {
            FileHandle.standardError.write(Data("reencryptd: … and \(loader.rejectedCount - loader.rejections.count) more invalid rows\n".utf8))
        }
        var line = "job \(spec.name)\(result.createdJob ? " created" : ""): \(result.added) tasks added"
        if result.skipped > 0 { line += " (\(result.skipped) of them skipped by inventory columns)" }
        line += ", \(result.duplicates) duplicates ignored, \(loader.rejectedCount) rows rejected"
        if loader.deleteMarkers > 0 { line += ", \(loader.deleteMarkers) delete markers dropped" }
        print(line)
    }

    /// Errors about a fetched s3:// manifest name the URI, not the private local copy.
    private func remoteNamed(_ error: ManifestError, scratch: URL?) -> ManifestError {
        guard let scratch else { return error }
        for (i, m) in manifests.enumerated() where m.hasPrefix("s3://") {
            guard let uri = try? S3URI(m) else { continue }
            let folder = scratch.appendingPathComponent("\(i)")
            if let name = RemoteManifests.uri(forLocal: error.file, folder: folder, bucket: uri.bucket) {
                return ManifestError(file: name, line: error.line, problem: error.problem)
            }
        }
        return error
    }
}
