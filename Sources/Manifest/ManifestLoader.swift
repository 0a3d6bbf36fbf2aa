import Domain
import Foundation

/// Reads manifests (S3 Batch Operations CSV or S3 Inventory reports) into `ManifestEntry`s, streaming.
///
/// A malformed row throws a `ManifestError` naming the file, the line and the problem; with `skipInvalid` the row is
/// left out and counted instead. Errors that are not about one row (unreadable file, bad inventory manifest,
/// checksum mismatch) always throw.
public final class ManifestLoader {
    public struct Options: Sendable {
        /// `auto` tells the formats apart: an inventory `manifest.json` is JSON, a Batch Operations manifest is CSV.
        public var format: ManifestFormat = .auto
        /// Leave malformed rows out (counted) rather than failing the submit.
        public var skipInvalid = false
        /// Object Lock retention dates from inventory columns are compared with this time.
        public var now = Date()
        /// How many rejected rows to keep for display.
        public var rejectionsKept = 10

        public init(format: ManifestFormat = .auto, skipInvalid: Bool = false, now: Date = Date()) {
            self.format = format
            self.skipInvalid = skipInvalid
            self.now = now
        }
    }

    public let options: Options
    public private(set) var rejectedCount = 0
    public private(set) var rejections: [ManifestError] = []
    /// Inventory rows for delete markers, dropped (a delete marker has no encryption to change).
    public private(set) var deleteMarkers = 0

    public init(options: Options = Options()) {
        self.options = options
    }

    /// Reads a local manifest (`-` for stdin) and calls `emit` for every valid entry.
    public func load(path: String, _ emit: (ManifestEntry) throws -> Void) throws {
        switch try resolveFormat(path: path) {
        case .csv, .auto:
            let source = try FileByteSource(path: path)
            try BatchOperationsCSV(loader: self).read(CSVReader(source: source), emit)
        case .inventory:
            try InventoryReport(loader: self, manifestPath: path).read(emit)
        }
    }

    private func resolveFormat(path: String) throws -> ManifestFormat {
        if options.format != .auto { return options.format }
        if path == "-" { return .csv }  // an inventory report needs its data files beside it; stdin cannot be one.
        if path.hasSuffix(".json") { return .inventory }
        // Sniff: an inventory manifest.json starts with '{' (after white space); a CSV row starts with a bucket name.
        let source = try FileByteSource(path: path)
        var head = [UInt8](repeating: 0, count: 64)
        let n = try head.withUnsafeMutableBytes { try source.read(into: $0) }
        let first = head.prefix(n).first { ![0x20, 0x09, 0x0A, 0x0D, 0xEF, 0xBB, 0xBF].contains($0) }
        return first == 0x7B ? .inventory : .csv
    }

    /// Records a malformed row: throws unless `skipInvalid`.
    func reject(_ error: ManifestError) throws {
        guard options.skipInvalid else { throw error }
        rejectedCount += 1
        if rejections.count < options.rejectionsKept { rejections.append(error) }
    }

    func countDeleteMarker() { deleteMarkers += 1 }
}

/// S3 Batch Operations CSV (`S3BatchOperations_CSV_20180820`): `bucket,key[,versionId]`, no header, keys URL-encoded,
/// version ids on every row or none.
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-create-job.html
struct BatchOperationsCSV {
    let loader: ManifestLoader

    func read(_ csv: CSVReader, _ emit: (ManifestEntry) throws -> Void) throws {
        // Decided by the first valid row: whether rows carry a version id.
        var versioned: Bool?
        var firstLine = 0
        while try csv.next() {
            let line = csv.recordLine
            func fail(_ problem: String) throws {
                try loader.reject(ManifestError(file: csv.sourceName, line: line, problem: problem))
            }
            let columns = csv.fieldCount
            guard columns == 2 || columns == 3 else {
                try fail("expected 2 or 3 columns (bucket,key[,versionId]) but found \(columns)"
                    + (columns > 3 ? "; a comma inside a key must be URL-encoded as %2C" : ""))
                continue
            }
            let bucket = csv.field(0)
            if let problem = RowValidation.bucket(bucket) {
                try fail(problem.description)
                continue
            }
            let key: String
            switch csv.withField(1, RowValidation.key) {
            case .failure(let problem):
                try fail(problem.description)
                continue
            case .success(let k): key = k
            }
            let version = columns == 3 ? csv.field(2) : ""
            let hasVersion = !version.isEmpty
            if let expected = versioned, expected != hasVersion {
                try fail(hasVersion
                    ? "this row has a version id but line \(firstLine) has none; version ids must be on every row or none"
                    : "this row has no version id but line \(firstLine) has one; version ids must be on every row or none")
                continue
            }
            if hasVersion, let problem = RowValidation.versionID(version) {
                try fail(problem.description)
                continue
            }
            if versioned == nil {
                versioned = hasVersion
                firstLine = line
            }
            try emit(ManifestEntry(object: ObjectRef(bucket: bucket, key: key, versionId: hasVersion ? version : nil),
                                   skippedAs: nil, line: line))
        }
    }
}
