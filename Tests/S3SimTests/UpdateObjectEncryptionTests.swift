import Domain
import Foundation
import S3
@testable import S3Sim
import XCTest

final class UpdateObjectEncryptionTests: XCTestCase {
    func testSuccessChangesEncryptionAndHeadObjectReportsIt() async throws {
        let h = try SimHarness()
        h.bucket()
        let version = h.state.putObject(bucket: "bucket-a", key: "dir/file.txt", encryption: .sseS3)
        let object = ObjectRef(bucket: "bucket-a", key: "dir/file.txt", versionId: version)
        let value1 = try await h.client.headObject(object).type
        XCTAssertEqual(value1, "AES256")
        let value2 = await h.update(object)
        XCTAssertEqual(h.classify(value2), .succeeded)
        let after = try await h.client.headObject(object)
        XCTAssertEqual(after.type, "aws:kms")
        XCTAssertEqual(after.kmsKeyID, targetARN)
        XCTAssertTrue(after.bucketKeyEnabled)
        XCTAssertEqual(after.versionID, version)
        XCTAssertEqual(h.state.version(bucket: "bucket-a", key: "dir/file.txt")?.updates, 1)
        XCTAssertEqual(h.state.snapshotCounters.signatureFailures, 0)
    }

    func testEveryErrorOfTheAPIPageIsAnsweredAndClassified() async throws {
        let h = try SimHarness()
        h.bucket()
        h.bucket("foreign-bucket", owner: "444455556666")
        let future = Date().addingTimeInterval(86400)
        let put: [(String, SimEncryption, SimLock, Bool)] = [
            ("plain", .none, SimLock(), false), ("ssec", .sseC, SimLock(), false), ("dsse", .dsseKMS(keyARN: targetARN), SimLock(), false),
            ("gov", .sseS3, SimLock(mode: .governance, retainUntil: future), false),
            ("comp", .sseS3, SimLock(mode: .compliance, retainUntil: future), false),
            ("hold", .sseS3, SimLock(legalHold: true), false),
            ("lapsed", .sseS3, SimLock(mode: .compliance, retainUntil: Date().addingTimeInterval(-60)), false),
            ("denied", .sseS3, SimLock(), true), ("ok", .sseKMS(keyARN: targetARN, bucketKey: false), SimLock(), false),
        ]
        for (key, enc, lock, deny) in put { h.state.putObject(bucket: "bucket-a", key: key, encryption: enc, lock: lock, denyUpdate: deny) }
        h.state.putObject(bucket: "foreign-bucket", key: "k", encryption: .sseS3)
        func obj(_ key: String, _ version: String? = nil) -> ObjectRef { ObjectRef(bucket: "bucket-a", key: key, versionId: version) }
        let cases: [(ObjectRef, String, Classification)] = [
            (obj("plain"), targetARN, .terminal(.unsupportedEncryption)),
            (obj("ssec"), targetARN, .terminal(.unsupportedEncryption)),
            (obj("dsse"), targetARN, .terminal(.unsupportedEncryption)),
            (obj("gov"), targetARN, .terminal(.objectLock)),
            (obj("comp"), targetARN, .terminal(.objectLock)),
            (obj("hold"), targetARN, .terminal(.objectLock)),
            (obj("lapsed"), targetARN, .succeeded),
            (obj("denied"), targetARN, .terminal(.accessDenied)),
            (obj("ok"), foreignARN, .terminal(.kmsKeyDenied)),
            (ObjectRef(bucket: "foreign-bucket", key: "k"), targetARN, .terminal(.kmsKeyDenied)),
            (obj("missing"), targetARN, .terminal(.notFound)),
            (obj("ok", "vNoSuchVersion"), targetARN, .terminal(.notFound)),
            (obj("ok", "bad version"), targetARN, .terminal(.invalidRequest)),
            (ObjectRef(bucket: "no-such-bucket", key: "k"), targetARN, .terminal(.notFound)),
            (obj("ok"), "arn:aws:kms:us-east-1:111122223333:alias/x", .terminal(.invalidRequest)),
            (obj("ok"), targetARN, .succeeded),
        ]
        for (object, arn, expected) in cases {
            let result = await h.update(object, arn: arn)
            XCTAssertEqual(h.classify(result), expected, "\(object) with \(arn): \(result)")
            if case .failure(let e) = result {
                XCTAssertNotNil(e.requestID, "errors carry the request id")
                XCTAssertFalse(e.message.isEmpty)
            }
        }
        // Expected bucket owner mismatch: 403 access-denied.
        let value3 = await h.update(obj("lapsed"), owner: "000000000000")
        XCTAssertEqual(h.classify(value3), .terminal(.accessDenied))
        let value4 = await h.update(obj("lapsed"), owner: "111122223333")
        XCTAssertEqual(h.classify(value4), .succeeded)
        XCTAssertEqual(h.state.snapshotCounters.duplicateUpdates, 1, "lapsed was updated twice")
    }

    func testMissingOrWrongChecksumAndBadBodyAreRejected() async throws {
        let h = try SimHarness()
        h.bucket()
        h.state.putObject(bucket: "bucket-a", key: "k", encryption: .sseS3)
        let object = ObjectRef(bucket: "bucket-a", key: "k")
        var request = S3Request.updateObjectEncryption(object, kmsKeyARN: targetARN, bucketKeyEnabled: false)
        request.headers.removeAll { $0.name.hasPrefix("x-amz-checksum") || $0.name == "x-amz-sdk-checksum-algorithm" }
        guard case .failure(let missing) = await h.client.send(request, object: object) else { return XCTFail("accepted without checksum") }
        XCTAssertEqual(missing.code, "InvalidRequest")
        XCTAssertTrue(missing.message.contains("Content-MD5 OR x-amz-checksum-*"))
        request.headers.append(("x-amz-checksum-crc32", "AAAAAA=="))
        guard case .failure(let wrong) = await h.client.send(request, object: object) else { return XCTFail("accepted a wrong CRC32") }
        XCTAssertEqual(wrong.code, "BadDigest")
        var bad = S3Request.updateObjectEncryption(object, kmsKeyARN: targetARN, bucketKeyEnabled: false)
        bad.body = Array("<ObjectEncryption><SSE-KMS/></ObjectEncryption>".utf8)
        bad.headers = [("x-amz-checksum-crc32", Crypto.base64(Crypto.crc32(bad.body))), ("x-amz-sdk-checksum-algorithm", "CRC32")]
        guard case .failure(let malformed) = await h.client.send(bad, object: object) else { return XCTFail("accepted bad XML") }
        XCTAssertEqual(malformed.code, "MalformedXML")
        XCTAssertEqual(h.state.version(bucket: "bucket-a", key: "k")?.encryption, .sseS3, "nothing changed")
    }

    /// The simulator remembers what the last body was found to be (its digests, the key it asks for). A different body
    /// of the same length must be read afresh: another key applies, a broken one is refused, a wrong digest is caught.
    func testEachBodyIsReadAfreshWhenItsBytesChange() async throws {
        let h = try SimHarness()
        h.bucket()
        for key in ["k1", "k2", "k3", "k4"] { h.state.putObject(bucket: "bucket-a", key: key, encryption: .sseS3) }
        let first = ObjectRef(bucket: "bucket-a", key: "k1")
        let firstResult = await h.update(first)
        XCTAssertEqual(h.classify(firstResult), .succeeded)
        // Same length, another key id in the same account.
        let otherARN = String(targetARN.dropLast()) + "1"
        XCTAssertNotEqual(otherARN, targetARN)
        let secondResult = await h.update(ObjectRef(bucket: "bucket-a", key: "k2"), arn: otherARN)
        XCTAssertEqual(h.classify(secondResult), .succeeded)
        XCTAssertEqual(h.state.version(bucket: "bucket-a", key: "k1")?.encryption, .sseKMS(keyARN: targetARN, bucketKey: true))
        XCTAssertEqual(h.state.version(bucket: "bucket-a", key: "k2")?.encryption, .sseKMS(keyARN: otherARN, bucketKey: true))
        // Same length as the body just accepted, but no SSE-KMS element: refused, though its checksum is right.
        let third = ObjectRef(bucket: "bucket-a", key: "k3")
        var renamed = S3Request.updateObjectEncryption(third, kmsKeyARN: otherARN, bucketKeyEnabled: true)
        renamed.body = Array(String(decoding: renamed.body, as: UTF8.self).replacingOccurrences(of: "SSE-KMS>", with: "SSE-KMX>").utf8)
        renamed.headers = [("x-amz-checksum-crc32", Crypto.base64(Crypto.crc32(renamed.body))), ("x-amz-sdk-checksum-algorithm", "CRC32")]
        guard case .failure(let refused) = await h.client.send(renamed, object: third) else { return XCTFail("accepted a body without SSE-KMS") }
        XCTAssertEqual(refused.code, "InvalidRequest")
        // The accepted body again, with the checksum of the body before it: the digest is computed for these bytes.
        var stale = S3Request.updateObjectEncryption(third, kmsKeyARN: targetARN, bucketKeyEnabled: true)
        let previous = S3Request.updateObjectEncryption(third, kmsKeyARN: otherARN, bucketKeyEnabled: true)
        stale.headers = [("x-amz-checksum-crc32", Crypto.base64(Crypto.crc32(previous.body))), ("x-amz-sdk-checksum-algorithm", "CRC32")]
        guard case .failure(let wrong) = await h.client.send(stale, object: third) else { return XCTFail("accepted another body's checksum") }
        XCTAssertEqual(wrong.code, "BadDigest")
        XCTAssertEqual(h.state.version(bucket: "bucket-a", key: "k3")?.encryption, .sseS3, "nothing changed")
        // The algorithm header promises a checksum header that is not there (Content-MD5 alone).
        let fourth = ObjectRef(bucket: "bucket-a", key: "k4")
        var promised = S3Request.updateObjectEncryption(fourth, kmsKeyARN: targetARN, bucketKeyEnabled: true)
        promised.headers = [("Content-MD5", Crypto.base64(Crypto.md5(promised.body))), ("x-amz-sdk-checksum-algorithm", "SHA256")]
        guard case .failure(let unkept) = await h.client.send(promised, object: fourth) else { return XCTFail("accepted an unkept promise") }
        XCTAssertTrue(unkept.message.contains("x-amz-sdk-checksum-algorithm specified"), unkept.message)
        promised.headers.append(("x-amz-checksum-sha256", Crypto.base64(Crypto.sha256(promised.body))))
        let kept = await h.client.send(promised, object: fourth)
        XCTAssertEqual(h.classify(kept), .succeeded)
        XCTAssertEqual(h.state.snapshotCounters.signatureFailures, 0)
    }

    func testAwkwardKeysRoundTripThroughStrictSignatureChecks() async throws {
        let h = try SimHarness()
        h.bucket()
        let keys = ["with space", "plus+sign", "percent%20literal", "100%", "日本語/ключ/🔑.txt", "~!*'()&$=;:,?#[]@",
                    "a//b", "./x/../y", "../up", "/leading", "trailing/", " lead and trail ", String(repeating: "k", count: 1024)]
        for key in keys {
            let version = h.state.putObject(bucket: "bucket-a", key: key, encryption: .sseS3)
            let result = await h.update(ObjectRef(bucket: "bucket-a", key: key, versionId: version))
            XCTAssertEqual(h.classify(result), .succeeded, "key \(key.prefix(40).debugDescription): \(result)")
            XCTAssertEqual(h.state.version(bucket: "bucket-a", key: key)?.updates, 1, "the simulator updated exactly \(key.prefix(40))")
        }
        XCTAssertEqual(h.state.snapshotCounters.signatureFailures, 0)
    }

    func testWrongRegionIsLearntCachedAndRetriedOnce() async throws {
        let h = try SimHarness(region: "us-east-1")
        h.bucket("eu-bucket", region: "eu-west-1")
        for i in 0..<3 { h.state.putObject(bucket: "eu-bucket", key: "k\(i)", encryption: .sseS3) }
        for i in 0..<3 {
            let value5 = await h.update(ObjectRef(bucket: "eu-bucket", key: "k\(i)"))
            XCTAssertEqual(h.classify(value5), .succeeded)
        }
        XCTAssertEqual(h.client.knownRegion(of: "eu-bucket"), "eu-west-1")
        XCTAssertEqual(h.state.snapshotCounters.wrongRegion, 1, "only the first call went to the wrong region")
    }

    func testClockSkewIsCorrectedFromTheDateHeader() async throws {
        let h = try SimHarness.withOneObject { $0.clockOffsetSeconds = 3600 }
        let value6 = await h.update(ObjectRef(bucket: "bucket-a", key: "k"))
        XCTAssertEqual(h.classify(value6), .succeeded)
        XCTAssertEqual(h.client.currentClockOffset, 3600, accuracy: 5)
        let counters = h.state.snapshotCounters
        XCTAssertEqual(counters.byStatus["403"], 1, "one RequestTimeTooSkewed, then success")
        XCTAssertEqual(counters.byStatus["200"], 1, "each answer is counted once")
        XCTAssertEqual(counters.requests, 2)
    }

    /// A HEAD (what `inspect` sends) signed at a skewed time gets a bare 403 with no code to say so: the response's
    /// `Date`, an hour from the signing time, shows it, and the call is re-signed once. A HEAD's 404 in step with the
    /// server's clock is not retried.
    func testClockSkewOnAHeadIsSeenFromTheDateAlone() async throws {
        let h = try SimHarness.withOneObject { $0.clockOffsetSeconds = 3600 }
        let object = ObjectRef(bucket: "bucket-a", key: "k")
        let result = await h.client.send(.headObject(object), object: object)
        guard case .success(let response) = result else { return XCTFail("HeadObject failed: \(result)") }
        XCTAssertEqual(response.status, 200)
        XCTAssertEqual(h.client.currentClockOffset, 3600, accuracy: 5)
        XCTAssertEqual(h.state.snapshotCounters.byStatus["403"], 1, "one bare 403, then success")
        let missing = ObjectRef(bucket: "bucket-a", key: "no-such-key")
        guard case .failure(let e) = await h.client.send(.headObject(missing), object: missing) else { return XCTFail("found") }
        XCTAssertEqual(e.status, 404)
        XCTAssertEqual(h.state.snapshotCounters.requests, 3, "the 404 was not sent again")
    }

    func testSessionTokenIsRequiredWhenTheCredentialHasOne() async throws {
        let withToken = SimCredential(accessKeyID: "ASIATEMP", secretAccessKey: "tmp-secret", sessionToken: "session-token-value")
        let good = try SimHarness(credentials: withToken)
        good.bucket()
        good.state.putObject(bucket: "bucket-a", key: "k", encryption: .sseS3)
        let value7 = await good.update(ObjectRef(bucket: "bucket-a", key: "k"))
        XCTAssertEqual(good.classify(value7), .succeeded)
        let bad = try SimHarness(credentials: withToken,
                                 clientCredentials: AWSCredentials(accessKeyID: "ASIATEMP", secretAccessKey: "tmp-secret"))
        bad.bucket()
        guard case .failure(let e) = await bad.update(ObjectRef(bucket: "bucket-a", key: "k")) else { return XCTFail("accepted") }
        XCTAssertEqual(e.code, "InvalidToken")
        let wrongSecret = try SimHarness(clientCredentials: AWSCredentials(accessKeyID: SimCredential.default.accessKeyID,
                                                                           secretAccessKey: "wrong"))
        wrongSecret.bucket()
        guard case .failure(let mismatch) = await wrongSecret.update(ObjectRef(bucket: "bucket-a", key: "k")) else { return XCTFail("accepted") }
        XCTAssertEqual(mismatch.code, "SignatureDoesNotMatch")
        XCTAssertFalse(mismatch.description.contains("wrong"), "no secret in errors")
    }

    func testListsArePaginated() async throws {
        let h = try SimHarness()
        h.bucket()
        for i in 0..<25 {
            h.state.putObject(bucket: "bucket-a", key: "p/\(i)", encryption: .sseS3)
            h.state.putObject(bucket: "bucket-a", key: "p/\(i)", encryption: .sseS3)
        }
        let current = try await h.client.listObjectsV2(bucket: "bucket-a", prefix: "p/", pageSize: 7)
        XCTAssertEqual(Set(current.map(\.key)), Set((0..<25).map { "p/\($0)" }))
        XCTAssertEqual(current.count, 25)
        let versions = try await h.client.listObjectVersions(bucket: "bucket-a", prefix: "p/", pageSize: 4)
        XCTAssertEqual(versions.count, 50)
        XCTAssertEqual(versions.filter(\.isLatest).count, 25)
        XCTAssertEqual(Set(versions.compactMap(\.versionID)).count, 50)
    }

    /// Listings ask for URL-encoded keys and decode them: keys with spaces, `+`, `%`, XML's own characters and a control
    /// character (which XML 1.0 cannot carry) come back as stored, across page boundaries and version markers.
    func testListedKeysComeBackAsStored() async throws {
        let h = try SimHarness()
        h.bucket()
        let keys = ["q/a b", "q/a+b", "q/100%", "q/%41", "q/x&<y>\"'", "q/ctl\u{01}\u{1F}", "q/日本語", "q/trailing ", "q/a//b"]
        for key in keys {
            h.state.putObject(bucket: "bucket-a", key: key, encryption: .sseS3)
            h.state.putObject(bucket: "bucket-a", key: key, encryption: .sseS3)
        }
        let current = try await h.client.listObjectsV2(bucket: "bucket-a", prefix: "q/", pageSize: 2)
        XCTAssertEqual(current.map(\.key).sorted(), keys.sorted())
        let versions = try await h.client.listObjectVersions(bucket: "bucket-a", prefix: "q/", pageSize: 3)
        XCTAssertEqual(versions.count, 2 * keys.count, "every version once: each page went on after the last")
        XCTAssertEqual(Set(versions.map(\.key)), Set(keys))
        guard case .failure(let e) = await h.client.send(S3Request(operation: "ListObjectsV2", method: "GET", bucket: "bucket-a",
                                                                   query: [("list-type", "2"), ("encoding-type", "base64")])) else {
            return XCTFail("an unknown encoding was accepted")
        }
        XCTAssertEqual(e.code, "InvalidArgument")
    }

    func testPutAndGetObject() async throws {
        let h = try SimHarness()
        h.bucket()
        try await h.client.putObject(bucket: "bucket-a", key: "reports/a b.csv", body: Array("x,y\n".utf8), contentType: "text/csv")
        let value8 = try await h.client.getObject(bucket: "bucket-a", key: "reports/a b.csv")
        XCTAssertEqual(value8, Array("x,y\n".utf8))
        // An object may hold anything, an S3 error document included: GetObject's 200 is its content, not an error.
        let lookalike = Array("<?xml version=\"1.0\"?><Error><Code>InternalError</Code></Error>".utf8)
        try await h.client.putObject(bucket: "bucket-a", key: "notes/error.xml", body: lookalike, contentType: "application/xml")
        let content = try await h.client.getObject(bucket: "bucket-a", key: "notes/error.xml")
        XCTAssertEqual(content, lookalike)
    }
}
