import Foundation
import S3

/// What one event loop keeps for the requests it answers: its copies of the settings (faults and credentials), its own
/// random numbers, request ids and `Date` header, and caches of what a bulk client sends again and again.
/// Touched only on its event loop, one request at a time, which is what makes `@unchecked Sendable` sound.
///
/// Why per loop: with the settings, caches and randomness behind shared locks, each request took locks about a dozen
/// times. On two loops they were contended often enough that futex waits (and the context switches they bring) were
/// 4% of the simulator's CPU under the client benchmark, and the simulator shares the machine with what it measures.
/// Now a request reads two atomic generation numbers (the settings', the buckets') and takes one lock, the state's,
/// for the operation itself (and the service's only when a throttle is configured).
final class LoopCache: @unchecked Sendable {
    /// The loop's number, in the top bits of its request ids (so ids stay unique across loops).
    private let index: UInt64
    private var requestCounter: UInt64 = 0
    private var dateSecond = Int.min
    private var dateHeader = ""

    /// The service's settings generation these copies were taken at (`SimService.refresh`).
    var generation = UInt64.max
    var faults = SimFaults()
    var credentials: [String: SimCredential] = [:]
    var random: SplitMix64

    /// The access key id and credential of the last request, checked as bytes before the dictionary: a bulk client
    /// signs every request with the same ones, and a String per lookup was a visible share of each request.
    var lastCredential: (accessKeyID: [UInt8], credential: SimCredential)?
    /// kSigning for the last credential scope (`AKID/day/region/s3/aws4_request`), derived once per scope as S3 and
    /// the SDKs do. Both are cleared when the settings change.
    var lastSigningKey: (scope: [UInt8], key: Crypto.HMACKey)?

    /// Bucket regions looked up (nil: no such bucket), valid while the state's `bucketsGeneration` is `regionsGeneration`.
    private var regions: [String: String?] = [:]
    private var regionsGeneration = UInt64.max

    /// What the last small body was found to be: the same bytes arrive on every call of a bulk job.
    var updateBodies = LastBody<UpdateBody.Reading>()
    var bodyCRC32 = LastBody<String>()
    var bodySHA256 = LastBody<[UInt8]>()

    init(index: Int) {
        self.index = UInt64(truncatingIfNeeded: index)
        random = SplitMix64(seed: 0x5EED &+ UInt64(truncatingIfNeeded: index) &* 0x9E37_79B9)
    }

    /// A fresh request id: 16 hex digits, unique across the simulator's loops (the odd multiplier is a bijection).
    func nextRequestID() -> String {
        requestCounter &+= 1
        return SimService.hex16((index << 56 | (requestCounter & 0x00FF_FFFF_FFFF_FFFF)) &* 0x2545F4914F6CDD1D)
    }

    /// The `Date` header for now, on the simulator's (possibly offset) clock; formatted once a second.
    func date() -> String {
        let second = Int(Date().timeIntervalSince1970 + faults.clockOffsetSeconds)
        if second != dateSecond {
            dateSecond = second
            dateHeader = HTTPDate.format(Date(timeIntervalSince1970: Double(second)))
        }
        return dateHeader
    }

    /// The region of `bucket`, or nil if there is no such bucket; from this loop's cache unless the buckets changed.
    func region(of bucket: String, in state: SimState) -> String? {
        let generation = state.bucketsGeneration.load(ordering: .acquiring)
        // Dropped when the buckets change, and when requests for many unknown names have filled it.
        if generation != regionsGeneration || regions.count >= 4096 {
            regions.removeAll(keepingCapacity: true)
            regionsGeneration = generation
        }
        if let known = regions[bucket] { return known }
        let region = state.bucketRegion(bucket)
        regions[bucket] = .some(region)
        return region
    }

    /// Now on the simulator's clock.
    var now: Date { Date().addingTimeInterval(faults.clockOffsetSeconds) }
}

/// The last small request body seen and one value computed from it (a digest, or its reading as an
/// UpdateObjectEncryption body), computed once rather than per request. The value is a pure function of the bytes, so
/// every answer is the same either way; a different body simply replaces the entry.
struct LastBody<Value> {
    /// Larger bodies (PutObject's) are computed every time and never held.
    static var maxBytes: Int { 4096 }
    private var key: [UInt8] = []
    private var value: Value?

    mutating func value(for body: [UInt8], _ compute: ([UInt8]) -> Value) -> Value {
        guard body.count <= Self.maxBytes else { return compute(body) }
        if let value, key[...].equals(body[...]) { return value }
        let computed = compute(body)
        key = body
        value = computed
        return computed
    }
}
