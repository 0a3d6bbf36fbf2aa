import Domain
import Foundation

/// An S3 call before signing: method, object, query and headers, body.
public struct S3Request: Sendable {
    public var operation: String
    public var method: String
    public var bucket: String
    public var key: String
    /// Decoded query parameters; `("encryption", "")` is the bare `?encryption` flag.
    public var query: [(name: String, value: String)]
    /// Headers to send and sign (besides `host` and the `x-amz-*` the signer adds).
    public var headers: [(name: String, value: String)] { didSet { headersAreCanonical = false } }
    /// Set by the constructors below, whose header names are lowercase and whose values need no trimming: the signer
    /// then takes them as they are rather than checking every byte of every request. Any change to `headers` clears it.
    var headersAreCanonical = false
    /// Setting a new body drops `payloadSHA256`, so a stale hash can never be signed.
    public var body: [UInt8] { didSet { payloadSHA256 = nil } }
    /// Hex SHA-256 of `body` when already known (the same body serves every task of a job).
    public var payloadSHA256: String?

    public init(operation: String, method: String, bucket: String, key: String = "",
                query: [(name: String, value: String)] = [], headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.operation = operation
        self.method = method
        self.bucket = bucket
        self.key = key
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// UpdateObjectEncryption: `PUT /{Bucket}/{Key+}?encryption[&versionId=V]` with an `ObjectEncryption` body and the
    /// CRC32 checksum header the service model requires (`httpChecksum.requestChecksumRequired`), as the SDKs send it.
    /// https://docs.aws.amazon.com/AmazonS3/latest/API/API_UpdateObjectEncryption.html
    public static func updateObjectEncryption(_ object: ObjectRef, kmsKeyARN: String, bucketKeyEnabled: Bool,
                                              expectedBucketOwner: String? = nil, requestPayer: Bool = false) -> S3Request {
        updateObjectEncryption(object, body: EncryptionBody(kmsKeyARN: kmsKeyARN, bucketKeyEnabled: bucketKeyEnabled),
                               expectedBucketOwner: expectedBucketOwner, requestPayer: requestPayer)
    }

    /// The `ObjectEncryption` body with its checksums, computed once and shared by every call with the same target.
    public struct EncryptionBody: Sendable {
        public let bytes: [UInt8]
        public let crc32Base64: String
        public let sha256Hex: String
        /// The checksum headers every call with this body sends: built once, so a call only retains the array.
        let checksumHeaders: [(name: String, value: String)]

        public init(kmsKeyARN: String, bucketKeyEnabled: Bool) {
            let xml = "<ObjectEncryption xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><SSE-KMS><KMSKeyArn>"
                + XMLText.escape(kmsKeyARN) + "</KMSKeyArn><BucketKeyEnabled>" + (bucketKeyEnabled ? "true" : "false")
                + "</BucketKeyEnabled></SSE-KMS></ObjectEncryption>"
            bytes = Array(xml.utf8)
            crc32Base64 = Crypto.base64(Crypto.crc32(bytes))
            sha256Hex = Crypto.sha256Hex(bytes)
            checksumHeaders = [("x-amz-checksum-crc32", crc32Base64), ("x-amz-sdk-checksum-algorithm", "CRC32")]
        }
    }

    public static func updateObjectEncryption(_ object: ObjectRef, body encryption: EncryptionBody,
                                              expectedBucketOwner: String? = nil, requestPayer: Bool = false) -> S3Request {
        let body = encryption.bytes
        // The shared arrays are copied only when a call adds to them.
        var query = Self.encryptionQuery
        if let version = object.versionId { query.append(("versionId", version)) }
        var headers = encryption.checksumHeaders
        if let expectedBucketOwner { headers.append(("x-amz-expected-bucket-owner", expectedBucketOwner)) }
        if requestPayer { headers.append(("x-amz-request-payer", "requester")) }
        var request = S3Request(operation: "UpdateObjectEncryption", method: "PUT", bucket: object.bucket, key: object.key,
                                query: query, headers: headers, body: body)
        request.payloadSHA256 = encryption.sha256Hex
        // Names above are lowercase literals; values are base64, "CRC32", "requester" and a validated account ID.
        request.headersAreCanonical = expectedBucketOwner.map { SigV4Signer.isCanonicalValue($0) } ?? true
        return request
    }

    private static let encryptionQuery: [(name: String, value: String)] = [("encryption", "")]

    public static func headObject(_ object: ObjectRef, expectedBucketOwner: String? = nil) -> S3Request {
        var r = S3Request(operation: "HeadObject", method: "HEAD", bucket: object.bucket, key: object.key,
                          query: object.versionId.map { [("versionId", $0)] } ?? [])
        if let expectedBucketOwner { r.headers.append(("x-amz-expected-bucket-owner", expectedBucketOwner)) }
        return r
    }

    public static func getObject(bucket: String, key: String, versionId: String? = nil) -> S3Request {
        S3Request(operation: "GetObject", method: "GET", bucket: bucket, key: key,
                  query: versionId.map { [("versionId", $0)] } ?? [])
    }

    public static func putObject(bucket: String, key: String, body: [UInt8], contentType: String) -> S3Request {
        S3Request(operation: "PutObject", method: "PUT", bucket: bucket, key: key,
                  headers: [("content-type", contentType), ("content-md5", Crypto.base64(Crypto.md5(body)))], body: body)
    }

    /// Listings ask for keys URL-encoded, as botocore does for every listing: a key may hold characters XML 1.0 cannot
    /// carry (control characters), and an encoded key can. The response says `<EncodingType>url</EncodingType>` when
    /// it did so (`ListingKeys` decodes). https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html
    static let listEncoding: (name: String, value: String) = ("encoding-type", "url")

    public static func headBucket(_ bucket: String) -> S3Request {
        S3Request(operation: "HeadBucket", method: "HEAD", bucket: bucket)
    }

    /// ListObjectsV2, one page; pass the previous page's `NextContinuationToken`. Keys come back URL-encoded (see
    /// `listEncoding`).
    public static func listObjectsV2(bucket: String, prefix: String? = nil, continuationToken: String? = nil,
                                     maxKeys: Int = 1000) -> S3Request {
        var query: [(name: String, value: String)] = [("list-type", "2"), ("max-keys", String(maxKeys)), listEncoding]
        if let prefix { query.append(("prefix", prefix)) }
        if let continuationToken { query.append(("continuation-token", continuationToken)) }
        return S3Request(operation: "ListObjectsV2", method: "GET", bucket: bucket, query: query)
    }

    /// ListObjectVersions, one page; pass the previous page's `NextKeyMarker` and `NextVersionIdMarker`. Keys come
    /// back URL-encoded (see `listEncoding`).
    public static func listObjectVersions(bucket: String, prefix: String? = nil, keyMarker: String? = nil,
                                          versionIdMarker: String? = nil, maxKeys: Int = 1000) -> S3Request {
        var query: [(name: String, value: String)] = [("versions", ""), ("max-keys", String(maxKeys)), listEncoding]
        if let prefix { query.append(("prefix", prefix)) }
        if let keyMarker { query.append(("key-marker", keyMarker)) }
        if let versionIdMarker { query.append(("version-id-marker", versionIdMarker)) }
        return S3Request(operation: "ListObjectVersions", method: "GET", bucket: bucket, query: query)
    }
}

/// A signed request ready for the transport. `description` omits the Authorization header and the token.
public struct PreparedRequest: Sendable, CustomStringConvertible {
    public var method: String
    public var url: String
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public var description: String {
        let safe = headers.filter { !["authorization", "x-amz-security-token"].contains($0.name.lowercased()) }
        return "\(method) \(url) headers: \(safe.map { "\($0.name): \($0.value)" }.joined(separator: ", "))"
    }
}

/// Signs `S3Request`s for an endpoint: fills `host`, `x-amz-date`, `x-amz-content-sha256`, the session token and
/// `Authorization`, and builds the URL with the same encoding the signature covers.
public struct S3RequestSigner: Sendable {
    public let endpoint: S3Endpoint
    public let userAgent: String

    public init(endpoint: S3Endpoint, userAgent: String = "reencryptd/0.1") {
        self.endpoint = endpoint
        self.userAgent = userAgent
    }

    public func prepare(_ request: S3Request, region: String, signer: SigV4Signer, credentials: AWSCredentials,
                        date: SigV4Date) -> PreparedRequest {
        let (host, canonicalURI, urlPrefix) = endpoint.address(bucket: request.bucket, key: request.key, region: region)
        let payloadHash = request.payloadSHA256 ?? Crypto.sha256Hex(request.body)
        var signed: [(name: String, value: String)] = []
        signed.reserveCapacity(request.headers.count + 6)
        signed.append(("host", host))
        signed += request.headers
        signed.append(("x-amz-content-sha256", payloadHash))
        signed.append(("x-amz-date", date.amzDate))
        if let token = credentials.sessionToken { signed.append(("x-amz-security-token", token)) }
        // Sorted here (stable, small) so the signer can take the list as it is.
        SigV4Signer.sortByName(&signed)
        let signature: SigV4Signer.Signed
        do {
            var toSign = SigV4Request(method: request.method, canonicalURI: canonicalURI, query: request.query, headers: signed,
                                      payloadHash: payloadHash)
            // Host, hex digest and date are canonical by construction; a session token is checked like any other value.
            toSign.headersAreCanonical = request.headersAreCanonical && credentials.sessionToken == nil
                && SigV4Signer.isCanonicalValue(host)
            signature = signer.sign(toSign, credentials: credentials, date: date)
        }  // `toSign` shares the header list until here: the edits below then change it in place, not a copy
        var url: [UInt8] = []
        url.reserveCapacity(urlPrefix.utf8.count + canonicalURI.utf8.count + 64)
        url += urlPrefix.utf8
        url += canonicalURI.utf8
        for (i, q) in request.query.enumerated() {
            url.append(i == 0 ? 0x3F : 0x26)  // '?' then '&'
            URIEncoding.append(q.name, keepSlash: false, to: &url)
            // A bare flag stays bare, as the SDKs send it (`?encryption`); the signature covers `encryption=` either way.
            if !(q.value.isEmpty && (q.name == "encryption" || q.name == "versions")) {
                url.append(0x3D)
                URIEncoding.append(q.value, keepSlash: false, to: &url)
            }
        }
        // Host is sent exactly as signed (libcurl would otherwise derive its own from the URL).
        if let i = signed.firstIndex(where: { $0.name == "host" }) { signed[i].name = "Host" }
        signed.append(("authorization", signature.authorization))
        signed.append(("user-agent", userAgent))
        return PreparedRequest(method: request.method, url: String(decoding: url, as: UTF8.self), headers: signed, body: request.body)
    }
}

