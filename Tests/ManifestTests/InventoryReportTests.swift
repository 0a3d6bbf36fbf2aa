import Domain
import Foundation
@testable import Manifest
import XCTest

/// Builds an S3 Inventory report on disk as S3 lays it out:
/// `<root>/src-bucket/config/2026-11-28T00-00Z/manifest.json` and `<root>/src-bucket/config/data/<n>.csv.gz`.
struct InventoryFixture {
    let root: URL
    let manifestPath: String

    init(schema: String, files: [String], checksum: Bool = true, corruptMD5: Bool = false) throws {
        root = try makeTempDir()
        let config = root.appendingPathComponent("src-bucket/config")
        let dated = config.appendingPathComponent("2026-11-28T00-00Z")
        let data = config.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: dated, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)
        var entries: [[String: Any]] = []
        for (i, csv) in files.enumerated() {
            let name = "part-\(i).csv.gz"
            let gz = try InventoryFixture.gzip(Data(csv.utf8))
            try gz.write(to: data.appendingPathComponent(name))
            entries.append(["key": "src-bucket/config/data/\(name)", "size": gz.count,
                            "MD5checksum": corruptMD5 ? String(repeating: "0", count: 32) : Digest.md5Hex(gz)])
        }
        let manifest: [String: Any] = [
            "sourceBucket": "src-bucket", "destinationBucket": "arn:aws:s3:::inventory-dest", "version": "2016-11-30",
            "creationTimestamp": "1764288000000", "fileFormat": "CSV", "fileSchema": schema, "files": entries,
        ]
        let json = try JSONSerialization.data(withJSONObject: manifest)
        let manifestURL = dated.appendingPathComponent("manifest.json")
        try json.write(to: manifestURL)
        if checksum { try Data((Digest.md5Hex(json) + "\n").utf8).write(to: dated.appendingPathComponent("manifest.checksum")) }
        manifestPath = manifestURL.path
    }

    static func gzip(_ data: Data) throws -> Data {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/gzip")
        p.arguments = ["-c"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try p.run()
        input.fileHandleForWriting.write(data)
        try input.fileHandleForWriting.close()
        let out = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return out
    }
}

final class InventoryReportTests: XCTestCase {
    let fullSchema = "Bucket, Key, VersionId, IsLatest, IsDeleteMarker, Size, EncryptionStatus, BucketKeyStatus, "
        + "ObjectLockRetainUntilDate, ObjectLockMode, ObjectLockLegalHoldStatus"

    func testRowsAreMappedByFileSchemaAcrossGzipFiles() throws {
        let fixture = try InventoryFixture(schema: fullSchema, files: [
            "\"src-bucket\",\"a%20b+c\",\"v1\",\"true\",\"false\",\"10\",\"SSE-S3\",\"DISABLED\",\"\",\"\",\"\"\n",
            "\"src-bucket\",\"%E6%97%A5\",\"v2\",\"true\",\"false\",\"10\",\"SSE-KMS\",\"ENABLED\",\"\",\"\",\"OFF\"\n",
        ])
        let (entries, loader) = try loadAll(fixture.manifestPath)
        XCTAssertEqual(entries.map(\.object), [
            ObjectRef(bucket: "src-bucket", key: "a b c", versionId: "v1"),
            ObjectRef(bucket: "src-bucket", key: "日", versionId: "v2"),
        ])
        XCTAssertTrue(entries.allSatisfy { $0.skippedAs == nil })
        XCTAssertEqual(loader.rejectedCount, 0)
    }

    func testDeleteMarkersAreDroppedAndEncryptionAndLockColumnsGiveSkippedTasks() throws {
        let future = "2099-01-01T00:00:00.000Z", past = "2001-01-01T00:00:00.000Z"
        let rows = [
            "src-bucket,dm,v0,true,true,0,,,,,",
            "src-bucket,plain,v1,true,false,1,NOT-SSE,DISABLED,,,",
            "src-bucket,ssec,v1,true,false,1,SSE-C,DISABLED,,,",
            "src-bucket,dsse,v1,true,false,1,DSSE-KMS,DISABLED,,,",
            "src-bucket,held,v1,true,false,1,SSE-S3,DISABLED,,,ON",
            "src-bucket,compliance,v1,true,false,1,SSE-S3,DISABLED,\(future),COMPLIANCE,OFF",
            "src-bucket,governance,v1,true,false,1,SSE-KMS,DISABLED,\(future),GOVERNANCE,OFF",
            "src-bucket,lapsed,v1,true,false,1,SSE-S3,DISABLED,\(past),COMPLIANCE,OFF",
            "src-bucket,ok,v1,true,false,1,SSE-S3,DISABLED,,,",
        ]
        let fixture = try InventoryFixture(schema: fullSchema, files: [rows.joined(separator: "\n")])
        let (entries, loader) = try loadAll(fixture.manifestPath)
        XCTAssertEqual(loader.deleteMarkers, 1)
        let byKey = Dictionary(uniqueKeysWithValues: entries.map { ($0.object.key, $0.skippedAs) })
        XCTAssertEqual(byKey.count, 8)
        XCTAssertEqual(byKey["plain"], .some(.skippedNotEncrypted))
        XCTAssertEqual(byKey["ssec"], .some(.skippedSSEC))
        XCTAssertEqual(byKey["dsse"], .some(.skippedDSSEKMS))
        XCTAssertEqual(byKey["held"], .some(.skippedObjectLock))
        XCTAssertEqual(byKey["compliance"], .some(.skippedObjectLock))
        XCTAssertEqual(byKey["governance"], .some(.skippedObjectLock))
        XCTAssertEqual(byKey["lapsed"], .some(nil))
        XCTAssertEqual(byKey["ok"], .some(nil))
    }

    func testAutoFormatSniffsJSONEvenWithoutTheJSONSuffix() throws {
        let fixture = try InventoryFixture(schema: "Bucket, Key", files: ["src-bucket,k\n"])
        let renamed = (fixture.manifestPath as NSString).deletingLastPathComponent + "/inventory-manifest"
        try FileManager.default.copyItem(atPath: fixture.manifestPath, toPath: renamed)
        let (entries, _) = try loadAll(renamed)
        XCTAssertEqual(entries.map(\.object.key), ["k"])
    }

    func testMalformedInventoryRowsNameTheDataFileAndLine() throws {
        let fixture = try InventoryFixture(schema: fullSchema, files: [
            "src-bucket,ok,v1,true,false,1,SSE-S3,DISABLED,,,\nsrc-bucket,bad,v1,true,false,1,AES-999,DISABLED,,,\n",
        ])
        XCTAssertThrowsError(try loadAll(fixture.manifestPath)) { error in
            let e = error as? ManifestError
            XCTAssertEqual(e?.line, 2)
            XCTAssertTrue(e?.file.hasSuffix("data/part-0.csv.gz") ?? false, "\(error)")
            XCTAssertTrue("\(error)".contains("EncryptionStatus 'AES-999'"), "\(error)")
        }
        let wrongCount = try InventoryFixture(schema: "Bucket, Key, VersionId", files: ["src-bucket,k\n"])
        XCTAssertThrowsError(try loadAll(wrongCount.manifestPath)) { error in
            XCTAssertTrue("\(error)".contains("line 1: expected 3 columns as fileSchema lists but found 2"), "\(error)")
        }
    }

    func testDataFileWithWrongMD5IsRefused() throws {
        let fixture = try InventoryFixture(schema: "Bucket, Key", files: ["src-bucket,k\n"], corruptMD5: true)
        XCTAssertThrowsError(try loadAll(fixture.manifestPath)) { error in
            XCTAssertTrue("\(error)".contains("MD5 is"), "\(error)")
        }
    }

    func testManifestChecksumMismatchIsRefused() throws {
        let fixture = try InventoryFixture(schema: "Bucket, Key", files: ["src-bucket,k\n"])
        let checksum = (fixture.manifestPath as NSString).deletingLastPathComponent + "/manifest.checksum"
        try Data("ffffffffffffffffffffffffffffffff".utf8).write(to: URL(fileURLWithPath: checksum))
        XCTAssertThrowsError(try loadAll(fixture.manifestPath)) { error in
            XCTAssertTrue("\(error)".contains("manifest.checksum says ffff"), "\(error)")
        }
    }

    func testMissingDataFileAndNonCSVFormatsAreClearErrors() throws {
        let fixture = try InventoryFixture(schema: "Bucket, Key", files: ["src-bucket,k\n"])
        try FileManager.default.removeItem(at: fixture.root.appendingPathComponent("src-bucket/config/data/part-0.csv.gz"))
        XCTAssertThrowsError(try loadAll(fixture.manifestPath)) { error in
            XCTAssertTrue("\(error)".contains("lists data file 'src-bucket/config/data/part-0.csv.gz', which is not found"), "\(error)")
        }
        let parquet = try writeTemp(#"{"fileFormat":"Parquet","fileSchema":"message s3.inventory {}","files":[]}"#, name: "manifest.json")
        XCTAssertThrowsError(try loadAll(parquet)) { error in
            XCTAssertTrue("\(error)".contains("only CSV inventory reports are supported"), "\(error)")
        }
        let notJSON = try writeTemp("{not json", name: "manifest.json")
        XCTAssertThrowsError(try loadAll(notJSON)) { error in
            XCTAssertTrue("\(error)".contains("is not an S3 Inventory manifest.json"), "\(error)")
        }
    }

    func testTruncatedGzipIsAnError() throws {
        let fixture = try InventoryFixture(schema: "Bucket, Key", files: [String(repeating: "src-bucket,some-key\n", count: 2000)])
        let data = fixture.root.appendingPathComponent("src-bucket/config/data/part-0.csv.gz")
        let bytes = try Data(contentsOf: data)
        try bytes.prefix(bytes.count / 2).write(to: data)
        XCTAssertThrowsError(try loadAll(fixture.manifestPath, options: .init(format: .inventory))) { error in
            XCTAssertTrue("\(error)".contains("ends early") || "\(error)".contains("MD5"), "\(error)")
        }
    }
}
