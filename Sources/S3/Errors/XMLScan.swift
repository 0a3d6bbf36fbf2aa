import Domain
import Foundation
/// A minimal scanner for S3's flat XML documents (errors, list pages). Hand-written: S3's responses are simple,
/// and FoundationXML would pull libxml2 into the hot path for error bodies.
enum XMLScan {
    /// The text of the first `<tag>…</tag>` in `xml`, entities decoded; "" for `<tag/>`; nil when absent.
    /// Searched as bytes: Foundation's `range(of:)` goes through CFString on Linux, which was most of the cost of
    /// reading an error answer.
    static func first(_ tag: String, in xml: [UInt8]) -> String? {
        guard let inner = XMLElementTag(tag).inner(in: xml) else {
            return ByteSearch.find(Array("<\(tag)/>".utf8), in: xml) != nil ? "" : nil
        }
        return unescape(Substring(String(decoding: xml[inner], as: UTF8.self)))
    }

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
