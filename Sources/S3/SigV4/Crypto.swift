import Domain
import COpenSSL
import CZlib
import Foundation

/// Digests the signer and the checksum header need, through OpenSSL (libssl-dev) and zlib.
public enum Crypto {
    public static func sha256(_ bytes: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        _ = reencryptd_sha256(bytes.baseAddress, bytes.count, &out)
        return out
    }

    public static func sha256<C: ContiguousBytes>(_ bytes: C) -> [UInt8] {
        bytes.withUnsafeBytes { sha256($0) }
    }

    public static func sha256Hex<C: ContiguousBytes>(_ bytes: C) -> String { hex(sha256(bytes)) }

    /// Appends the hex SHA-256 of `bytes` to `out`, the digest itself on the stack (signing does this per request).
    public static func appendSHA256Hex<C: ContiguousBytes>(of bytes: C, to out: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { digest in
            _ = bytes.withUnsafeBytes { reencryptd_sha256($0.baseAddress, $0.count, digest.baseAddress) }
            HexDigit.append(UnsafeBufferPointer(digest), to: &out)
        }
    }

    public static func hmacSHA256(key: [UInt8], _ data: UnsafeRawBufferPointer) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 32)
        key.withUnsafeBytes { k in
            _ = reencryptd_hmac_sha256(k.baseAddress, Int32(k.count), data.baseAddress, data.count, &out)
        }
        return out
    }

    public static func hmacSHA256<C: ContiguousBytes>(key: [UInt8], _ data: C) -> [UInt8] {
        data.withUnsafeBytes { hmacSHA256(key: key, $0) }
    }

    /// An HMAC-SHA256 key made once for many messages (the day's SigV4 signing key).
    public struct HMACKey: Sendable {
        /// Two SHA256_CTX values: plain C data, copied with the struct.
        private var state = reencryptd_hmac_key()

        public init(_ key: [UInt8]) {
            key.withUnsafeBytes { reencryptd_hmac_key_init(&state, $0.baseAddress, Int32($0.count)) }
        }

        public func mac(_ data: UnsafeRawBufferPointer) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: 32)
            withUnsafePointer(to: state) { reencryptd_hmac_sha256_with($0, data.baseAddress, data.count, &out) }
            return out
        }

        public func mac<C: ContiguousBytes>(_ data: C) -> [UInt8] { data.withUnsafeBytes { mac($0) } }

        /// Appends the hex MAC of `data` to `out`, the MAC itself on the stack.
        public func appendMACHex<C: ContiguousBytes>(of data: C, to out: inout [UInt8]) {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 32) { mac in
                data.withUnsafeBytes { d in
                    withUnsafePointer(to: state) { reencryptd_hmac_sha256_with($0, d.baseAddress, d.count, mac.baseAddress) }
                }
                HexDigit.append(UnsafeBufferPointer(mac), to: &out)
            }
        }
    }

    public static func md5<C: ContiguousBytes>(_ bytes: C) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeBytes { _ = reencryptd_md5($0.baseAddress, $0.count, &out) }
        return out
    }

    /// CRC-32 (IEEE, as `x-amz-checksum-crc32`), big-endian bytes.
    public static func crc32<C: ContiguousBytes>(_ bytes: C) -> [UInt8] {
        let value = bytes.withUnsafeBytes { buf -> UInt in
            CZlib.crc32(0, buf.baseAddress?.assumingMemoryBound(to: Bytef.self), uInt(buf.count))
        }
        let v = UInt32(truncatingIfNeeded: value)
        return [UInt8(v >> 24), UInt8((v >> 16) & 0xFF), UInt8((v >> 8) & 0xFF), UInt8(v & 0xFF)]
    }

    public static func base64(_ bytes: [UInt8]) -> String { Data(bytes).base64EncodedString() }

    public static func hex(_ bytes: [UInt8]) -> String { HexDigit.encode(bytes) }

    /// SHA-256 of the empty string: the payload hash of requests without a body.
    public static let emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
}
