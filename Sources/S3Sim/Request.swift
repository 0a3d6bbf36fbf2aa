import Foundation

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
    /// Each field's lowercased name, then its value (trimmed of surrounding blanks), back to back.
    private(set) var fieldBytes: [UInt8]
    private(set) var fields: [Field]

    /// One header field: its name is `fieldBytes[nameStart..<valueStart]`, its value `[valueStart..<valueEnd]`.
    struct Field: Sendable {
        var nameStart: Int32
        var valueStart: Int32
        var valueEnd: Int32
    }

    public init(method: String, uri: String, headers: [(name: String, value: String)], body: [UInt8]) {
        var builder = FieldsBuilder(capacity: headers.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count })
        for (name, value) in headers {
            Array(name.utf8).withUnsafeBytes { n in Array(value.utf8).withUnsafeBytes { v in builder.add(name: n, value: v) } }
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

    func name(_ f: Field) -> ArraySlice<UInt8> { fieldBytes[Int(f.nameStart)..<Int(f.valueStart)] }
    func value(_ f: Field) -> ArraySlice<UInt8> { fieldBytes[Int(f.valueStart)..<Int(f.valueEnd)] }

    /// The value of the first field named `lowercaseName`, as bytes.
    func headerBytes(_ lowercaseName: some Collection<UInt8>) -> ArraySlice<UInt8>? {
        for f in fields where name(f).elementsEqual(lowercaseName) { return value(f) }
        return nil
    }

    /// The value of the first field named `lowercaseName`.
    func header(_ lowercaseName: String) -> String? {
        headerBytes(lowercaseName.utf8).map { String(decoding: $0, as: UTF8.self) }
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

    mutating func add(name: UnsafeRawBufferPointer, value: UnsafeRawBufferPointer) {
        let nameStart = Int32(bytes.count)
        for b in name { bytes.append(b >= 0x41 && b <= 0x5A ? b | 0x20 : b) }
        let valueStart = Int32(bytes.count)
        bytes.append(contentsOf: value)
        fields.append(.init(nameStart: nameStart, valueStart: valueStart, valueEnd: Int32(bytes.count)))
    }
}

extension Collection<UInt8> {
    /// Whether the bytes start with `prefix`.
    func hasBytePrefix(_ prefix: some Collection<UInt8>) -> Bool { starts(with: prefix) }

    /// Whether the bytes equal `text`'s UTF-8.
    func equals(_ text: String) -> Bool { elementsEqual(text.utf8) }
}
