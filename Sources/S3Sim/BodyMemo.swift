import Foundation
import NIOConcurrencyHelpers

/// The last small request body seen and one value computed from it (a digest, or its reading as an
/// UpdateObjectEncryption body). A bulk client sends the same bytes on every call of a job, so the value is computed
/// once rather than per request. The value is a pure function of the bytes, so every answer is the same either way;
/// a different body simply replaces the entry. Shared by the event loops, hence the lock.
final class LastBodyMemo<Value>: @unchecked Sendable {
    /// Larger bodies (PutObject's) are computed every time and never held.
    static var maxBytes: Int { 4096 }
    private let lock = NIOLock()
    private var key: [UInt8] = []
    private var value: Value?

    func value(for body: [UInt8], _ compute: ([UInt8]) -> Value) -> Value {
        guard body.count <= Self.maxBytes else { return compute(body) }
        let hit = lock.withLock { () -> Value? in
            guard let value, key[...].equals(body[...]) else { return nil }
            return value
        }
        if let hit { return hit }
        let computed = compute(body)
        lock.withLock {
            key = body
            value = computed
        }
        return computed
    }
}
