import Domain

/// Decoding of the URL-encoded keys in manifests.
///
/// S3 Inventory writes keys form-encoded (space as `+`, a literal `+` as `%2B`), and S3 Batch Operations reads
/// inventory reports as manifests, so `+` decodes to a space here too; a literal `+` in a hand-written manifest must
/// be written `%2B` (Python's `urllib.parse.quote` does so).
/// https://docs.aws.amazon.com/AmazonS3/latest/userguide/batch-ops-create-job.html
public enum PercentDecoding {
    /// The decoded UTF-8 string, or the problem with `bytes`.
    public static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> Result<String, InvalidInput> {
        // Fast path: nothing to decode.
        if !bytes.contains(where: { $0 == 0x25 || $0 == 0x2B }) {
            guard let s = String(validating: bytes, as: UTF8.self) else {
                return .failure(InvalidInput("is not valid UTF-8"))
            }
            return .success(s)
        }
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b = bytes[i]
            if b == 0x25 {
                guard i + 2 < bytes.count, let hi = HexDigit.value(bytes[i + 1]), let lo = HexDigit.value(bytes[i + 2]) else {
                    let end = min(i + 3, bytes.count)
                    let shown = String(decoding: UnsafeBufferPointer(rebasing: bytes[i..<end]), as: UTF8.self)
                    return .failure(InvalidInput("has bad percent-encoding '\(shown)' at byte \(i + 1) (expected % and two hex digits)"))
                }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(b == 0x2B ? 0x20 : b)
                i += 1
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else {
            return .failure(InvalidInput("is not valid UTF-8 once percent-decoded"))
        }
        return .success(s)
    }
}
