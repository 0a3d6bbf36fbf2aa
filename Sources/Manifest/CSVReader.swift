/// A streaming RFC 4180 CSV reader over a `ByteSource`: quoted fields with `""` escapes and embedded newlines,
/// CRLF or LF line ends. Hand-written rather than a CSV library because the libraries here read whole files into
/// memory (SwiftCSV) or cost several times more per row (CSV.swift), and submit must stream millions of rows.
/// https://www.rfc-editor.org/rfc/rfc4180
public final class CSVReader {
    private let source: ByteSource
    private let chunk: UnsafeMutableRawBufferPointer
    private var chunkStart = 0
    private var chunkEnd = 0
    private var atEnd = false
    /// Line number (1-based) of the next byte to be read.
    private var line = 1

    /// The current record's bytes, fields back to back; `fieldEnds[i]` is the end offset of field i.
    private(set) var bytes: [UInt8] = []
    private(set) var fieldEnds: [Int] = []
    /// The line on which the current record starts.
    public private(set) var recordLine = 0

    public init(source: ByteSource, chunkSize: Int = 1 << 18) {
        self.source = source
        chunk = .allocate(byteCount: chunkSize, alignment: 1)
        bytes.reserveCapacity(2048)
        fieldEnds.reserveCapacity(16)
    }

    deinit { chunk.deallocate() }

    public var fieldCount: Int { fieldEnds.count }
    /// The source's name, for error messages.
    public var sourceName: String { source.name }

    /// Calls `body` with field `index`'s bytes.
    public func withField<T>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) throws -> T) rethrows -> T {
        let start = index == 0 ? 0 : fieldEnds[index - 1]
        return try bytes.withUnsafeBufferPointer { all in
            try body(UnsafeBufferPointer(rebasing: all[start..<fieldEnds[index]]))
        }
    }

    public func field(_ index: Int) -> String {
        withField(index) { String(decoding: $0, as: UTF8.self) }
    }

    private func nextByte() throws -> UInt8? {
        if chunkStart == chunkEnd {
            if atEnd { return nil }
            chunkEnd = try source.read(into: chunk)
            chunkStart = 0
            if chunkEnd == 0 {
                atEnd = true
                return nil
            }
        }
        let b = chunk.load(fromByteOffset: chunkStart, as: UInt8.self)
        chunkStart += 1
        return b
    }

    private func peekByte() throws -> UInt8? {
        guard let b = try nextByte() else { return nil }
        chunkStart -= 1
        return b
    }

    /// Reads the next record; false at the end of the input. Blank lines are skipped.
    /// Throws `ManifestError` for an unterminated quote or text after a closing quote.
    public func next() throws -> Bool {
        while true {
            bytes.removeAll(keepingCapacity: true)
            fieldEnds.removeAll(keepingCapacity: true)
            recordLine = line
            guard let first = try peekByte() else { return false }
            if first == 0x0A || first == 0x0D {
                // A blank line: skip it (a trailing newline at the end of a file is common).
                _ = try nextByte()
                if first == 0x0D, try peekByte() == 0x0A { _ = try nextByte() }
                line += 1
                continue
            }
            try readRecord()
            return true
        }
    }

    private func readRecord() throws {
        var inQuotes = false
        var fieldStartedQuoted = false
        var afterClosingQuote = false
        while let b = try nextByte() {
            if inQuotes {
                if b == 0x22 {  // "
                    if try peekByte() == 0x22 {
                        _ = try nextByte()
                        bytes.append(0x22)
                    } else {
                        inQuotes = false
                        afterClosingQuote = true
                    }
                } else {
                    if b == 0x0A { line += 1 }
                    bytes.append(b)
                }
                continue
            }
            switch b {
            case 0x2C:  // ,
                fieldEnds.append(bytes.count)
                fieldStartedQuoted = false
                afterClosingQuote = false
            case 0x0A:
                line += 1
                fieldEnds.append(bytes.count)
                return
            case 0x0D:
                if try peekByte() == 0x0A { _ = try nextByte() }
                line += 1
                fieldEnds.append(bytes.count)
                return
            case 0x22 where !afterClosingQuote && !fieldStartedQuoted && fieldStartIsEmpty:
                inQuotes = true
                fieldStartedQuoted = true
            default:
                if afterClosingQuote {
                    throw ManifestError(file: source.name, line: recordLine,
                                        problem: "unexpected text after a closing quote (RFC 4180: a quote inside a quoted field is written \"\")")
                }
                if b == 0x22 {
                    throw ManifestError(file: source.name, line: recordLine,
                                        problem: "a quote inside an unquoted field (quote the whole field and double the quote)")
                }
                bytes.append(b)
            }
        }
        if inQuotes {
            throw ManifestError(file: source.name, line: recordLine, problem: "a quoted field is not closed before the end of the file")
        }
        fieldEnds.append(bytes.count)
    }

    private var fieldStartIsEmpty: Bool { bytes.count == (fieldEnds.last ?? 0) }
}
