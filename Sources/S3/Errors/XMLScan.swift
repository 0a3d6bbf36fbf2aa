import Foundation
/// A minimal scanner for S3's flat XML documents (errors, list pages). Hand-written: S3's responses are simple,
/// and FoundationXML would pull libxml2 into the hot path for error bodies.
enum XMLScan {
    /// The text of the first `<tag>…</tag>` in `xml`, entities decoded; nil when absent.
    static func first(_ tag: String, in xml: Substring) -> String? {
        let u = xml.utf8
        guard let open = find("<\(tag)>", in: u, from: u.startIndex) else {
            if find("<\(tag)/>", in: u, from: u.startIndex) != nil { return "" }
            return nil
        }
        guard let close = find("</\(tag)>", in: u, from: open.upperBound) else { return nil }
        return unescape(xml[open.upperBound..<close.lowerBound])
    }

    static func first(_ tag: String, in xml: String) -> String? { first(tag, in: xml[...]) }

    /// The same over raw bytes (an error answer's body, read before any String is made of it).
    static func first(_ tag: String, in xml: [UInt8]) -> String? {
        xml.withUnsafeBufferPointer { p -> String? in
            let open = Array("<\(tag)>".utf8)
            guard let a = find(open, in: p, from: 0) else { return find(Array("<\(tag)/>".utf8), in: p, from: 0) != nil ? "" : nil }
            let start = a + open.count
            guard let b = find(Array("</\(tag)>".utf8), in: p, from: start) else { return nil }
            return unescape(Substring(String(decoding: UnsafeBufferPointer(rebasing: p[start..<b]), as: UTF8.self)))
        }
    }

    private static func find(_ n: [UInt8], in p: UnsafeBufferPointer<UInt8>, from start: Int) -> Int? {
        guard !n.isEmpty, p.count - start >= n.count else { return nil }
        var i = start
        while i <= p.count - n.count {
            if p[i] == n[0] && memcmp(p.baseAddress! + i, n, n.count) == 0 { return i }
            i += 1
        }
        return nil
    }

    /// Every `<tag>…</tag>` element's inner text, in order (e.g. each `<Contents>` of a list page).
    static func all(_ tag: String, in xml: String) -> [Substring] {
        var result: [Substring] = []
        let u = xml.utf8
        var from = u.startIndex
        while let open = find("<\(tag)>", in: u[...], from: from), let close = find("</\(tag)>", in: u[...], from: open.upperBound) {
            result.append(xml[open.upperBound..<close.lowerBound])
            from = close.upperBound
        }
        return result
    }

    /// Byte search over UTF-8 (Foundation's `range(of:)` goes through CFString on Linux: it was most of the cost of
    /// reading an error answer). Tags are ASCII, so the indices found are valid String indices.
    private static func find(_ needle: String, in u: Substring.UTF8View, from start: String.Index) -> Range<String.Index>? {
        let n = Array(needle.utf8)
        guard let first = n.first else { return nil }
        var i = start
        while let hit = u[i...].firstIndex(of: first) {
            var j = hit
            var k = 0
            while k < n.count, j < u.endIndex, u[j] == n[k] {
                u.formIndex(after: &j)
                k += 1
            }
            if k == n.count { return hit..<j }
            i = u.index(after: hit)
        }
        return nil
    }

    static func unescape(_ s: Substring) -> String {
        guard s.utf8.contains(0x26) else { return String(s) }  // '&'

        var out = ""
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == "&", let semi = s[i...].firstIndex(of: ";"), s.distance(from: i, to: semi) <= 10 {
                let entity = s[s.index(after: i)..<semi]
                var replacement: String?
                switch entity {
                case "amp": replacement = "&"
                case "lt": replacement = "<"
                case "gt": replacement = ">"
                case "quot": replacement = "\""
                case "apos": replacement = "'"
                default:
                    if entity.hasPrefix("#x"), let v = UInt32(entity.dropFirst(2), radix: 16), let u = Unicode.Scalar(v) {
                        replacement = String(u)
                    } else if entity.hasPrefix("#"), let v = UInt32(entity.dropFirst()), let u = Unicode.Scalar(v) {
                        replacement = String(u)
                    }
                }
                if let replacement {
                    out += replacement
                    i = s.index(after: semi)
                    continue
                }
            }
            out.append(s[i])
            i = s.index(after: i)
        }
        return out
    }
}
