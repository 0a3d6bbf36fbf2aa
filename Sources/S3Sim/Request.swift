import Foundation
import S3

/// A request as the server received it.
///
/// Header names are lowercased once, when the head is parsed (HTTP field names are case-insensitive, and SigV4 wants
/// them lowercase), and names and values stay bytes in one buffer: the signature check reads them as bytes, and a
/// `String` per header field cost a third of the simulator's time per request.
public struct SimRequest: Sendable {
    public var method: String
    /// The request target as sent: raw path and query, still percent-encoded.
    public var uri: String
    public var body: [UInt8]
    /// The fields' names (lowercased) and values (trimmed of surrounding blanks): as received, the head's field lines
    /// copied whole, or, for a request built from pairs, each name then its value.
    private(set) var fieldBytes: [UInt8]
    private(set) var fields: [Field]

    /// One header field: its name is `fieldBytes[nameStart..<nameEnd]`, its value `[valueStart..<valueEnd]`.
    struct Field: Sendable {
        var nameStart: Int32
        var nameEnd: Int32
        var valueStart: Int32
        var valueEnd: Int32
    }

    public init(method: String, uri: String, headers: [(name: String, value: String)], body: [UInt8]) {
        var builder = FieldsBuilder(capacity: headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count })
        for (name, value) in headers {
            Array(name.utf8).withUnsafeBytes { n in Array(value.utf8).withUnsafeBytes { v in _ = builder.add(name: n, value: v) } }
        }
        self.init(method: method, uri: uri, fields: builder, body: body)
    }

    init(method: String, uri: String, fields: FieldsBuilder, body: [UInt8]) {
        self.method = method
        self.uri = uri
        self.body = body
        self.fieldBytes = fields.bytes
        self.fields = fields.fields
    }

    func name(_ f: Field) -> ArraySlice<UInt8> { fieldBytes[Int(f.nameStart)..<Int(f.nameEnd)] }
    func value(_ f: Field) -> ArraySlice<UInt8> { fieldBytes[Int(f.valueStart)..<Int(f.valueEnd)] }

    /// The value of the first field named `lowercaseName`, as bytes.
    func headerBytes(_ lowercaseName: String) -> ArraySlice<UInt8>? {
        headerRange(lowercaseName).map { fieldBytes[$0] }
    }

    /// Where the value of the first field named `lowercaseName` is in `fieldBytes`.
    /// Asked about seven times a request: one pass over the buffer, lengths compared before any bytes (a slice per
    /// field, each retaining the buffer, was 3% of the simulator's instructions).
    func headerRange(_ lowercaseName: String) -> Range<Int>? {
        var name = lowercaseName
        return name.withUTF8 { n in
            fieldBytes.withUnsafeBufferPointer { b in
                for f in fields where Int(f.nameEnd - f.nameStart) == n.count {
                    if n.isEmpty || memcmp(b.baseAddress! + Int(f.nameStart), n.baseAddress!, n.count) == 0 {
                        return Int(f.valueStart)..<Int(f.valueEnd)
                    }
                }
                return nil
            }
        }
    }

    /// `fieldBytes[range]` as text (for messages).
    func text(_ range: Range<Int>) -> String { String(decoding: fieldBytes[range], as: UTF8.self) }

    /// The value of the first field named `lowercaseName`.
    func header(_ lowercaseName: String) -> String? {
        headerBytes(lowercaseName).map { String(decoding: $0, as: UTF8.self) }
    }

    /// Every field, names lowercased, in the order received (for the rare paths that want Strings).
    public var headers: [(name: String, value: String)] {
        fields.map { (String(decoding: name($0), as: UTF8.self), String(decoding: value($0), as: UTF8.self)) }
    }
}

/// Collects header fields into `SimRequest`'s layout, lowercasing names.
struct FieldsBuilder {
    var bytes: [UInt8] = []
    var fields: [SimRequest.Field] = []

    init(capacity: Int) {
        bytes.reserveCapacity(capacity)
        fields.reserveCapacity(16)
    }

    /// Adds one field; returns its lowercased name.
    @discardableResult
    mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) -> ArraySlice<UInt8> {
        let nameStart = bytes.count
        // Copied whole, then lowercased in place by `addField`: appending byte by byte checked the buffer's uniqueness
        // per byte.
        bytes.append(contentsOf: name)
        let valueStart = bytes.count
        bytes.append(contentsOf: value)
        return addField(name: nameStart..<valueStart, value: valueStart..<bytes.count)
    }

    /// The head's field lines, copied whole in one append (two small appends per field cost 1.5% of the simulator's
    /// instructions); `addField` then marks each field in them. Offsets are relative to the start of `lines`.
    init(lines: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: lines)
        fields.reserveCapacity(16)
    }

    /// Marks a field already in `bytes` (the lines given to `init(lines:)`, or what `add` appended), lowercasing its
    /// name in place; returns the name.
    @discardableResult
    mutating func addField(name: Range<Int>, value: Range<Int>) -> ArraySlice<UInt8> {
        bytes.withUnsafeMutableBufferPointer { b in
            for i in name { b[i] = ASCII.lowercased(b[i]) }
        }
        fields.append(.init(nameStart: Int32(name.lowerBound), nameEnd: Int32(name.upperBound), valueStart: Int32(value.lowerBound),
                            valueEnd: Int32(value.upperBound)))
        return bytes[name]
    }
}

extension ArraySlice<UInt8> {
    /// Whether the bytes equal `text`'s UTF-8 (a length check, then memcmp: a generic walk over `String.UTF8View`
    /// was a visible share of every request).
    func equals(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { t in
            guard t.count == count else { return false }
            guard count > 0 else { return true }
            return withUnsafeBufferPointer { memcmp($0.baseAddress!, t.baseAddress!, count) == 0 }
        }
    }

    /// Whether the bytes begin with `prefix`, by memcmp (`starts(with:)` walks them one element at a time; every
    /// field of every request is asked whether it is an `x-amz-` header).
    func hasPrefix(_ prefix: [UInt8]) -> Bool {
        guard count >= prefix.count else { return false }
        guard !prefix.isEmpty else { return true }
        return withUnsafeBufferPointer { a in prefix.withUnsafeBufferPointer { b in memcmp(a.baseAddress!, b.baseAddress!, b.count) == 0 } }
    }

    /// Whether the bytes equal `other`'s, by memcmp (`==` walks them one element at a time).
    func equals(_ other: ArraySlice<UInt8>) -> Bool {
        guard count == other.count else { return false }
        guard count > 0 else { return true }
        return withUnsafeBufferPointer { a in other.withUnsafeBufferPointer { b in memcmp(a.baseAddress!, b.baseAddress!, count) == 0 } }
    }
}
