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

    /// Writes the report under `folder` (created if needed). `keyPrefix` and `bucket` are what the manifest names as
    /// the files' location (the upload destination, or empty for a local report).
    public static func write(job: String, store: TaskQueue, format: Format, failedOnly: Bool, folder: URL,
                             bucket: String = "", keyPrefix: String = "", now: Date = Date()) throws -> Written {
        let base = folder.appendingPathComponent("job-\(job)")
        try FileManager.default.createDirectory(at: base.appendingPathComponent("results"), withIntermediateDirectories: true)
        switch format {
        case .jsonl: return try writeJSONL(job: job, store: store, failedOnly: failedOnly, base: base)
        case .batchCSV:
            return try writeBatchCSV(job: job, store: store, failedOnly: failedOnly, base: base, bucket: bucket,
                                     keyPrefix: keyPrefix, now: now)
        }
    }

    private static func writeBatchCSV(job: String, store: TaskQueue, failedOnly: Bool, base: URL, bucket: String,
                                      keyPrefix: String, now: Date) throws -> Written {
        let id = UUID().uuidString.lowercased()
        let succeededName = "results/\(id)-succeeded.csv"
        let failedName = "results/\(id)-failed.csv"
        let succeeded = try FileWriter(base.appendingPathComponent(succeededName))
        let failed = try FileWriter(base.appendingPathComponent(failedName))
        var count = 0
        try store.forEachTask(job: job, failedOnly: failedOnly) { t in
            guard t.state.isTerminal else { return }  // a running job's report holds finished tasks only
            count += 1
            let fields: [String]
            if t.state == .succeeded {
                fields = [t.object.bucket, ObjectKey.urlEncoded(t.object.key), t.object.versionId ?? "", "succeeded",
                          String(t.httpStatus ?? 200), "", "Successful"]
                succeeded.write(csvRow(fields))
            } else {
                let outcome = t.outcome?.rawValue ?? "failed"
                var message = t.errorMessage ?? (t.outcome?.isSkipped == true ? "not called: the inventory showed the call would fail" : "")
                message += " (outcome \(outcome)" + (t.requestID.map { ", request id \($0)" } ?? "") + ", attempts \(t.attempts))"
                fields = [t.object.bucket, ObjectKey.urlEncoded(t.object.key), t.object.versionId ?? "", "failed",
                          t.httpStatus.map(String.init) ?? "", t.errorCode ?? outcome, message]
                failed.write(csvRow(fields))
            }
        }
        try succeeded.close()
        try failed.close()
        var results: [[String: String]] = []
        var files: [String] = []
        for (status, name, writer) in [("succeeded", succeededName, succeeded), ("failed", failedName, failed)] {
            if failedOnly && status == "succeeded" {
                try? FileManager.default.removeItem(at: base.appendingPathComponent(name))
                continue
            }
            let prefix = keyPrefix.isEmpty ? "" : (keyPrefix.hasSuffix("/") ? keyPrefix : keyPrefix + "/")
            results.append(["TaskExecutionStatus": status, "Bucket": bucket, "MD5Checksum": writer.md5Hex,
                            "Key": "\(prefix)job-\(job)/\(name)"])
            files.append("job-\(job)/\(name)")
        }
        let formatter = ISO8601DateFormatter()
        let manifest: [String: Any] = [
            "Format": "Report_CSV_20180820", "ReportCreationDate": formatter.string(from: now), "Results": results,
            "ReportSchema": "Bucket, Key, VersionId, TaskStatus, ErrorCode, HTTPStatusCode, ResultMessage",
        ]
        let data = try JSONSerialization.data(withJSONObject: manifest, options: [.prettyPrinted, .sortedKeys])
        try data.write(to: base.appendingPathComponent("manifest.json"))
        files.insert("job-\(job)/manifest.json", at: 0)
        return Written(files: files, tasks: count)
    }

    private static func writeJSONL(job: String, store: TaskQueue, failedOnly: Bool, base: URL) throws -> Written {
        let name = "results/tasks.jsonl"
        let out = try FileWriter(base.appendingPathComponent(name))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var count = 0
        try store.forEachTask(job: job, failedOnly: failedOnly) { t in
            count += 1
            let line = JSONLine(bucket: t.object.bucket, key: t.object.key, version_id: t.object.versionId, state: t.state.rawValue,
                                outcome: t.outcome?.rawValue, attempts: t.attempts, http_status: t.httpStatus, error_code: t.errorCode,
                                error_message: t.errorMessage, request_id: t.requestID, created_at: iso(t.createdAt),
                                started_at: t.startedAt.map(iso), finished_at: t.finishedAt.map(iso))
            out.write(String(decoding: try encoder.encode(line), as: UTF8.self) + "\n")
        }
        try out.close()
        return Written(files: ["job-\(job)/\(name)"], tasks: count)
    }

    struct JSONLine: Encodable {
        let bucket: String, key: String, version_id: String?, state: String, outcome: String?, attempts: Int
        let http_status: Int?, error_code: String?, error_message: String?, request_id: String?
        let created_at: String, started_at: String?, finished_at: String?
    }

    static func iso(_ t: Double) -> String { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: t)) }

    static func csvRow(_ fields: [String]) -> String {
        fields.map { f in
            f.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
                ? "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : f
        }.joined(separator: ",") + "\n"
    }
}

/// Buffered file output with a running MD5 (the report manifest lists each file's MD5).
final class FileWriter {
    private let handle: FileHandle
    private var buffer: [UInt8] = []
    private let md5: OpaquePointer?
    private(set) var md5Hex = ""

    init(_ url: URL) throws {
        guard FileManager.default.createFile(atPath: url.path, contents: nil), let h = FileHandle(forWritingAtPath: url.path) else {
            throw JobStoreError("cannot write the report file \(url.path)")
        }
        handle = h
        md5 = reencryptd_md5_begin()
    }

    func write(_ s: String) {
        buffer += s.utf8
        if buffer.count > 1 << 20 { flush() }
    }

    private func flush() {
        guard !buffer.isEmpty else { return }
        buffer.withUnsafeBytes { _ = reencryptd_digest_update(md5, $0.baseAddress, $0.count) }
        handle.write(Data(buffer))
        buffer.removeAll(keepingCapacity: true)
    }

    func close() throws {
        flush()
        var out = [UInt8](repeating: 0, count: 16)
        _ = reencryptd_digest_final(md5, &out)
        md5Hex = HexDigit.encode(out)
        try handle.close()
    }
}
