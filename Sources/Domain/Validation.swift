import Foundation
/// A full KMS key ARN, checked against the service model's pattern before anything is stored:
/// `arn:aws[-a-z0-9]*:kms:[-a-z0-9]*:[0-9]{12}:key/.+` (no alias, no bare key id).
/// https://docs.aws.amazon.com/AmazonS3/latest/API/API_SSEKMSEncryption.html
public struct KMSKeyARN: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String
    public var description: String { rawValue }

    /// Throws a `InvalidInput` saying what is wrong with `string`.
    public init(_ string: String) throws(InvalidInput) {
        guard Self.matchesPattern(string) else {
            var hint = ""
            if string.contains("alias/") { hint = " (an alias is not accepted; give the key's ARN)" }
            else if !string.hasPrefix("arn:") { hint = " (a bare key id is not accepted; give the key's full ARN)" }
            throw InvalidInput("'\(string)' is not a KMS key ARN of the form arn:aws:kms:REGION:ACCOUNT:key/KEY-ID\(hint)")
        }
        rawValue = string
    }

    /// `arn:aws[-a-z0-9]*:kms:[-a-z0-9]*:[0-9]{12}:key/.+`, hand-matched: a Swift regex literal is compiled at each
    /// use, which the simulator's request path cannot afford.
    public static func matchesPattern(_ string: String) -> Bool {
        var string = string
        return string.withUTF8 { s in
            var i = 0
            func take(_ literal: StaticString) -> Bool {
                let n = literal.utf8CodeUnitCount
                guard s.count - i >= n, memcmp(s.baseAddress! + i, literal.utf8Start, n) == 0 else { return false }
                i += n
                return true
            }
            func skip(while allowed: (UInt8) -> Bool) -> Int {
                let start = i
                while i < s.count, allowed(s[i]) { i += 1 }
                return i - start
            }
            let lowerDigitDash: (UInt8) -> Bool = { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
            guard take("arn:aws") else { return false }
            _ = skip(while: lowerDigitDash)
            guard take(":kms:") else { return false }
            _ = skip(while: lowerDigitDash)
            guard take(":"), skip(while: { $0 >= 0x30 && $0 <= 0x39 }) == 12, take(":key/") else { return false }
            return i < s.count
        }
    }

    /// The 12-digit account that owns the key.
    public var account: String { Self.account(ofARN: rawValue) }

    /// The account field (the fifth `:`-separated one) of a string that `matchesPattern`; "" when there is none.
    /// Scanned, not split: the simulator reads it for every UpdateObjectEncryption.
    public static func account(ofARN arn: String) -> String {
        var colons = 0
        var start = arn.utf8.startIndex
        for i in arn.utf8.indices where arn.utf8[i] == 0x3A {
            colons += 1
            if colons == 4 { start = arn.utf8.index(after: i) }
            if colons == 5 { return String(arn[start..<i]) }
        }
        return ""
    }
    /// The key's region.
    public var region: String { String(rawValue.split(separator: ":", omittingEmptySubsequences: false)[3]) }
}

/// A 12-digit AWS account id.
public struct AccountID: Sendable, Hashable, CustomStringConvertible {
    public let rawValue: String
    public var description: String { rawValue }
    public init(_ string: String) throws(InvalidInput) {
        guard string.utf8.count == 12, string.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else {
            throw InvalidInput("'\(string)' is not a 12-digit AWS account id")
        }
        rawValue = string
    }
}

/// A problem with input, phrased for the person who supplied it.
public struct InvalidInput: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// S3's naming rules for general purpose buckets.
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
public enum BucketName {
    /// nil when `name` is a valid bucket name, else the rule it breaks.
    public static func problem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        if bytes.isEmpty { return "the bucket name is empty" }
        if bytes.count < 3 || bytes.count > 63 { return "bucket name '\(name)' must be 3 to 63 characters long" }
        func isLowerOrDigit(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        for b in bytes where !(isLowerOrDigit(b) || b == 0x2E || b == 0x2D) {
            return "bucket name '\(name)' may hold only lowercase letters, digits, '.' and '-'"
        }
        if !isLowerOrDigit(bytes[0]) || !isLowerOrDigit(bytes[bytes.count - 1]) {
            return "bucket name '\(name)' must begin and end with a letter or digit"
        }
        if name.contains("..") { return "bucket name '\(name)' must not hold two adjacent periods" }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4, parts.allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isNumber) }) {
            return "bucket name '\(name)' must not be formatted as an IP address"
        }
        for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] where name.hasPrefix(prefix) {
            return "bucket name '\(name)' must not start with '\(prefix)'"
        }
        for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] where name.hasSuffix(suffix) {
            return "bucket name '\(name)' must not end with '\(suffix)'"
        }
        return nil
    }
}

/// S3 object keys are at most 1,024 bytes of UTF-8. https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html
public enum ObjectKey {
    public static let maxBytes = 1024

    /// A key as manifests and Batch Operations reports carry it: unreserved bytes and `/` kept, space as `+`,
    /// everything else `%XX` (the inverse of how manifests are read).
    public static func urlEncoded(_ key: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(key.utf8.count)
        let hex = Array("0123456789ABCDEF".utf8)
        for b in key.utf8 {
            switch b {
            case 0x41...0x5A, 0x61...0x7A, 0x30...0x39, 0x2D, 0x2E, 0x5F, 0x7E, 0x2F: out.append(b)
            case 0x20: out.append(0x2B)
            default: out += [0x25, hex[Int(b >> 4)], hex[Int(b & 15)]]
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Hexadecimal digits: the percent-decoders of manifests (Manifest) and request paths (S3), and the lowercase hex
/// of digests (SigV4, MD5 checks, report checksums).
public enum HexDigit {
    /// `bytes` as lowercase hex.
    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        append(bytes, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends `bytes` as lowercase hex to `out`.
    public static func append(_ bytes: [UInt8], to out: inout [UInt8]) {
        bytes.withUnsafeBufferPointer { append($0, to: &out) }
    }

    /// Appends `bytes` as lowercase hex to `out`: grown once and written in place (both sides of every signature
    /// hex-encode two digests per request; appending digit by digit checked capacity and uniqueness 128 times).
    public static func append(_ bytes: UnsafeBufferPointer<UInt8>, to out: inout [UInt8]) {
        var at = out.count
        out.append(contentsOf: repeatElement(0, count: bytes.count * 2))
        out.withUnsafeMutableBufferPointer { o in
            for b in bytes {
                o[at] = digit(b >> 4)
                o[at + 1] = digit(b & 0x0F)
                at += 2
            }
        }
    }

    @inline(__always)
    private static func digit(_ nibble: UInt8) -> UInt8 { nibble < 10 ? 0x30 + nibble : 0x57 + nibble }  // 0-9, a-f

    /// Whether `text` is the lowercase hex of `bytes`.
    public static func matches(_ text: ArraySlice<UInt8>, _ bytes: [UInt8]) -> Bool {
        guard text.count == bytes.count * 2 else { return false }
        return text.withUnsafeBufferPointer { t in
            bytes.withUnsafeBufferPointer { b in
                var i = 0
                for byte in b {
                    guard t[i] == digit(byte >> 4), t[i + 1] == digit(byte & 0x0F) else { return false }
                    i += 2
                }
                return true
            }
        }
    }

    /// The value of an ASCII hex digit, or nil.
    @inline(__always)
    public static func value(_ c: UInt8) -> UInt8? {
        switch c {
        case 0x30...0x39: return c - 0x30
        case 0x41...0x46: return c - 0x41 + 10
        case 0x61...0x66: return c - 0x61 + 10
        default: return nil
        }
    }
}

/// Bytes within bytes: a first-byte scan, then memcmp. For request bodies and XML answers, where Foundation's String
/// search would go through CFString on Linux.
public enum ByteSearch {
    /// Where `needle` first starts in `haystack` at or after `start`; nil when absent or when `needle` is empty.
    public static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int = 0) -> Int? {
        haystack.withUnsafeBufferPointer { h in needle.withUnsafeBufferPointer { n in find(n, in: h, from: start) } }
    }

    /// Whether `text` contains `phrase`, compared as bytes. With Foundation loaded, `String.contains(_:)` resolves
    /// to `range(of:)`, which goes through CFString on Linux: microseconds for one short error message.
    public static func contains(_ phrase: String, in text: String) -> Bool {
        guard !phrase.isEmpty else { return true }
        var text = text, phrase = phrase
        return text.withUTF8 { t in phrase.withUTF8 { p in find(p, in: t, from: 0) != nil } }
    }

    /// Where `byte` first occurs in `bytes[range]`, as an offset into `bytes`; nil when absent. libc's memchr: Swift's
    /// generic scans walk validated indices one element at a time, a visible share of the simulator's every request.
    @inlinable
    public static func index(of byte: UInt8, in bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> Int? {
        guard !range.isEmpty, let base = bytes.baseAddress, let hit = memchr(base + range.lowerBound, Int32(byte), range.count)
        else { return nil }
        return base.distance(to: UnsafeRawPointer(hit))
    }

    /// The one search loop behind both.
    static func find(_ n: UnsafeBufferPointer<UInt8>, in h: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        guard !n.isEmpty, start >= 0, h.count - start >= n.count else { return nil }
        var i = start
        while i <= h.count - n.count {
            if h[i] == n[0] && memcmp(h.baseAddress! + i, n.baseAddress!, n.count) == 0 { return i }
            i += 1
        }
        return nil
    }
}

/// An XML element's open and close tags as bytes, made once, and where the element's text is: for S3's flat documents
/// (the client's error answers and list pages, the simulator's request bodies).
public struct XMLElementTag: Sendable {
    public let open: [UInt8]
    public let close: [UInt8]
    /// `<name/>`, the empty element.
    public let empty: [UInt8]

    public init(_ name: String) {
        open = Array("<\(name)>".utf8)
        close = Array("</\(name)>".utf8)
        empty = Array("<\(name)/>".utf8)
    }

    /// Byte offsets of the inner text of the first `<name>…</name>` starting at or after `from`.
    public func inner(in xml: [UInt8], from: Int = 0) -> Range<Int>? {
        guard let a = ByteSearch.find(open, in: xml, from: from),
              let b = ByteSearch.find(close, in: xml, from: a + open.count) else { return nil }
        return (a + open.count)..<b
    }

    /// The inner text of the first such element, as is (entities not decoded).
    public func rawText(in xml: [UInt8]) -> String? {
        inner(in: xml).map { String(decoding: xml[$0], as: UTF8.self) }
    }
}

/// XML character data: `&`, `<`, `>`, `"` and `'` as entities. Byte by byte: the simulator escapes every error message
/// it answers with, and Foundation's `replacingOccurrences` went through CFString there (6% of its time).
public enum XMLText {
    public static func escape(_ s: String) -> String {
        var s = s
        return s.withUTF8 { bytes -> String in
            guard bytes.contains(where: { $0 == 0x26 || $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }) else {
                return String(decoding: bytes, as: UTF8.self)
            }
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count + 16)
            for b in bytes {
                switch b {
                case 0x26: out += "&amp;".utf8
                case 0x3C: out += "&lt;".utf8
                case 0x3E: out += "&gt;".utf8
                case 0x22: out += "&quot;".utf8
                case 0x27: out += "&apos;".utf8
                default: out.append(b)
                }
            }
            return String(decoding: out, as: UTF8.self)
        }
    }
}
