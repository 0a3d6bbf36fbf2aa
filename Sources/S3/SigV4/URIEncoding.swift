import Domain
/// SigV4's URI encoding: every byte except the unreserved `A-Z a-z 0-9 - . _ ~` as `%XX` (uppercase hex).
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
public enum URIEncoding {
    private static let hex = Array("0123456789ABCDEF".utf8)

    @inline(__always)
    static func isUnreserved(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39)
            || b == 0x2D || b == 0x2E || b == 0x5F || b == 0x7E
    }

    /// Appends the encoding of `s` to `out`; `keepSlash` leaves `/` as is (paths), else it becomes `%2F` (query).
    public static func append(_ s: some StringProtocol, keepSlash: Bool, to out: inout [UInt8]) {
        let done: Void? = s.utf8.withContiguousStorageIfAvailable { append($0, keepSlash: keepSlash, to: &out) }
        if done == nil {
            for b in s.utf8 { append(byte: b, keepSlash: keepSlash, to: &out) }
        }
    }

    /// Runs of bytes that stay as they are are copied whole: a key is mostly such a run, and appending byte by byte
    /// checks the array's capacity and uniqueness for each (the signer encodes every request's key and version twice).
    static func append(_ bytes: UnsafeBufferPointer<UInt8>, keepSlash: Bool, to out: inout [UInt8]) {
        var run = 0
        for i in bytes.indices {
            let b = bytes[i]
            if isUnreserved(b) || (keepSlash && b == 0x2F) { continue }
            if run < i { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i])) }
            append(byte: b, keepSlash: keepSlash, to: &out)
            run = i + 1
        }
        if run < bytes.count { out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...])) }
    }

    @inline(__always)
    static func append(byte b: UInt8, keepSlash: Bool, to out: inout [UInt8]) {
        if isUnreserved(b) || (keepSlash && b == 0x2F) {
            out.append(b)
        } else {
            out.append(0x25)
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 0x0F)])
        }
    }

    /// Appends `raw` as a server canonicalises what it received: each `%XX` decoded, then every byte encoded once.
    /// Returns false (having appended part) when an escape is malformed.
    /// (Concrete, not generic: an unspecialised generic across modules walks the bytes through witness tables.)
    public static func appendReencoded(_ raw: UnsafeBufferPointer<UInt8>, keepSlash: Bool, to out: inout [UInt8]) -> Bool {
        var i = raw.startIndex
        while i != raw.endIndex {
            var b = raw[i]
            raw.formIndex(after: &i)
            if b == 0x25 {
                guard i != raw.endIndex, let h = HexDigit.value(raw[i]) else { return false }
                raw.formIndex(after: &i)
                guard i != raw.endIndex, let l = HexDigit.value(raw[i]) else { return false }
                raw.formIndex(after: &i)
                b = h << 4 | l
            }
            append(byte: b, keepSlash: keepSlash, to: &out)
        }
        return true
    }

    public static func encode(_ s: some StringProtocol, keepSlash: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count + 8)
        append(s, keepSlash: keepSlash, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Percent-decodes `s` (as a server reads a request line); nil when an escape is malformed.
    /// `+` stays `+`: in a path it is a literal plus, and SigV4 query strings encode spaces as `%20`.
    public static func decode(_ s: some StringProtocol) -> String? {
        // No escapes: no copy of the bytes. (One call through the protocol, not one per byte: this is generic across
        // modules, so it is not specialised for the simulator's Substrings.)
        let escaped = s.utf8.withContiguousStorageIfAvailable {
            ByteSearch.index(of: 0x25, in: UnsafeRawBufferPointer($0), 0..<$0.count) != nil
        }
        guard escaped ?? s.utf8.contains(0x25) else { return String(s) }
        let bytes = Array(s.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            if bytes[i] == 0x25 {
                guard i + 2 < bytes.count, let h = HexDigit.value(bytes[i + 1]), let l = HexDigit.value(bytes[i + 2]) else { return nil }
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }
}
