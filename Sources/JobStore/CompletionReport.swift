import COpenSSL
import Domain
import Foundation

/// Writes a job's completion report (PRODUCT.md §5).
///
/// `batchCSV` is what S3 Batch Operations writes, so existing tooling reads it: `job-<name>/manifest.json`
/// (`Report_CSV_20180820`) and `job-<name>/results/*.csv`, no header, keys URL-encoded, succeeded and failed tasks in
/// separate files. Rows follow the service's own files: bucket, key, version, status, HTTP status, error code, message.
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-examples-reports.html
/// `jsonl` writes one JSON object per task with every recorded field.
public enum CompletionReport {
    public enum Format: String, Sendable, CaseIterable { case batchCSV = "batch-csv", jsonl }

    public struct Written: Sendable {
        /// Files written, relative to the output folder.
        public var files: [String]
        public var tasks: Int
    }

    /// A job's tasks in id order, handed to `body` one at a time (the store's `forEachTask`).
    public typealias TaskRows = (_ body: (TaskRecord) throws -> Void) throws -> Void

    /// Rows per results file: about 20 MB of batch-csv or 50 MB of JSON lines, so a report of millions of tasks is
    /// uploaded as files that each fit in memory and stay far below PutObject's 5 GB limit (S3 Batch Operations also
    /// splits its results into several files).
    public static let rowsPerFile = 250_000

    /// Writes the report under `folder` (created if needed). `keyPrefix` and `bucket` are what the manifest names as
    /// the files' location (the upload destination, or empty for a local report).
    public static func write(job: String, store: TaskQueue, format: Format, failedOnly: Bool, folder: URL,
                             bucket: String = "", keyPrefix: String = "", now: Date = Date()) throws -> Written {
        // The store chooses the rows (failed only, or all): the one place the scope is applied.
        try write(job: job, rows: { try store.forEachTask(job: job, failedOnly: failedOnly, $0) }, format: format,
                  folder: folder, bucket: bucket, keyPrefix: keyPrefix, now: now)
    }

    /// As above, reporting exactly the tasks `rows` hands over. If anything fails (the store, a full disk), the files
    /// this call wrote are removed before the error is thrown, so no half-written report is left for tooling to pick
    /// up; the batch-csv `manifest.json`, which names the results, is written last and in one step.
    public static func write(job: String, rows: TaskRows, format: Format, folder: URL,
                             bucket: String = "", keyPrefix: String = "", now: Date = Date(),
                             rowsPerFile: Int = CompletionReport.rowsPerFile) throws -> Written {
        let base = folder.appendingPathComponent("job-\(job)")
        do {
            try FileManager.default.createDirectory(at: base.appendingPathComponent("results"), withIntermediateDirectories: true)
        } catch {
            throw JobStoreError("cannot create the report folder \(base.appendingPathComponent("results").path): "
                                + "\((error as NSError).localizedDescription)")
        }
        let perFile = max(1, rowsPerFile)
        var created: [URL] = []
        do {
            switch format {
            case .jsonl:
                return try writeJSONL(job: job, rows: rows, base: base, rowsPerFile: perFile, created: &created)
            case .batchCSV:
                return try writeBatchCSV(job: job, rows: rows, base: base, bucket: bucket, keyPrefix: keyPrefix, now: now,
                                         rowsPerFile: perFile, created: &created)
            }
        } catch {
            for url in created { try? FileManager.default.removeItem(at: url) }
            throw error
        }
    }

    private static func writeBatchCSV(job: String, rows: TaskRows, base: URL, bucket: String,
                                      keyPrefix: String, now: Date, rowsPerFile: Int, created: inout [URL]) throws -> Written {
        let id = UUID().uuidString.lowercased()
        // The service lists a failed report only "if the job had any failures": a series without rows has no file.
        let succeeded = FileSeries(base: base, stem: "results/\(id)-succeeded", ext: "csv", rowsPerFile: rowsPerFile)
        let failed = FileSeries(base: base, stem: "results/\(id)-failed", ext: "csv", rowsPerFile: rowsPerFile)
        var count = 0
        try rows { t in
            guard t.state.isTerminal else { return }  // a running job's report holds finished tasks only
            count += 1
            if t.state == .succeeded {
                try succeeded.append(csvRow([t.object.bucket, ObjectKey.urlEncoded(t.object.key), t.object.versionId ?? "",
                                             "succeeded", String(t.httpStatus ?? 200), "", "Successful"]), created: &created)
            } else {
                let outcome = t.outcome?.rawValue ?? "failed"
                var message = t.errorMessage ?? (t.outcome?.isSkipped == true ? "not called: the inventory showed the call would fail" : "")
                message += " (outcome \(outcome)" + (t.requestID.map { ", request id \($0)" } ?? "") + ", attempts \(t.attempts))"
                try failed.append(csvRow([t.object.bucket, ObjectKey.urlEncoded(t.object.key), t.object.versionId ?? "", "failed",
                                          t.httpStatus.map(String.init) ?? "", t.errorCode ?? outcome, message]), created: &created)
            }
        }
        try succeeded.finish()
        try failed.finish()
        let prefix = keyPrefix.isEmpty ? "" : (keyPrefix.hasSuffix("/") ? keyPrefix : keyPrefix + "/")
        var results: [[String: String]] = []
        var files: [String] = []
        for (status, series) in [("succeeded", succeeded), ("failed", failed)] {
            for (name, md5) in series.done {
                results.append(["TaskExecutionStatus": status, "Bucket": bucket, "MD5Checksum": md5,
                                "Key": "\(prefix)job-\(job)/\(name)"])
                files.append("job-\(job)/\(name)")
            }
        }
        let manifest: [String: Any] = [
            "Format": "Report_CSV_20180820", "ReportCreationDate": ISO8601DateFormatter().string(from: now), "Results": results,
            "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage",
        ]
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
        let manifestURL = base.appendingPathComponent("manifest.json")
        do {
            try data.write(to: manifestURL, options: .atomic)
        } catch {
            throw JobStoreError("cannot write the report file \(manifestURL.path): \((error as NSError).localizedDescription)")
        }
        files.insert("job-\(job)/manifest.json", at: 0)
        return Written(files: files, tasks: count)
    }

    private static func writeJSONL(job: String, rows: TaskRows, base: URL, rowsPerFile: Int,
                                   created: inout [URL]) throws -> Written {
        let series = FileSeries(base: base, stem: "results/tasks", ext: "jsonl", rowsPerFile: rowsPerFile)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // One formatter for the report: a new one per time field was three per line.
        let formatter = ISO8601DateFormatter()
        func iso(_ t: Double) -> String { formatter.string(from: Date(timeIntervalSince1970: t)) }
        var count = 0
        try rows { t in
            count += 1
            let line = JSONLine(bucket: t.object.bucket, key: t.object.key, version_id: t.object.versionId, state: t.state.rawValue,
                                outcome: t.outcome?.rawValue, attempts: t.attempts, http_status: t.httpStatus, error_code: t.errorCode,
                                error_message: t.errorMessage, request_id: t.requestID, created_at: iso(t.createdAt),
                                started_at: t.startedAt.map(iso), finished_at: t.finishedAt.map(iso))
            try series.append(String(decoding: try encoder.encode(line), as: UTF8.self) + "\n", created: &created)
        }
        try series.finish()
        return Written(files: series.done.map { "job-\(job)/\($0.name)" }, tasks: count)
    }

    struct JSONLine: Encodable {
        let bucket: String, key: String, version_id: String?, state: String, outcome: String?, attempts: Int
        let http_status: Int?, error_code: String?, error_message: String?, request_id: String?
        let created_at: String, started_at: String?, finished_at: String?
    }

    static func csvRow(_ fields: [String]) -> String {
        fields.map { f in
            f.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : f
        }.joined(separator: ",") + "\n"
    }
}

/// Report files of one kind (`STEM-1.EXT`, `STEM-2.EXT`, …): a new one every `rowsPerFile` rows, none without rows.
final class FileSeries {
    private let base: URL
    private let stem: String
    private let ext: String
    private let rowsPerFile: Int
    private var open: ReportFile?
    private var rows = 0
    /// The finished files: their paths relative to the job's report folder, and their MD5s.
    private(set) var done: [(name: String, md5: String)] = []

    init(base: URL, stem: String, ext: String, rowsPerFile: Int) {
        self.base = base
        self.stem = stem
        self.ext = ext
        self.rowsPerFile = rowsPerFile
    }

    /// Appends one row (with its line end), starting a file when needed; each file started is added to `created`.
    func append(_ row: String, created: inout [URL]) throws {
        if open == nil || rows == rowsPerFile {
            try finish()
            let name = "\(stem)-\(done.count + 1).\(ext)"
            let url = base.appendingPathComponent(name)
            created.append(url)
            open = try ReportFile(url, name: name)
        }
        try open!.write(row)
        rows += 1
    }

    /// Closes the open file, if any.
    func finish() throws {
        guard let file = open else { return }
        done.append((file.name, try file.close()))
        open = nil
        rows = 0
    }
}

/// One report file being written: buffered, with a running MD5 (the batch-csv manifest lists each file's), and errors
/// that name the file and the system's reason. Plain `open`/`write`: Foundation's `FileHandle.write(_:)` traps on an
/// I/O error, so a full disk would have crashed the command instead of reporting it.
final class ReportFile {
    let url: URL
    /// The path relative to the job's report folder.
    let name: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private var md5: OpaquePointer?

    init(_ url: URL, name: String) throws {
        self.url = url
        self.name = name
        guard let md5 = reencryptd_md5_begin() else { throw JobStoreError("cannot start an MD5 digest (OpenSSL)") }
        self.md5 = md5
        fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw Self.failure("create", url, errno) }
    }

    deinit {
        if fd >= 0 { _ = Glibc.close(fd) }
        if let md5 { reencryptd_digest_free(md5) }
    }

    func write(_ s: String) throws {
        buffer += s.utf8
        if buffer.count > 1 << 20 { try flush() }
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { bytes in
            _ = reencryptd_digest_update(md5, bytes.baseAddress, bytes.count)
            var done = 0
            while done < bytes.count {
                let n = Glibc.write(fd, bytes.baseAddress! + done, bytes.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw Self.failure("write", url, errno)
                }
                done += n
            }
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes what is buffered, closes the file and returns its MD5 in hex.
    func close() throws -> String {
        try flush()
        let rc = Glibc.close(fd)
        fd = -1
        // close reports a write the file system deferred (NFS, quotas): the file may be short.
        guard rc == 0 else { throw Self.failure("write", url, errno) }
        var out = [UInt8](repeating: 0, count: 16)
        _ = reencryptd_digest_final(md5, &out)  // frees the digest
        md5 = nil
        return HexDigit.encode(out)
    }

    private static func failure(_ what: String, _ url: URL, _ code: Int32) -> JobStoreError {
        JobStoreError("cannot \(what) the report file \(url.path): \(String(cString: strerror(code)))")
    }
}
