import Config
import Domain
import Foundation
import JobStore
@testable import ReencryptdCLI
import S3
import S3Sim
import XCTest

/// `inspect`, `update`, `submit s3://…` and `report --output s3://…` end to end against the simulator on a random
/// loopback port.
final class ObjectCommandTests: XCTestCase {
    var simulator: S3Simulator!
    var dir: URL!
    let arn = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"

    override func setUpWithError() throws {
        simulator = S3Simulator()
        try simulator.start()
        simulator.state.addBucket(SimBucket(name: "bucket-a"))
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("objcmd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        setenv("REENCRYPTD_CONFIG", "/dev/null", 1)
        setenv("REENCRYPTD_S3_ENDPOINT", simulator.endpointURL, 1)
        setenv("REENCRYPTD_S3_REGION", "us-east-1", 1)  // the simulator's, whatever AWS_REGION or ~/.aws/config say here
        setenv("AWS_ACCESS_KEY_ID", SimCredential.default.accessKeyID, 1)
        setenv("AWS_SECRET_ACCESS_KEY", SimCredential.default.secretAccessKey, 1)
        setenv("AWS_EC2_METADATA_DISABLED", "true", 1)
    }

    override func tearDown() {
        unsetenv("REENCRYPTD_S3_ENDPOINT")
        unsetenv("REENCRYPTD_S3_REGION")
        simulator.stop()
        try? FileManager.default.removeItem(at: dir)
    }

    func reencryptd(_ args: String...) async -> Int32 { await Reencryptd.main(arguments: args) }

    /// A client as the commands build one, from this test's environment (the simulator's endpoint and credentials).
    func simulatorClient() throws -> S3Client { try S3Wiring.client(try GlobalOptions.parse([]).loadConfiguration()) }

    /// A generated population in the simulator, and its Batch Operations CSV manifest in `dir`.
    func populate(objects: Int, bucketPrefix: String) throws -> (Population, csv: String) {
        var spec = PopulationSpec()
        spec.objects = objects
        spec.bucketPrefix = bucketPrefix
        var population = Population(spec: spec)
        population.generate(into: simulator.state)
        let csv = dir.appendingPathComponent("m.csv").path
        try population.writeBatchCSV(to: csv)
        return (population, csv)
    }

    func testUpdateChangesTheObjectAndExitsZeroOnlyOnSuccess() async throws {
        let v = simulator.state.putObject(bucket: "bucket-a", key: "a b.txt", encryption: .sseS3)
        simulator.state.putObject(bucket: "bucket-a", key: "held", encryption: .sseS3, lock: SimLock(legalHold: true))
        var rc = await reencryptd("update", "s3://bucket-a/a b.txt", "--version-id", v, "--kms-key-arn", arn, "--bucket-key")
        XCTAssertEqual(rc, 0)
        XCTAssertEqual(simulator.state.version(bucket: "bucket-a", key: "a b.txt")?.encryption, .sseKMS(keyARN: arn, bucketKey: true))
        rc = await reencryptd("update", "s3://bucket-a/held", "--kms-key-arn", arn)
        XCTAssertEqual(rc, 1)
        XCTAssertEqual(simulator.state.version(bucket: "bucket-a", key: "held")?.encryption, .sseS3)
        rc = await reencryptd("update", "s3://bucket-a/x", "--kms-key-arn", "not-an-arn")
        XCTAssertEqual(rc, 2)
        rc = await reencryptd("update", "s3://Bad_Bucket/x", "--kms-key-arn", arn)
        XCTAssertEqual(rc, 2)
    }

    func testInspectReadsHeadObject() async throws {
        simulator.state.putObject(bucket: "bucket-a", key: "k", encryption: .sseKMS(keyARN: arn, bucketKey: true),
                                  lock: SimLock(mode: .governance, retainUntil: Date().addingTimeInterval(3600)))
        var rc = await reencryptd("inspect", "s3://bucket-a/k")
        XCTAssertEqual(rc, 0)
        rc = await reencryptd("inspect", "s3://bucket-a/missing")
        XCTAssertEqual(rc, 1)
        let text = Inspect.render(ObjectRef(bucket: "b-1", key: "k"), try await {
            let client = try simulatorClient()
            defer { client.shutdown() }
            return try await client.headObject(ObjectRef(bucket: "bucket-a", key: "k"))
        }())
        XCTAssertTrue(text.contains("SSE-KMS"), text)
        XCTAssertTrue(text.contains(arn), text)
        XCTAssertTrue(text.contains("bucket key   enabled"), text)
        XCTAssertTrue(text.contains("GOVERNANCE retention until"), text)
    }

    func testSubmitReadsCSVAndInventoryManifestsFromS3() async throws {
        let (population, csv) = try populate(objects: 300, bucketPrefix: "pop")
        let inventoryRoot = dir.appendingPathComponent("inv").path
        let manifestJSON = try population.writeInventory(root: inventoryRoot)
        // Upload both to the simulator, keeping the inventory layout (its manifest.json names data keys).
        let client = try simulatorClient()
        defer { client.shutdown() }
        try await client.putObject(bucket: "bucket-a", key: "manifests/m.csv", body: Array(try Data(contentsOf: URL(fileURLWithPath: csv))),
                                   contentType: "text/csv")
        let enumerator = FileManager.default.enumerator(atPath: inventoryRoot)!
        while let relative = enumerator.nextObject() as? String {
            var isDir: ObjCBool = false
            let full = inventoryRoot + "/" + relative
            guard FileManager.default.fileExists(atPath: full, isDirectory: &isDir), !isDir.boolValue else { continue }
            try await client.putObject(bucket: "bucket-a", key: relative, body: Array(try Data(contentsOf: URL(fileURLWithPath: full))),
                                       contentType: "application/octet-stream")
        }
        // The inventory's destinationBucket names another bucket; point it at bucket-a for this test.
        let manifestKey = String(manifestJSON.dropFirst(inventoryRoot.count + 1))
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: manifestJSON))) as! [String: Any]
        json["destinationBucket"] = "arn:aws:s3:::bucket-a"
        let rewritten = try JSONSerialization.data(withJSONObject: json)
        try await client.putObject(bucket: "bucket-a", key: manifestKey, body: Array(rewritten), contentType: "application/json")
        let checksumKey = (manifestKey as NSString).deletingLastPathComponent + "/manifest.checksum"
        try await client.putObject(bucket: "bucket-a", key: checksumKey,
                                   body: Array((Crypto.hex(Crypto.md5(rewritten)) + "\n").utf8),
                                   contentType: "text/plain")

        let db = dir.appendingPathComponent("s.sqlite3").path
        var rc = await reencryptd("submit", "--db", db, "--job", "from-csv", "--kms-key-arn", population.targetKeyARN, "s3://bucket-a/manifests/m.csv")
        XCTAssertEqual(rc, 0)
        rc = await reencryptd("submit", "--db", db, "--job", "from-inventory", "--kms-key-arn", population.targetKeyARN,
                              "s3://bucket-a/\(manifestKey)")
        XCTAssertEqual(rc, 0)
        let store = try SQLiteJobStore(path: db)
        let summaries = Dictionary(uniqueKeysWithValues: try store.summaries(now: 0).map { ($0.job.spec.name, $0) })
        XCTAssertEqual(summaries["from-csv"]?.total, 300)
        XCTAssertEqual(summaries["from-inventory"]?.total, 300)
        let expectedSkipped = population.entries.filter { $0.expectedViaInventory.isSkipped }.count
        XCTAssertEqual(summaries["from-inventory"]?.tasks[.skipped] ?? 0, expectedSkipped)
        rc = await reencryptd("submit", "--db", db, "--job", "missing", "--kms-key-arn", population.targetKeyARN, "s3://bucket-a/nope.csv")
        XCTAssertEqual(rc, 2)
        XCTAssertNil(try store.job(named: "missing"))
    }

    /// `report --output s3://…` uploads the files the manifest names, each matching the MD5 the manifest gives it.
    func testReportIsUploadedToS3AsItsManifestDescribes() async throws {
        let (population, csv) = try populate(objects: 120, bucketPrefix: "rep")
        let db = dir.appendingPathComponent("r.sqlite3").path
        var rc = await reencryptd("submit", "--db", db, "--job", "j", "--kms-key-arn", population.targetKeyARN, csv)
        XCTAssertEqual(rc, 0)
        rc = await reencryptd("run", "--db", db, "--until-idle")
        XCTAssertEqual(rc, 0)
        rc = await reencryptd("report", "--db", db, "--job", "j", "--output", "s3://bucket-a/reports/night1")
        XCTAssertEqual(rc, 0)

        let client = try simulatorClient()
        defer { client.shutdown() }
        let manifestBytes = try await client.getObject(bucket: "bucket-a", key: "reports/night1/job-j/manifest.json")
        let manifest = try XCTUnwrap(JSONSerialization.jsonObject(with: Data(manifestBytes)) as? [String: Any])
        let results = try XCTUnwrap(manifest["Results"] as? [[String: String]])
        XCTAssertEqual(Set(results.compactMap { $0["TaskExecutionStatus"] }), ["succeeded", "failed"])
        var rows = 0
        for r in results {
            XCTAssertEqual(r["Bucket"], "bucket-a")
            let body = try await client.getObject(bucket: "bucket-a", key: try XCTUnwrap(r["Key"]))
            XCTAssertEqual(r["MD5Checksum"], Crypto.hex(Crypto.md5(body)), r["Key"]!)
            rows += body.split(separator: UInt8(ascii: "\n")).count
        }
        XCTAssertEqual(rows, 120)
        let listed = try await client.listObjectsV2(bucket: "bucket-a", prefix: "reports/night1/")
        XCTAssertEqual(listed.count, results.count + 1, "the manifest and the files it names, nothing else")
    }

    /// The signing region: as configured, else the profile's `region` in the shared config file (as the SDKs read it),
    /// else us-east-1.
    func testSigningRegionIsConfiguredElseTheProfilesElseUSEast1() throws {
        let config = dir.appendingPathComponent("aws-config").path
        try Data("[default]\nregion = ap-south-1\n\n[profile ops]\nregion = eu-west-1\n\n[profile bare]\noutput = json\n".utf8)
            .write(to: URL(fileURLWithPath: config))
        let env = ["AWS_CONFIG_FILE": config, "HOME": dir.path]
        func region(_ configured: String, profile: String, _ environment: [String: String] = env) -> String {
            var s3 = Configuration().s3
            s3.region = configured
            s3.profile = profile
            return (try? S3Wiring.region(s3, environment: environment)) ?? "error"
        }
        XCTAssertEqual(region("us-west-2", profile: "ops"), "us-west-2", "configured wins")
        XCTAssertEqual(region("", profile: "ops"), "eu-west-1")
        XCTAssertEqual(region("", profile: "default"), "ap-south-1")
        XCTAssertEqual(region("", profile: "bare"), "us-east-1")
        XCTAssertEqual(region("", profile: "ops", ["HOME": dir.path]), "us-east-1", "no config file")
        try Data("[profile typo]\nregion = EU West 1\n".utf8).write(to: URL(fileURLWithPath: config))
        var s3 = Configuration().s3
        s3.profile = "typo"
        XCTAssertThrowsError(try S3Wiring.region(s3, environment: env)) { error in
            XCTAssertTrue("\(error)".contains("\(config): profile typo: region 'EU West 1'"), "\(error)")
        }
    }
}
