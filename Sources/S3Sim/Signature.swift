import Domain
import Foundation
import S3

/// The parts of a SigV4 `Authorization` header, as ranges of the request's field bytes (ranges, not slices: a slice
/// retains the buffer each time it is copied, and this runs for every request).
/// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-auth-using-authorization-header.html
struct AuthorizationHeader {
    /// `AKID/day/region/service/aws4_request` as sent.
    var credential = 0..<0
    var accessKeyID = 0..<0
    var day = 0..<0
    var region = 0..<0
    var service = 0..<0
    var terminator = 0..<0
    var signedHeaders = 0..<0
    var signature = 0..<0

    static let scheme = Array("AWS4-HMAC-SHA256 ".utf8)

    /// Parses `AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…` in `bytes[value]`; nil when malformed.
    init?(_ bytes: UnsafeBufferPointer<UInt8>, _ value: Range<Int>) {
        guard value.count >= Self.scheme.count, memcmp(bytes.baseAddress! + value.lowerBound, Self.scheme, Self.scheme.count) == 0
        else { return nil }
        func find(_ byte: UInt8, in r: Range<Int>) -> Int {
            ByteSearch.index(of: byte, in: UnsafeRawBufferPointer(bytes), r) ?? r.upperBound
        }
        func equals(_ r: Range<Int>, _ text: StaticString) -> Bool {
            r.count == text.utf8CodeUnitCount && memcmp(bytes.baseAddress! + r.lowerBound, text.utf8Start, r.count) == 0
        }
        var start = value.lowerBound + Self.scheme.count
        while true {
            let end = find(0x2C, in: start..<value.upperBound)  // ','
            var partStart = start
            while partStart < end, bytes[partStart] == 0x20 { partStart += 1 }
            let eq = find(0x3D, in: partStart..<end)  // '='
            guard eq < end else { return nil }
            let name = partStart..<eq
            let v = (eq + 1)..<end
            if equals(name, "Credential") {
                credential = v
                // AKID/day/region/service/aws4_request: exactly five parts, read without an array per request.
                func part(from start: Int) -> Range<Int> { start..<find(0x2F, in: start..<v.upperBound) }  // '/'
                accessKeyID = part(from: v.lowerBound)
                guard accessKeyID.upperBound < v.upperBound else { return nil }
                day = part(from: accessKeyID.upperBound + 1)
                guard day.upperBound < v.upperBound else { return nil }
                region = part(from: day.upperBound + 1)
                guard region.upperBound < v.upperBound else { return nil }
                service = part(from: region.upperBound + 1)
                guard service.upperBound < v.upperBound else { return nil }
                terminator = part(from: service.upperBound + 1)
                guard terminator.upperBound == v.upperBound else { return nil }
            } else if equals(name, "SignedHeaders") {
                signedHeaders = v
            } else if equals(name, "Signature") {
                signature = v
            } else {
                return nil
            }
            guard end < value.upperBound else { break }
            start = end + 1
        }
        if accessKeyID.isEmpty || signedHeaders.isEmpty || signature.isEmpty { return nil }
    }
}

/// The canonical request and string to sign, computed from the server's side: the path and query decoded as received
/// and encoded again once, the signed headers' values as received. Built as bytes: this runs for every request.
/// https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
enum CanonicalRequest {
    enum Problem: Error { case malformedURI, headersNotSorted, missingSignedHeader }

    static func build(_ request: SimRequest, authorization auth: AuthorizationHeader, payloadHash: Range<Int>) throws(Problem)
        -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(1024)
        out += request.method.utf8
        out.append(0x0A)
        var uri = request.uri
        let uriOK = uri.withUTF8 { raw -> Bool in
            let q = raw.firstIndex(of: 0x3F)  // '?'
            guard URIEncoding.appendReencoded(UnsafeBufferPointer(rebasing: raw[..<(q ?? raw.endIndex)]), keepSlash: true, to: &out)
            else { return false }
            out.append(0x0A)
            guard let q else { return true }
            return appendQuery(raw[(q + 1)...], to: &out)
        }
        guard uriOK else { throw .malformedURI }
        out.append(0x0A)
        let problem = request.fieldBytes.withUnsafeBufferPointer { fb -> Problem? in
            // Bytes go to `out` directly, not through a nested function: one capturing `out` boxed it, and every
            // append in this closure then checked exclusive access at run time.
            func same(_ a: Range<Int>, _ b: Range<Int>) -> Bool {
                a.count == b.count && memcmp(fb.baseAddress! + a.lowerBound, fb.baseAddress! + b.lowerBound, a.count) == 0
            }
            var previous: Range<Int>?
            var start = auth.signedHeaders.lowerBound
            while start < auth.signedHeaders.upperBound {
                var end = start
                while end < auth.signedHeaders.upperBound, fb[end] != 0x3B { end += 1 }  // ';'
                let name = start..<end
                start = end + 1
                // The list must be sorted and without repeats, as every SDK sends it; S3 rejects anything else.
                if let previous, !fb[previous].lexicographicallyPrecedes(fb[name]) { return .headersNotSorted }
                previous = name
                out.append(contentsOf: UnsafeBufferPointer(rebasing: fb[name]))
                out.append(0x3A)
                var found = false
                for f in request.fields where same(Int(f.nameStart)..<Int(f.nameEnd), name) {
                    if found { out.append(0x2C) }  // repeated fields fold into one line, comma-separated
                    SigV4Signer.appendCanonicalValue(UnsafeBufferPointer(rebasing: fb[Int(f.valueStart)..<Int(f.valueEnd)]), to: &out)
                    found = true
                }
                guard found else { return .missingSignedHeader }
                out.append(0x0A)
            }
            out.append(0x0A)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: fb[auth.signedHeaders]))
            out.append(0x0A)
            out.append(contentsOf: UnsafeBufferPointer(rebasing: fb[payloadHash]))
            return nil
        }
        if let problem { throw problem }
        return out
    }

    /// Name/value pairs decoded and encoded again, sorted by name then value (bytes), joined with `&`.
    /// False when an escape is malformed.
    static func appendQuery(_ raw: UnsafeBufferPointer<UInt8>.SubSequence, to out: inout [UInt8]) -> Bool {
        // One pair (`?encryption`, the usual case) needs no sorting and no buffer of its own.
        if raw.isEmpty { return true }
        if !raw.contains(0x26) {  // '&'
            let eq = raw.firstIndex(of: 0x3D) ?? raw.endIndex
            guard URIEncoding.appendReencoded(UnsafeBufferPointer(rebasing: raw[..<eq]), keepSlash: false, to: &out) else { return false }
            out.append(0x3D)
            if eq != raw.endIndex {
                guard URIEncoding.appendReencoded(UnsafeBufferPointer(rebasing: raw[(eq + 1)...]), keepSlash: false, to: &out) else { return false }
            }
            return true
        }
        var pairs: [[UInt8]] = []
        for pair in raw.split(separator: 0x26) {  // '&'
            var encoded: [UInt8] = []
            encoded.reserveCapacity(pair.count + 8)
            let eq = pair.firstIndex(of: 0x3D) ?? pair.endIndex
            guard URIEncoding.appendReencoded(UnsafeBufferPointer(rebasing: pair[..<eq]), keepSlash: false, to: &encoded) else { return false }
            encoded.append(0x3D)
            if eq != pair.endIndex {
                guard URIEncoding.appendReencoded(UnsafeBufferPointer(rebasing: pair[(eq + 1)...]), keepSlash: false, to: &encoded) else { return false }
            }
            pairs.append(encoded)
        }
        if pairs.count > 1 {
            // '=' sorts before every encoded name byte, so comparing "name=value" sorts by name, then value.
            pairs.sort { $0.lexicographicallyPrecedes($1) }
        }
        for (i, pair) in pairs.enumerated() {
            if i > 0 { out.append(0x26) }
            out += pair
        }
        return true
    }
}
