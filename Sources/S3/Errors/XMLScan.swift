import Domain
import Foundation
/// A minimal scanner for S3's flat XML documents (errors, list pages). Hand-written: S3's responses are simple,
/// and FoundationXML would pull libxml2 into the hot path for error bodies.
enum XMLScan {
    /// The text of the first `<tag>…</tag>` in `xml`, entities decoded; "" for `<tag/>`; nil when absent.
    /// Searched as bytes: Foundation's `range(of:)` goes through CFString on Linux, which was most of the cost of
    /// reading an error answer.
    static func first(_ element: XMLElementTag, in xml: [UInt8]) -> String? {
        guard let inner = element.inner(in: xml) else {
            return ByteSearch.find(element.empty, in: xml) != nil ? "" : nil
        }
        return unescape(xml[inner])
    }

    static func first(_ tag: String, in xml: [UInt8]) -> String? { first(XMLElementTag(tag), in: xml) }

    static func first(_ tag: String, in xml: Substring) -> String? { first(tag, in: Array(xml.utf8)) }

    static func first(_ tag: String, in xml: String) -> String? { first(tag, in: Array(xml.utf8)) }

    /// Every `<tag>…</tag>` element's inner text, in order (e.g. each `<Contents>` of a list page).
    static func all(_ tag: String, in xml: String) -> [Substring] {
        let bytes = Array(xml.utf8)
        let u = xml.utf8
        var result: [Substring] = []
        let element = XMLElementTag(tag)
        var from = 0
        while let inner = element.inner(in: bytes, from: from) {
            result.append(Substring(u[u.index(u.startIndex, offsetBy: inner.lowerBound)..<u.index(u.startIndex, offsetBy: inner.upperBound)]))
            from = inner.upperBound
        }
        return result
    }

    static func unescape(_ s: Substring) -> String {
        guard s.utf8.contains(0x26) else { return String(s) }  // '&'
        return unescape(Array(s.utf8)[...])
    }

    /// The five predefined entities and numeric character references decoded; anything else kept as it is. Byte by
    /// byte: this runs for every error answer, and walking Characters cost more than the rest of reading one.
    static func unescape(_ s: ArraySlice<UInt8>) -> String {
        guard s.contains(0x26) else { return String(decoding: s, as: UTF8.self) }  // '&'
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = s.startIndex
        while i < s.endIndex {
            if s[i] == 0x26, let semi = s[i..<min(i + 12, s.endIndex)].firstIndex(of: 0x3B),  // '&' … ';'
               let decoded = entity(s[(i + 1)..<semi]) {
                decoded.utf8.forEach { out.append($0) }
                i = semi + 1
                continue
            }
            out.append(s[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `amp`, `lt`, `gt`, `quot`, `apos`, `#N` or `#xH` as the character it stands for; nil for anything else.
    private static func entity(_ name: ArraySlice<UInt8>) -> Unicode.Scalar? {
        switch String(decoding: name, as: UTF8.self) {
        case "amp": return "&"
        case "lt": return "<"
        case "gt": return ">"
        case "quot": return "\""
        case "apos": return "'"
        case let n where n.hasPrefix("#x"): return UInt32(n.dropFirst(2), radix: 16).flatMap(Unicode.Scalar.init)
        case let n where n.hasPrefix("#"): return UInt32(n.dropFirst()).flatMap(Unicode.Scalar.init)
        default: return nil
        }
    }
}
