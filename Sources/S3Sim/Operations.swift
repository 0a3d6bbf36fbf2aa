import Domain
import Foundation
import S3

/// The S3 operations, as extensions of `SimService`.
extension SimService {
    /// UpdateObjectEncryption, with the checks in the order S3 applies them and each error of the API page.
    /// https://docs.aws.amazon.com/AmazonS3/latest/API/API_UpdateObjectEncryption.html
    func updateObjectEncryption(_ request: SimRequest, _ target: Target, requestID: String, loop: LoopCache) -> SimResponse {
        func fail(_ status: Int, _ code: String, _ message: String, extra: [(String, String)] = []) -> SimResponse {
            error(status, code, message, resource: target.resource, requestID: requestID, extra: extra)
        }
        if let problem = checksumProblem(request, loop: loop) { return fail(400, problem.code, problem.message) }
        let arn: String, bucketKey: Bool, keyAccount: String
        switch loop.updateBodies.value(for: request.body, UpdateBody.read) {
        case .invalid(let code, let message): return fail(400, code, message)
        case .valid(let a, let b, let account): (arn, bucketKey, keyAccount) = (a, b, account)
        }
        let versionParam = target.param("versionId")
        if let v = versionParam, v.isEmpty || v.utf8.contains(0x20) { return fail(400, "InvalidArgument", Messages.invalidVersion) }
        let expectedOwner = request.header("x-amz-expected-bucket-owner")
        let now = loop.now

        /// The stored versions, changed in place (`inout` through the dictionaries' subscripts: one lookup each and
        /// no copy of the bucket's objects or of the version list).
        func apply(_ versions: inout [SimVersion]?, owner: String, versioned: Bool, counters: inout SimCounters) -> SimResponse {
            guard let count = versions?.count, count > 0 else {
                return fail(404, "NoSuchKey", Messages.noSuchKey, extra: [("Key", target.key)])
            }
            let index: Int
            if let v = versionParam {
                guard let i = versions!.firstIndex(where: { $0.versionID == v }) else {
                    return fail(404, "NoSuchVersion", Messages.noSuchVersion, extra: [("Key", target.key), ("VersionId", v)])
                }
                if versions![i].isDeleteMarker { return fail(405, "MethodNotAllowed", Messages.methodNotAllowed) }
                index = i
            } else {
                index = count - 1
                if versions![index].isDeleteMarker {
                    var r = fail(404, "NoSuchKey", Messages.noSuchKey, extra: [("Key", target.key)])
                    r.headers.append(("x-amz-delete-marker", "true"))
                    return r
                }
            }
            return update(&versions![index], owner: owner, versioned: versioned, counters: &counters)
        }

        /// The version in place: copying it out would retain each of its strings and its body.
        func update(_ version: inout SimVersion, owner: String, versioned: Bool, counters: inout SimCounters) -> SimResponse {
            version.calls += 1
            if version.broken { return fail(500, "InternalError", Messages.internalError) }
            if version.denyUpdate { return fail(403, "AccessDenied", Messages.accessDenied) }
            if keyAccount != owner { return fail(403, "AccessDenied", Messages.kmsSameAccount) }
            if version.lock.isLocked(at: now) { return fail(403, "AccessDenied", Messages.objectLock) }
            switch version.encryption {
            case .none: return fail(400, "InvalidRequest", Messages.unencryptedSource)
            case .sseC, .dsseKMS: return fail(400, "InvalidRequest", Messages.dsseOrSSECSource)
            case .sseS3, .sseKMS: break
            }
            version.encryption = .sseKMS(keyARN: arn, bucketKey: bucketKey)
            if version.updates >= 1 { counters.duplicateUpdates += 1 }
            version.updates += 1
            counters.updateSuccesses += 1
            return SimResponse(status: 200, headers: versioned ? [("x-amz-version-id", version.versionID)] : [], body: [])
        }

        return state.withObjects { buckets, counters -> SimResponse in
            counters.updateCalls += 1
            func inBucket(_ bucket: inout SimBucket) -> SimResponse {
                if let expectedOwner, expectedOwner != bucket.ownerAccount { return fail(403, "AccessDenied", Messages.accessDenied) }
                return apply(&bucket.objects[target.key], owner: bucket.ownerAccount, versioned: bucket.versioned, counters: &counters)
            }
            // Through the dictionary's subscript in place: `bucket?.field` on the optional copied the whole bucket.
            var response = buckets[target.bucket] == nil ? fail(404, "NoSuchBucket", Messages.noSuchBucket) : inBucket(&buckets[target.bucket]!)
            // Counted in this round rather than in one more after it: each round on the shared lock can meet the other loop.
            counters.countResponse(response.status)
            response.counted = true
            return response
        }
    }

    /// `httpChecksum.requestChecksumRequired`: Content-MD5 or an x-amz-checksum-* header, checked against the body.
    func checksumProblem(_ request: SimRequest, loop: LoopCache) -> (code: String, message: String)? {
        var found = false
        if let md5 = request.headerBytes("content-md5") {
            found = true
            if !md5.equals(Crypto.base64(Crypto.md5(request.body))) {
                return ("BadDigest", "The Content-MD5 you specified did not match what we received.")
            }
        }
        let prefix = UpdateBody.checksumPrefix
        for f in request.fields {
            let name = request.name(f)
            guard name.hasPrefix(prefix), !name.equals("x-amz-checksum-type") else { continue }
            found = true
            let algorithm = name.dropFirst(prefix.count)
            let computed: String
            if algorithm.equals("crc32") {
                computed = loop.bodyCRC32.value(for: request.body) { Crypto.base64(Crypto.crc32($0)) }
            } else if algorithm.equals("sha256") {
                computed = Crypto.base64(Crypto.sha256(request.body))
            } else {
                let algorithm = String(decoding: algorithm, as: UTF8.self)
                switch algorithm {
                case "crc32c", "crc64nvme", "sha1":
                    return ("InvalidRequest", "x-amz-checksum-\(algorithm) is not verified by this simulator; use crc32, sha256 or Content-MD5")
                default:
                    return ("InvalidRequest", "Value for x-amz-checksum-\(algorithm) header is invalid.")
                }
            }
            if !request.value(f).equals(computed) {
                let algorithm = String(decoding: algorithm, as: UTF8.self)
                return ("BadDigest", "The \(algorithm.uppercased()) you specified did not match the calculated checksum.")
            }
        }
        if let algorithm = request.headerBytes("x-amz-sdk-checksum-algorithm") {
            // The header it promises: "x-amz-checksum-" and the algorithm, lowercased (as field names are stored).
            let promised = prefix + algorithm.map(ASCII.lowercased)
            if !request.fields.contains(where: { request.name($0).equals(promised[...]) }) {
                return ("InvalidRequest", "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or x-amz-trailer headers were found.")
            }
        }
        return found ? nil : ("InvalidRequest", Messages.missingChecksum)
    }

    func putObject(_ request: SimRequest, _ target: Target, requestID: String) -> SimResponse {
        if let md5 = request.header("content-md5"), md5 != Crypto.base64(Crypto.md5(request.body)) {
            return error(400, "BadDigest", "The Content-MD5 you specified did not match what we received.",
                         resource: "/\(target.bucket)/\(target.key)", requestID: requestID)
        }
        let encryption: SimEncryption
        switch request.header("x-amz-server-side-encryption") {
        case "aws:kms": encryption = .sseKMS(keyARN: request.header("x-amz-server-side-encryption-aws-kms-key-id") ?? "",
                                             bucketKey: request.header("x-amz-server-side-encryption-bucket-key-enabled") == "true")
        default: encryption = .sseS3  // S3 encrypts every new object with SSE-S3 by default (since January 2023).
        }
        let id = state.putObject(bucket: target.bucket, key: target.key, encryption: encryption, body: request.body)
        return SimResponse(status: 200, headers: [("ETag", "\"\(md5Hex(request.body))\""), ("x-amz-version-id", id),
                                                  ("x-amz-server-side-encryption", encryption.headerValue ?? "AES256")], body: [])
    }

    /// HeadObject and GetObject: encryption and Object Lock headers as S3 reports them.
    func getObject(_ request: SimRequest, _ target: Target, resource: String, requestID: String, head: Bool) -> SimResponse {
        let versionParam = target.param("versionId")
        guard let versions = state.snapshotVersions(bucket: target.bucket, key: target.key), !versions.isEmpty else {
            return error(404, "NoSuchKey", Messages.noSuchKey, resource: resource, requestID: requestID, head: head,
                         extra: [("Key", target.key)])
        }
        let version: SimVersion
        if let v = versionParam {
            guard let found = versions.first(where: { $0.versionID == v }) else {
                return error(404, "NoSuchVersion", Messages.noSuchVersion, resource: resource, requestID: requestID, head: head)
            }
            version = found
        } else {
            version = versions[versions.count - 1]
        }
        if version.isDeleteMarker {
            var r = error(404, "NoSuchKey", Messages.noSuchKey, resource: resource, requestID: requestID, head: head)
            r.headers.append(("x-amz-delete-marker", "true"))
            return r
        }
        var headers: [(name: String, value: String)] = [
            ("ETag", version.etag), ("Last-Modified", HTTPDate.format(version.lastModified)),
            ("x-amz-version-id", version.versionID), ("Content-Type", "binary/octet-stream"),
        ]
        switch version.encryption {
        case .none: break
        case .sseS3: headers.append(("x-amz-server-side-encryption", "AES256"))
        case .sseKMS(let arn, let bucketKey):
            headers.append(("x-amz-server-side-encryption", "aws:kms"))
            headers.append(("x-amz-server-side-encryption-aws-kms-key-id", arn))
            if bucketKey { headers.append(("x-amz-server-side-encryption-bucket-key-enabled", "true")) }
        case .dsseKMS(let arn):
            headers.append(("x-amz-server-side-encryption", "aws:kms:dsse"))
            headers.append(("x-amz-server-side-encryption-aws-kms-key-id", arn))
        case .sseC:
            headers.append(("x-amz-server-side-encryption-customer-algorithm", "AES256"))
        }
        if let mode = version.lock.mode, let until = version.lock.retainUntil {
            headers.append(("x-amz-object-lock-mode", mode.rawValue))
            headers.append(("x-amz-object-lock-retain-until-date", ISO8601DateFormatter().string(from: until)))
        }
        if version.lock.legalHold { headers.append(("x-amz-object-lock-legal-hold", "ON")) }
        return SimResponse(status: 200, headers: headers, body: head ? [] : version.body,
                           contentLengthOverride: head ? version.body.count : nil)
    }

    /// `target.region` is the bucket's, looked up by `route` (which answers NoSuchBucket without one).
    func headBucket(_ target: Target) -> SimResponse {
        SimResponse(status: 200, headers: [("x-amz-bucket-region", target.region ?? "us-east-1")], body: [],
                    contentLengthOverride: 0)
    }

    /// How a listing writes keys: XML-escaped, or with `encoding-type=url` URL-encoded as S3 does (a space as `+`), which
    /// is what lets a key with characters XML 1.0 cannot carry through. nil: an encoding S3 does not know.
    /// https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html (EncodingType)
    struct ListingEncoding {
        let url: Bool

        init?(_ target: Target) {
            switch target.param("encoding-type") {
            case nil: url = false
            case "url": url = true
            default: return nil
            }
        }

        func key(_ key: String) -> String {
            url ? URIEncoding.encode(key, keepSlash: true).replacingOccurrences(of: "%20", with: "+") : XMLText.escape(key)
        }

        /// The element that tells the client to decode.
        var element: String { url ? "<EncodingType>url</EncodingType>" : "" }
    }

    private func invalidEncoding(_ target: Target, requestID: String) -> SimResponse {
        error(400, "InvalidArgument", "Invalid Encoding Method specified in Request", resource: target.resource,
              requestID: requestID, extra: [("ArgumentName", "encoding-type"), ("ArgumentValue", target.param("encoding-type") ?? "")])
    }

    /// ListObjectsV2: keys in UTF-8 order after the continuation token, `max-keys` a page.
    func listObjectsV2(_ target: Target, requestID: String) -> SimResponse {
        guard let encoding = ListingEncoding(target) else { return invalidEncoding(target, requestID: requestID) }
        let prefix = target.param("prefix") ?? ""
        let maxKeys = min(1000, max(1, Int(target.param("max-keys") ?? "1000") ?? 1000))
        let after = target.param("continuation-token").flatMap { Data(base64Encoded: $0) }.map { String(decoding: $0, as: UTF8.self) }
            ?? target.param("start-after") ?? ""
        let bucket = state.snapshotBuckets[target.bucket]
        let keys = (bucket?.objects ?? [:]).filter { $0.key.hasPrefix(prefix) && !($0.value.last?.isDeleteMarker ?? true) }
            .keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
            .filter { after.isEmpty || after.utf8.lexicographicallyPrecedes($0.utf8) }
        let page = keys.prefix(maxKeys)
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        xml += "<Name>\(XMLText.escape(target.bucket))</Name><Prefix>\(encoding.key(prefix))</Prefix><KeyCount>\(page.count)</KeyCount>"
        xml += encoding.element
        xml += "<MaxKeys>\(maxKeys)</MaxKeys><IsTruncated>\(keys.count > maxKeys)</IsTruncated>"
        if keys.count > maxKeys, let last = page.last {
            xml += "<NextContinuationToken>\(Data(last.utf8).base64EncodedString())</NextContinuationToken>"
        }
        for key in page {
            let v = bucket!.objects[key]!.last!
            xml += "<Contents><Key>\(encoding.key(key))</Key><LastModified>\(ISO8601DateFormatter().string(from: v.lastModified))</LastModified>"
            xml += "<ETag>\(XMLText.escape(v.etag))</ETag><Size>\(v.body.count)</Size><StorageClass>STANDARD</StorageClass></Contents>"
        }
        xml += "</ListBucketResult>"
        return SimResponse(status: 200, headers: [("Content-Type", "application/xml")], body: Array(xml.utf8))
    }

    /// ListObjectVersions: (key, newest version first) order after the key and version-id markers.
    func listObjectVersions(_ target: Target, requestID: String) -> SimResponse {
        guard let encoding = ListingEncoding(target) else { return invalidEncoding(target, requestID: requestID) }
        let prefix = target.param("prefix") ?? ""
        let maxKeys = min(1000, max(1, Int(target.param("max-keys") ?? "1000") ?? 1000))
        let keyMarker = target.param("key-marker") ?? ""
        let versionMarker = target.param("version-id-marker") ?? ""
        let bucket = state.snapshotBuckets[target.bucket]
        var entries: [(key: String, version: SimVersion, latest: Bool)] = []
        for key in (bucket?.objects.keys.filter { $0.hasPrefix(prefix) } ?? []).sorted(by: { $0.utf8.lexicographicallyPrecedes($1.utf8) }) {
            let versions = bucket!.objects[key]!
            for (i, v) in versions.enumerated().reversed() { entries.append((key, v, i == versions.count - 1)) }
        }
        if !keyMarker.isEmpty {
            if let i = entries.firstIndex(where: { $0.key == keyMarker && $0.version.versionID == versionMarker }) {
                entries.removeFirst(i + 1)
            } else {
                entries.removeAll { !keyMarker.utf8.lexicographicallyPrecedes($0.key.utf8) }
            }
        }
        let page = entries.prefix(maxKeys)
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        xml += "<Name>\(XMLText.escape(target.bucket))</Name><Prefix>\(encoding.key(prefix))</Prefix><MaxKeys>\(maxKeys)</MaxKeys>"
        xml += encoding.element
        xml += "<IsTruncated>\(entries.count > maxKeys)</IsTruncated>"
        if entries.count > maxKeys, let last = page.last {
            xml += "<NextKeyMarker>\(encoding.key(last.key))</NextKeyMarker><NextVersionIdMarker>\(XMLText.escape(last.version.versionID))</NextVersionIdMarker>"
        }
        for e in page {
            let tag = e.version.isDeleteMarker ? "DeleteMarker" : "Version"
            xml += "<\(tag)><Key>\(encoding.key(e.key))</Key><VersionId>\(XMLText.escape(e.version.versionID))</VersionId>"
            xml += "<IsLatest>\(e.latest)</IsLatest><LastModified>\(ISO8601DateFormatter().string(from: e.version.lastModified))</LastModified>"
            if !e.version.isDeleteMarker { xml += "<ETag>\(XMLText.escape(e.version.etag))</ETag><Size>\(e.version.body.count)</Size>" }
            xml += "</\(tag)>"
        }
        xml += "</ListVersionsResult>"
        return SimResponse(status: 200, headers: [("Content-Type", "application/xml")], body: Array(xml.utf8))
    }
}

extension SimState {
    func snapshotVersions(bucket: String, key: String) -> [SimVersion]? {
        withObjects { buckets, _ in buckets[bucket]?.objects[key] }
    }
}

/// The markers UpdateObjectEncryption's body is checked for, as bytes once.
enum UpdateBody {
    /// What a body asks for, or why S3 would refuse it (every refusal is a 400).
    enum Reading {
        case valid(arn: String, bucketKey: Bool, keyAccount: String)
        case invalid(code: String, message: String)
    }

    /// The body: <ObjectEncryption xmlns="…"><SSE-KMS><KMSKeyArn/><BucketKeyEnabled/></SSE-KMS></ObjectEncryption>
    static func read(_ xml: [UInt8]) -> Reading {
        guard ByteSearch.find(open, in: xml) != nil, ByteSearch.find(close, in: xml) != nil else {
            return .invalid(code: "MalformedXML", message: Messages.malformedXML)
        }
        if ByteSearch.find(sseC, in: xml) != nil || ByteSearch.find(dsseKMS, in: xml) != nil {
            return .invalid(code: "InvalidRequest", message: Messages.dsseOrSSECTarget)
        }
        guard ByteSearch.find(sseKMS, in: xml) != nil else { return .invalid(code: "InvalidRequest", message: Messages.needValidType) }
        guard let arn = keyARN.rawText(in: xml), !arn.isEmpty else { return .invalid(code: "InvalidRequest", message: Messages.needARN) }
        guard KMSKeyARN.matchesPattern(arn) else { return .invalid(code: "InvalidRequest", message: Messages.needValidARN) }
        var enabled = false
        if let value = bucketKey.rawText(in: xml) {
            switch value {
            case "true": enabled = true
            case "false": enabled = false
            default: return .invalid(code: "InvalidRequest", message: Messages.badBucketKey)
            }
        }
        return .valid(arn: arn, bucketKey: enabled, keyAccount: KMSKeyARN.account(ofARN: arn))
    }

    static let open = Array("<ObjectEncryption xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">".utf8)
    static let close = Array("</ObjectEncryption>".utf8)
    static let sseC = Array("<SSE-C".utf8)
    static let dsseKMS = Array("<DSSE-KMS".utf8)
    static let sseKMS = Array("<SSE-KMS>".utf8)
    static let keyARN = XMLElementTag("KMSKeyArn")
    static let bucketKey = XMLElementTag("BucketKeyEnabled")
    static let checksumPrefix = Array("x-amz-checksum-".utf8)
}
