import COpenSSL
import Domain
import Foundation

/// An S3 Inventory report (`S3InventoryReport_CSV_20161130`): a `manifest.json` naming gzip CSV data files whose
/// columns are given by `fileSchema`. The data files are found relative to the manifest, as the report's folder
/// layout lays them out (`<prefix>/<source-bucket>/<config>/<date>/manifest.json` beside `…/<config>/data/*.csv.gz`).
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/storage-inventory-location.html
struct InventoryReport {
    let loader: ManifestLoader
    let manifestPath: String

    struct Manifest: Decodable {
        struct File: Decodable {
            let key: String
            let size: Int64?
            let MD5checksum: String?
        }
        let sourceBucket: String?
        let fileFormat: String
        let fileSchema: String?
        let files: [File]
    }

    func read(_ emit: (ManifestEntry) throws -> Void) throws {
        let manifest = try readManifest()
        let columns = Columns(schema: manifest.fileSchema ?? "")
        guard columns.bucket != nil, columns.key != nil else {
            throw ManifestError(file: manifestPath, line: nil,
                                problem: "fileSchema '\(manifest.fileSchema ?? "")' has no Bucket and Key columns")
        }
        for file in manifest.files {
            let path = try locate(file.key)
            let raw = try FileByteSource(path: path)
            let digesting = try MD5ByteSource(raw)
            let csv = CSVReader(source: try GzipByteSource(digesting))
            try readRows(csv, columns: columns, emit)
            if let expected = file.MD5checksum?.lowercased(), !expected.isEmpty {
                let actual = try digesting.finish()
                if actual != expected {
                    throw ManifestError(file: path, line: nil, problem: "MD5 is \(actual) but \(manifestPath) lists \(expected) "
                        + "for it; the file is damaged or from another report")
                }
            }
        }
    }

    private func readManifest() throws -> Manifest {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: manifestPath))
        } catch {
            throw ManifestError(file: manifestPath, line: nil, problem: "cannot read: \(error.localizedDescription)")
        }
        // manifest.checksum beside manifest.json holds its MD5; check it when present.
        let checksumPath = (manifestPath as NSString).deletingLastPathComponent + "/manifest.checksum"
        if let expected = try? String(contentsOfFile: checksumPath, encoding: .utf8) {
            let want = expected.trimmingCharacters(in: .whitespacesAndNewlines).lowercased()
            let have = Digest.md5Hex(data)
            if !want.isEmpty, want != have {
                throw ManifestError(file: manifestPath, line: nil, problem: "MD5 is \(have) but \(checksumPath) says \(want)")
            }
        }
        let manifest: Manifest
        do {
            manifest = try JSONDecoder().decode(Manifest.self, from: data)
        } catch {
            throw ManifestError(file: manifestPath, line: nil,
                                problem: "is not an S3 Inventory manifest.json (\(Self.describe(error)))")
        }
        guard manifest.fileFormat.uppercased() == "CSV" else {
            throw ManifestError(file: manifestPath, line: nil, problem: "fileFormat is \(manifest.fileFormat); only CSV "
                + "inventory reports are supported (configure the inventory with the CSV output format)")
        }
        return manifest
    }

    private static func describe(_ error: Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "no '\(key.stringValue)' field"
        case DecodingError.typeMismatch(_, let ctx), DecodingError.valueNotFound(_, let ctx):
            return "field '\(ctx.codingPath.map(\.stringValue).joined(separator: "."))' has the wrong type"
        case DecodingError.dataCorrupted: return "not valid JSON"
        default: return "\(error)"
        }
    }

    /// Finds data file `key` (the key in the destination bucket) on disk, relative to the manifest: tries ever
    /// shorter tails of the key under the manifest's folder and its ancestors.
    private func locate(_ key: String) throws -> String {
        let parts = key.split(separator: "/").map(String.init)
        var ancestors: [String] = []
        var dir = (manifestPath as NSString).deletingLastPathComponent
        if dir.isEmpty { dir = "." }
        for _ in 0..<max(parts.count, 1) + 1 {
            ancestors.append(dir)
            let parent = (dir as NSString).deletingLastPathComponent
            if parent == dir || parent.isEmpty { break }
            dir = parent
        }
        for start in parts.indices {
            let tail = parts[start...].joined(separator: "/")
            for ancestor in ancestors {
                let candidate = ancestor + "/" + tail
                var isDirectory: ObjCBool = false
                if FileManager.default.fileExists(atPath: candidate, isDirectory: &isDirectory), !isDirectory.boolValue {
                    return candidate
                }
            }
        }
        throw ManifestError(file: manifestPath, line: nil, problem: "lists data file '\(key)', which is not found "
            + "relative to the manifest (expected e.g. \(ancestors.count > 1 ? ancestors[1] : ancestors[0])/data/\(parts.last ?? key))")
    }

    private struct Columns {
        var count = 0
        var bucket: Int?, key: Int?, versionID: Int?, isDeleteMarker: Int?
        var encryptionStatus: Int?, lockMode: Int?, retainUntil: Int?, legalHold: Int?

        init(schema: String) {
            let names = schema.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            count = names.count
            for (i, name) in names.enumerated() {
                switch name {
                case "Bucket": bucket = i
                case "Key": key = i
                case "VersionId": versionID = i
                case "IsDeleteMarker": isDeleteMarker = i
                case "EncryptionStatus": encryptionStatus = i
                case "ObjectLockMode": lockMode = i
                case "ObjectLockRetainUntilDate": retainUntil = i
                case "ObjectLockLegalHoldStatus": legalHold = i
                default: break
                }
            }
        }
    }

    private func readRows(_ csv: CSVReader, columns: Columns, _ emit: (ManifestEntry) throws -> Void) throws {
        guard let bucketColumn = columns.bucket, let keyColumn = columns.key else { return }
        while try csv.next() {
            let line = csv.recordLine
            func fail(_ problem: String) throws {
                try loader.reject(ManifestError(file: csv.sourceName, line: line, problem: problem))
            }
            guard csv.fieldCount == columns.count else {
                try fail("expected \(columns.count) columns as fileSchema lists but found \(csv.fieldCount)")
                continue
            }
            if let i = columns.isDeleteMarker, csv.field(i) == "true" {
                loader.countDeleteMarker()
                continue
            }
            let bucket = csv.field(bucketColumn)
            if let problem = RowValidation.bucket(bucket) {
                try fail(problem.description)
                continue
            }
            let key: String
            switch csv.withField(keyColumn, RowValidation.key) {
            case .failure(let problem):
                try fail(problem.description)
                continue
            case .success(let k): key = k
            }
            let version = columns.versionID.map { csv.field($0) } ?? ""
            if let problem = RowValidation.versionID(version) {
                try fail(problem.description)
                continue
            }
            let skip: OutcomeClass?
            switch skipClass(csv, columns) {
            case .failure(let problem):
                try fail(problem.description)
                continue
            case .success(let s): skip = s
            }
            try emit(ManifestEntry(object: ObjectRef(bucket: bucket, key: key, versionId: version.isEmpty ? nil : version),
                                   skippedAs: skip, line: line))
        }
    }

    /// What the inventory's columns say about the call: nil when it should be made, else the `skipped-*` class.
    private func skipClass(_ csv: CSVReader, _ columns: Columns) -> Result<OutcomeClass?, InvalidInput> {
        if let i = columns.encryptionStatus {
            switch csv.field(i) {
            case "SSE-S3", "SSE-KMS", "": break
            case "NOT-SSE": return .success(.skippedNotEncrypted)
            case "SSE-C": return .success(.skippedSSEC)
            case "DSSE-KMS": return .success(.skippedDSSEKMS)
            case let other:
                return .failure(InvalidInput("EncryptionStatus '\(other)' is not one of SSE-S3, SSE-KMS, DSSE-KMS, SSE-C, NOT-SSE"))
            }
        }
        if let i = columns.legalHold {
            switch csv.field(i) {
            case "ON": return .success(.skippedObjectLock)
            case "OFF", "": break
            case let other: return .failure(InvalidInput("ObjectLockLegalHoldStatus '\(other)' is not ON or OFF"))
            }
        }
        if let i = columns.lockMode {
            let mode = csv.field(i)
            switch mode {
            case "": break
            case "GOVERNANCE", "COMPLIANCE":
                guard let j = columns.retainUntil else { return .success(.skippedObjectLock) }
                let text = csv.field(j)
                guard let until = InventoryDates.parse(text) else {
                    return .failure(InvalidInput("ObjectLockRetainUntilDate '\(text)' is not an ISO 8601 time"))
                }
                // Retention that has lapsed no longer blocks the call.
                if until > loader.options.now { return .success(.skippedObjectLock) }
            default:
                return .failure(InvalidInput("ObjectLockMode '\(mode)' is not GOVERNANCE or COMPLIANCE"))
            }
        }
        return .success(nil)
    }
}

enum InventoryDates {
    /// Inventory writes e.g. `2026-12-31T00:00:00.000Z`.
    static func parse(_ text: String) -> Date? {
        let withFraction = ISO8601DateFormatter()
        withFraction.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = withFraction.date(from: text) { return d }
        return ISO8601DateFormatter().date(from: text)
    }
}

/// Passes bytes through while computing their MD5 (to check data files against the manifest's MD5checksum).
final class MD5ByteSource: ByteSource {
    var name: String { inner.name }
    private let inner: ByteSource
    private var context: OpaquePointer?

    init(_ inner: ByteSource) throws {
        self.inner = inner
        context = reencryptd_md5_begin()
        if context == nil { throw ManifestError(file: inner.name, line: nil, problem: "cannot start MD5 (OpenSSL)") }
    }

    deinit { if let context { reencryptd_digest_free(context) } }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = try inner.read(into: buffer)
        if n > 0, let context { _ = reencryptd_digest_update(context, buffer.baseAddress, n) }
        return n
    }

    /// Reads any bytes left, then returns the lowercase hex MD5 of everything read.
    func finish() throws -> String {
        var scratch = [UInt8](repeating: 0, count: 1 << 16)
        while try scratch.withUnsafeMutableBytes({ try read(into: $0) }) > 0 {}
        guard let context else { return "" }
        var out = [UInt8](repeating: 0, count: 16)
        _ = reencryptd_digest_final(context, &out)
        self.context = nil
        return HexDigit.encode(out)
    }
}

enum Digest {
    static func md5Hex(_ data: Data) -> String {
        var out = [UInt8](repeating: 0, count: 16)
        data.withUnsafeBytes { _ = reencryptd_md5($0.baseAddress, $0.count, &out) }
        return HexDigit.encode(out)
    }
}
