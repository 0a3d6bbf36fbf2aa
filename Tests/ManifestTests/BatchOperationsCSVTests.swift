import Domain
import Foundation
@testable import Manifest
import XCTest

/// Writes `text` to a temporary file and returns its path.
func writeTemp(_ text: String, name: String = "manifest.csv", in dir: URL? = nil) throws -> String {
    let folder = try dir ?? makeTempDir()
    let url = folder.appendingPathComponent(name)
    try Data(text.utf8).write(to: url)
    return url.path
}

/// This module's scratch folders live under one folder, removed when the test process exits.
let scratchRoot: URL = {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("reencryptd-manifest-tests-\(UUID().uuidString)")
    atexit { try? FileManager.default.removeItem(at: scratchRoot) }
    return url
}()

func makeTempDir() throws -> URL {
    let url = scratchRoot.appendingPathComponent(UUID().uuidString)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

func loadAll(_ path: String, options: ManifestLoader.Options = .init()) throws -> ([ManifestEntry], ManifestLoader) {
    let loader = ManifestLoader(options: options)
    var entries: [ManifestEntry] = []
    try loader.load(path: path) { entries.append($0) }
    return (entries, loader)
}

final class BatchOperationsCSVTests: XCTestCase {
    func testURLEncodedAndUnicodeKeysAreDecoded() throws {
        let path = try writeTemp("""
            my-bucket,object%20key%20with%20spaces
            my-bucket,plus%2Bsign+space
            my-bucket,%E6%97%A5%E6%9C%AC%E8%AA%9E/%F0%9F%98%80.txt
            my-bucket,d%C3%A9j%C3%A0-vu
            my-bucket,unencoded-ünïcødé
            my-bucket,a//b/./c/../d~!*'()

            """)
        let (entries, _) = try loadAll(path)
        XCTAssertEqual(entries.map(\.object.key), [
            "object key with spaces", "plus+sign space", "日本語/😀.txt", "déjà-vu", "unencoded-ünïcødé", "a//b/./c/../d~!*'()",
        ])
        XCTAssertEqual(entries.map(\.line), [1, 2, 3, 4, 5, 6])
        XCTAssertTrue(entries.allSatisfy { $0.object.bucket == "my-bucket" && $0.object.versionId == nil && $0.skippedAs == nil })
    }

    func testVersionIDsAreKept() throws {
        let path = try writeTemp("b-1,k1,3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY\nb-1,k2,null\n")
        let (entries, _) = try loadAll(path)
        XCTAssertEqual(entries.map(\.object), [
            ObjectRef(bucket: "b-1", key: "k1", versionId: "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"),
            ObjectRef(bucket: "b-1", key: "k2", versionId: "null"),
        ])
    }

    func testRFC4180QuotingWithCommasQuotesAndNewlinesAndCRLF() throws {
        let path = try writeTemp("\"my-bucket\",\"a,b\"\r\nmy-bucket,\"say \"\"hi\"\"\"\r\nmy-bucket,\"multi\nline\"\r\nmy-bucket,last\r\n")
        let (entries, _) = try loadAll(path)
        XCTAssertEqual(entries.map(\.object.key), ["a,b", "say \"hi\"", "multi\nline", "last"])
        // The record after the embedded newline starts on line 5.
        XCTAssertEqual(entries.map(\.line), [1, 2, 3, 5])
    }

    func testChunkBoundariesDoNotChangeTheResult() throws {
        var text = ""
        for i in 0..<500 { text += "bucket-\(i % 7),\"k,\(i)\"\"x\"\"\"\r\nbucket-1,p%20\(i)\n" }
        let path = try writeTemp(text)
        let whole = CSVReader(source: try FileByteSource(path: path))
        let tiny = CSVReader(source: try FileByteSource(path: path), chunkSize: 3)
        var rows = 0
        while try whole.next() {
            XCTAssertTrue(try tiny.next())
            XCTAssertEqual(whole.fieldCount, tiny.fieldCount)
            for f in 0..<whole.fieldCount { XCTAssertEqual(whole.field(f), tiny.field(f)) }
            XCTAssertEqual(whole.recordLine, tiny.recordLine)
            rows += 1
        }
        XCTAssertFalse(try tiny.next())
        XCTAssertEqual(rows, 1000)
    }

    /// Each malformed row fails the load with the file, the line and the reason.
    func testMalformedRowsNameFileLineAndReason() throws {
        let long = String(repeating: "k", count: 1020) + "%C3%A9%C3%A9%C3%A9"  // 1,026 bytes once decoded
        let cases: [(String, String)] = [
            ("good-bucket,k\nonly-one-column\n", "expected 2 or 3 columns"),
            ("good-bucket,k\ngood-bucket,k,v,extra\n", "found 4; a comma inside a key must be URL-encoded"),
            ("good-bucket,k\ngood-bucket,bad%zzkey\n", "bad percent-encoding '%zz'"),
            ("good-bucket,k\ngood-bucket,trailing%4\n", "bad percent-encoding"),
            ("good-bucket,k\ngood-bucket,%FF%FE\n", "not valid UTF-8"),
            ("good-bucket,k\n,key\n", "the bucket name is empty"),
            ("good-bucket,k\ngood-bucket,\n", "the key is empty"),
            ("good-bucket,k\nBad_Bucket,key\n", "may hold only lowercase letters"),
            ("good-bucket,k\nab,key\n", "3 to 63 characters"),
            ("good-bucket,k\n192.168.1.1,key\n", "IP address"),
            ("good-bucket,k\ngood-bucket,\(long)\n", "1026 bytes once decoded"),
            ("good-bucket,k,v1\ngood-bucket,k2\n", "no version id but line 1 has one"),
            ("good-bucket,k\ngood-bucket,k2,v2\n", "has a version id but line 1 has none"),
            ("good-bucket,k\ngood-bucket,\"unclosed\n", "not closed"),
            ("good-bucket,k\ngood-bucket,\"a\"b\n", "after a closing quote"),
        ]
        for (text, reason) in cases {
            let path = try writeTemp(text)
            XCTAssertThrowsError(try loadAll(path), "expected failure for \(text.debugDescription)") { error in
                guard let error = error as? ManifestError else { return XCTFail("not a ManifestError: \(error)") }
                XCTAssertEqual(error.file, path)
                XCTAssertEqual(error.line, 2, "line for \(text.debugDescription)")
                XCTAssertTrue(error.description.contains(reason), "'\(error)' lacks '\(reason)'")
                XCTAssertTrue(error.description.hasPrefix("\(path), line 2: "))
            }
        }
    }

    func testKeyOfExactly1024BytesIsAccepted() throws {
        let path = try writeTemp("good-bucket,\(String(repeating: "k", count: 1022))%C3%A9\n")
        let (entries, _) = try loadAll(path)
        XCTAssertEqual(entries.first?.object.key.utf8.count, 1024)
    }

    func testSkipInvalidLeavesRowsOutAndCountsThem() throws {
        let path = try writeTemp("good-bucket,a\nBAD,b\ngood-bucket,c%zz\ngood-bucket,d\n")
        let (entries, loader) = try loadAll(path, options: .init(skipInvalid: true))
        XCTAssertEqual(entries.map(\.object.key), ["a", "d"])
        XCTAssertEqual(loader.rejectedCount, 2)
        XCTAssertEqual(loader.rejections.map(\.line), [2, 3])
    }

    func testMissingFileIsAClearError() {
        XCTAssertThrowsError(try loadAll("/nonexistent/m.csv")) { error in
            XCTAssertTrue("\(error)".hasPrefix("/nonexistent/m.csv: cannot open"), "\(error)")
        }
    }

    func testPercentEncodingRoundTrips() {
        for key in ["plain", "with space", "a+b", "日本語", "~!*'()&$=;:,?#[]@%", " lead and trail "] {
            let encoded = ObjectKey.urlEncoded(key)
            let decoded = Array(encoded.utf8).withUnsafeBufferPointer { PercentDecoding.decode($0) }
            XCTAssertEqual(try decoded.get(), key)
        }
    }
}
