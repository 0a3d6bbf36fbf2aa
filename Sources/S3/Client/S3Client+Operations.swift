import Domain
import Foundation

/// An object's encryption and Object Lock state as HeadObject reports them (`reencryptd inspect`).
public struct ObjectEncryptionState: Sendable, Equatable {
    /// `AES256` (SSE-S3), `aws:kms`, `aws:kms:dsse`, `SSE-C`, or `none`.
    public var type: String
    public var kmsKeyID: String?
    public var bucketKeyEnabled: Bool
    public var versionID: String?
    public var objectLockMode: String?
    public var objectLockRetainUntil: String?
    public var legalHold: Bool

    init(_ r: HTTPResponse) {
        if let t = r.header("x-amz-server-side-encryption") { type = t }
        else if r.header("x-amz-server-side-encryption-customer-algorithm") != nil { type = "SSE-C" }
        else { type = "none" }
        kmsKeyID = r.header("x-amz-server-side-encryption-aws-kms-key-id")
        bucketKeyEnabled = r.header("x-amz-server-side-encryption-bucket-key-enabled") == "true"
        versionID = r.header("x-amz-version-id")
        objectLockMode = r.header("x-amz-object-lock-mode")
        objectLockRetainUntil = r.header("x-amz-object-lock-retain-until-date")
        legalHold = r.header("x-amz-object-lock-legal-hold") == "ON"
    }
}

/// One entry of a ListObjectsV2 or ListObjectVersions page.
public struct ListedObject: Sendable, Equatable {
    public var key: String
    public var versionID: String?
    public var isLatest: Bool
    public var isDeleteMarker: Bool
    public var size: Int
}

extension S3Client {
    public func headObject(_ object: ObjectRef) async throws(S3Error) -> ObjectEncryptionState {
        switch await send(.headObject(object), object: object) {
        case .success(let r): return ObjectEncryptionState(r)
        case .failure(let e): throw e
        }
    }

    /// GetObject into memory (manifests, which are streamed into the store page by page by the caller).
    public func getObject(bucket: String, key: String) async throws(S3Error) -> [UInt8] {
        let object = ObjectRef(bucket: bucket, key: key)
        switch await send(.getObject(bucket: bucket, key: key), object: object) {
        case .success(let r): return r.body
        case .failure(let e): throw e
        }
    }

    public func putObject(bucket: String, key: String, body: [UInt8], contentType: String) async throws(S3Error) {
        let object = ObjectRef(bucket: bucket, key: key)
        if case .failure(let e) = await send(.putObject(bucket: bucket, key: key, body: body, contentType: contentType), object: object) {
            throw e
        }
    }

    /// Every current object under `prefix`, following `NextContinuationToken` page by page.
    public func listObjectsV2(bucket: String, prefix: String? = nil, pageSize: Int = 1000) async throws(S3Error) -> [ListedObject] {
        var result: [ListedObject] = []
        var token: String?
        var seen: Set<String> = []
        repeat {
            let page: HTTPResponse
            switch await send(.listObjectsV2(bucket: bucket, prefix: prefix, continuationToken: token, maxKeys: pageSize)) {
            case .success(let r): page = r
            case .failure(let e): throw e
            }
            let xml = String(decoding: page.body, as: UTF8.self)
            let keys = ListingKeys(xml, operation: "ListObjectsV2", bucket: bucket)
            for entry in XMLScan.all("Contents", in: xml) {
                result.append(ListedObject(key: try keys.decode(XMLScan.first("Key", in: entry)), versionID: nil, isLatest: true,
                                           isDeleteMarker: false, size: Int(XMLScan.first("Size", in: entry) ?? "") ?? 0))
            }
            guard XMLScan.first("IsTruncated", in: xml) == "true" else { return result }
            let next = XMLScan.first("NextContinuationToken", in: xml)
            try ListingKeys.checkProgress(next, seen: &seen, operation: "ListObjectsV2", bucket: bucket)
            token = next
        } while true
        return result
    }

    /// Every version and delete marker under `prefix`, following the key and version-id markers.
    public func listObjectVersions(bucket: String, prefix: String? = nil, pageSize: Int = 1000) async throws(S3Error) -> [ListedObject] {
        var result: [ListedObject] = []
        var keyMarker: String?
        var versionMarker: String?
        var seen: Set<String> = []
        while true {
            let page: HTTPResponse
            switch await send(.listObjectVersions(bucket: bucket, prefix: prefix, keyMarker: keyMarker,
                                                  versionIdMarker: versionMarker, maxKeys: pageSize)) {
            case .success(let r): page = r
            case .failure(let e): throw e
            }
            let xml = String(decoding: page.body, as: UTF8.self)
            let keys = ListingKeys(xml, operation: "ListObjectVersions", bucket: bucket)
            // Versions and delete markers interleave in key order; scan both element kinds in document order.
            var rest = xml[...]
            while true {
                let version = rest.range(of: "<Version>"), marker = rest.range(of: "<DeleteMarker>")
                let isMarker: Bool
                switch (version, marker) {
                case (nil, nil): isMarker = false
                case (nil, _): isMarker = true
                case (_, nil): isMarker = false
                case (let v?, let d?): isMarker = d.lowerBound < v.lowerBound
                }
                guard let open = isMarker ? marker : version else { break }
                let tag = isMarker ? "DeleteMarker" : "Version"
                guard let close = rest.range(of: "</\(tag)>", range: open.upperBound..<rest.endIndex) else { break }
                let entry = rest[open.upperBound..<close.lowerBound]
                result.append(ListedObject(key: try keys.decode(XMLScan.first("Key", in: entry)), versionID: XMLScan.first("VersionId", in: entry),
                                           isLatest: XMLScan.first("IsLatest", in: entry) == "true", isDeleteMarker: isMarker,
                                           size: Int(XMLScan.first("Size", in: entry) ?? "") ?? 0))
                rest = rest[close.upperBound...]
            }
            guard XMLScan.first("IsTruncated", in: xml) == "true" else { return result }
            let nextKey = try XMLScan.first("NextKeyMarker", in: xml).map { text throws(S3Error) in try keys.decode(text) }
            let nextVersion = XMLScan.first("NextVersionIdMarker", in: xml)
            try ListingKeys.checkProgress(nextKey.map { "\($0)\u{0}\(nextVersion ?? "")" }, seen: &seen,
                                          operation: "ListObjectVersions", bucket: bucket)
            keyMarker = nextKey
            versionMarker = nextVersion
        }
    }
}

/// The keys of one listing page as stored: URL-decoded when the page says S3 encoded them (`<EncodingType>url`, what
/// listings ask for), where a space is `+` (botocore decodes them with `unquote_plus`); as they are otherwise (a store
/// that ignores the parameter sends them plain, and decoding them would change any key with `%` or `+`).
struct ListingKeys {
    let encoded: Bool
    let operation: String
    let bucket: String

    init(_ xml: String, operation: String, bucket: String) {
        encoded = XMLScan.first("EncodingType", in: xml) == "url"
        self.operation = operation
        self.bucket = bucket
    }

    /// A truncated page must say where the next begins, and somewhere not asked for before: otherwise the listing
    /// would end early without a word, or go round for ever (botocore's paginators refuse a repeated token; this also
    /// catches a cycle). `seen` holds the pages asked for so far, one entry per page.
    static func checkProgress(_ next: String?, seen: inout Set<String>, operation: String, bucket: String) throws(S3Error) {
        guard let next, !next.isEmpty else {
            throw S3Error(status: 200, code: "InvalidResponse",
                          message: "a \(operation) page of bucket \(bucket) is truncated but names no next page", operation: operation)
        }
        guard seen.insert(next).inserted else {
            throw S3Error(status: 200, code: "InvalidResponse",
                          message: "a \(operation) page of bucket \(bucket) names a page already listed as the next", operation: operation)
        }
    }

    func decode(_ text: String?) throws(S3Error) -> String {
        guard let text else { return "" }
        guard encoded else { return text }
        guard let key = URIEncoding.decode(text.replacingOccurrences(of: "+", with: " ")) else {
            throw S3Error(status: 200, code: "InvalidResponse",
                          message: "a \(operation) page of bucket \(bucket) holds a key that is not valid URL encoding: \(text)",
                          operation: operation)
        }
        return key
    }
}
