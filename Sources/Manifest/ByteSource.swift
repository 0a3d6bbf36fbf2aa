import CZlib
import Domain
import Foundation

/// Where manifest bytes come from, read in chunks so memory does not grow with the manifest's size.
public protocol ByteSource: AnyObject {
    /// A name for error messages: a path, `-` (stdin) or an `s3://` URI.
    var name: String { get }
    /// Fills `buffer` from its start; returns the number of bytes read, 0 at the end.
    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int
}

/// A problem reading or parsing a manifest: the file, the line (when there is one) and what is wrong.
public struct ManifestError: InputError, Sendable, Equatable {
    public let file: String
    public let line: Int?
    public let problem: String

    public init(file: String, line: Int?, problem: String) {
        self.file = file
        self.line = line
        self.problem = problem
    }

    public var description: String {
        if let line { return "\(file), line \(line): \(problem)" }
        return "\(file): \(problem)"
    }
}

/// A local file or standard input, read with read(2).
public final class FileByteSource: ByteSource {
    public let name: String
    private let fd: Int32
    private let ownsDescriptor: Bool

    /// Opens `path`; `-` means standard input.
    public init(path: String) throws {
        if path == "-" {
            name = "-"
            fd = 0
            ownsDescriptor = false
            return
        }
        name = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        ownsDescriptor = true
        if fd < 0 {
            throw ManifestError(file: path, line: nil, problem: "cannot open: \(String(cString: strerror(errno)))")
        }
        var info = stat()
        if fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR {
            close(fd)
            throw ManifestError(file: path, line: nil, problem: "is a directory, not a manifest file")
        }
    }

    deinit { if ownsDescriptor { close(fd) } }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        while true {
            let n = Foundation.read(fd, buffer.baseAddress, buffer.count)
            if n >= 0 { return n }
            if errno == EINTR { continue }
            throw ManifestError(file: name, line: nil, problem: "read failed: \(String(cString: strerror(errno)))")
        }
    }
}

/// Decompresses a gzip stream (S3 Inventory data files are `*.csv.gz`) from another source, chunk by chunk.
public final class GzipByteSource: ByteSource {
    public var name: String { inner.name }
    private let inner: ByteSource
    private var stream = z_stream()
    private var input: UnsafeMutableRawBufferPointer
    private var finished = false

    public init(_ inner: ByteSource) throws {
        self.inner = inner
        input = .allocate(byteCount: 1 << 16, alignment: 1)
        guard reencryptd_inflate_init_gzip(&stream) == Z_OK else {
            input.deallocate()
            throw ManifestError(file: inner.name, line: nil, problem: "cannot start gzip decompression")
        }
    }

    deinit {
        inflateEnd(&stream)
        input.deallocate()
    }

    public func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !finished else { return 0 }
        stream.next_out = buffer.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.avail_out = uInt(buffer.count)
        while stream.avail_out == uInt(buffer.count) {
            if stream.avail_in == 0 {
                let n = try inner.read(into: input)
                if n == 0 {
                    throw ManifestError(file: name, line: nil, problem: "the gzip data ends early (truncated file?)")
                }
                stream.next_in = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
                stream.avail_in = uInt(n)
            }
            let rc = inflate(&stream, Z_NO_FLUSH)
            if rc == Z_STREAM_END {
                // Concatenated gzip members are legal (gzip(1) reads them); continue with the next one.
                if try stream.avail_in > 0 || refillProbe() {
                    inflateReset(&stream)
                    continue
                }
                finished = true
                break
            }
            if rc != Z_OK && rc != Z_BUF_ERROR {
                let message = stream.msg.map { String(cString: $0) } ?? "code \(rc)"
                throw ManifestError(file: name, line: nil, problem: "is not valid gzip data: \(message)")
            }
        }
        return buffer.count - Int(stream.avail_out)
    }

    /// After a member ends with no input left, reads ahead to see whether another member follows.
    private func refillProbe() throws -> Bool {
        let n = try inner.read(into: input)
        guard n > 0 else { return false }
        stream.next_in = input.baseAddress?.assumingMemoryBound(to: Bytef.self)
        stream.avail_in = uInt(n)
        return true
    }
}
