/// A minimal scanner for S3's flat XML documents (errors, list pages). Hand-written: S3's responses are simple,
/// and FoundationXML would pull libxml2 into the hot path for error bodies.
enum XMLScan {
    /// The text of the first `<tag>…</tag>` in `xml`, entities decoded; nil when absent.
    static func first(_ tag: String, in xml: Substring) -> String? {
        guard let open = xml.range(of: "<\(tag)>") else {
            if xml.contains("<\(tag)/>") { return "" }
            return nil
        }
        guard let close = xml.range(of: "</\(tag)>", range: open.upperBound..<xml.endIndex) else { return nil }
        return unescape(xml[open.upperBound..<close.lowerBound])
    }

    static func first(_ tag: String, in xml: String) -> String? { first(tag, in: xml[...]) }

    /// Every `<tag>…</tag>` element's inner text, in order (e.g. each `<Contents>` of a list page).
    static func all(_ tag: String, in xml: String) -> [Substring] {
        var result: [Substring] = []
        var rest = xml[...]
        while let open = rest.range(of: "<\(tag)>"),
              let close = rest.range(of: "</\(tag)>", range: open.upperBound..<rest.endIndex) {
            result.append(rest[open.upperBound..<close.lowerBound])
            rest = rest[close.upperBound...]
        }
        return result
    }

    static func unescape(_ s: Substring) -> String {
        guard s.contains("&") else { return String(s) }
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
