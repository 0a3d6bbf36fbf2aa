import Domain
@testable import S3
import XCTest

final class ClassificationTests: XCTestCase {
    func classify(_ status: Int, _ code: String, _ message: String = "", region: String? = nil) -> Classification {
        Classifier.classify(S3Error(status: status, code: code, message: message, region: region, operation: "UpdateObjectEncryption"))
    }

    /// Every message the UpdateObjectEncryption API page lists, and the class it must give.
    func testUpdateObjectEncryptionMessagesMapToTheirOutcomeClasses() {
        let objectLock = "The encryption type for the specified object can’t be updated because that object is protected by S3 Object Lock. If the object has a governance-mode retention period or a legal hold, you must first remove the Object Lock status on the object before you issue your UpdateObjectEncryption request. You can't use the UpdateObjectEncryption operation with objects that have an Object Lock compliance mode retention period applied to them."
        XCTAssertEqual(classify(403, "AccessDenied", objectLock), .terminal(.objectLock))
        for kms in [
            "The Amazon Web Services KMS key in the request must be owned by the same account as the bucket. Modify the request to specify a KMS key from the same account, and then try again.",
            "The bucket owner's account was approved to make UpdateObjectEncryption requests that use any Amazon Web Services KMS key in their organization, but the bucket owner's account isn't part of an organization in Organizations. Make sure that the bucket owner's account and the specified KMS key belong to the same organization, and then try again.",
            "The specified Amazon Web Services KMS key must be from the same organization in Organizations as the bucket. Specify a KMS key that belongs to the same organization as the bucket, and then try again.",
        ] {
            XCTAssertEqual(classify(403, "AccessDenied", kms), .terminal(.kmsKeyDenied), kms)
        }
        XCTAssertEqual(classify(403, "AccessDenied", "Access Denied"), .terminal(.accessDenied))
        XCTAssertEqual(classify(403, "", ""), .terminal(.accessDenied), "HEAD 403 has no body")
        XCTAssertEqual(classify(400, "InvalidRequest", "The UpdateObjectEncryption operation doesn't supported unencrypted source objects. Only source objects encrypted with SSE-S3 or SSE-KMS are supported."),
                       .terminal(.unsupportedEncryption))
        XCTAssertEqual(classify(400, "InvalidRequest", "The UpdateObjectEncryption operation doesn't support source objects with the encryption type DSSE-KMS or SSE-C. Only source objects encrypted with SSE-S3 or SSE-KMS are supported."),
                       .terminal(.unsupportedEncryption))
        for invalid in [
            "The UpdateObjectEncryption operation doesn't support updating the encryption type to DSSE-KMS or SSE-C. Modify the request to specify SSE-KMS for the updated encryption type, and then try again.",
            "Requests that modify an object's encryption type to SSE-KMS require a valid Amazon Web Services KMS key Amazon Resource Name (ARN). Confirm that you have a correctly formatted KMS key ARN in your request, and then try again.",
            "The BucketKeyEnabled value isn't valid. Valid values are true or false. Modify the request to specify a valid value, and then try again.",
        ] {
            XCTAssertEqual(classify(400, "InvalidRequest", invalid), .terminal(.invalidRequest), invalid)
        }
        XCTAssertEqual(classify(400, "InvalidArgument", "Invalid version id specified"), .terminal(.invalidRequest))
        XCTAssertEqual(classify(400, "MalformedXML"), .terminal(.invalidRequest))
        XCTAssertEqual(classify(404, "NoSuchKey"), .terminal(.notFound))
        XCTAssertEqual(classify(404, "NoSuchVersion"), .terminal(.notFound))
        XCTAssertEqual(classify(404, "NoSuchBucket"), .terminal(.notFound))
        XCTAssertEqual(classify(404, ""), .terminal(.notFound))
    }

    func testThrottlingTransientSkewRegionAndCredentials() {
        XCTAssertEqual(classify(503, "SlowDown", "Please reduce your request rate."), .retryable(.throttled(kms: false)))
        XCTAssertEqual(classify(503, "SlowDown", "Please reduce your request rate for operations involving AWS KMS."),
                       .retryable(.throttled(kms: true)))
        XCTAssertEqual(classify(429, ""), .retryable(.throttled(kms: false)))
        XCTAssertEqual(classify(400, "ThrottlingException"), .retryable(.throttled(kms: false)))
        XCTAssertEqual(classify(500, "InternalError"), .retryable(.transient))
        XCTAssertEqual(classify(503, "ServiceUnavailable"), .retryable(.transient))
        XCTAssertEqual(classify(400, "RequestTimeout"), .retryable(.transient))
        XCTAssertEqual(classify(502, ""), .retryable(.transient))
        XCTAssertEqual(classify(403, "RequestTimeTooSkewed"), .clockSkew)
        XCTAssertEqual(classify(301, "PermanentRedirect", region: "eu-west-1"), .wrongRegion("eu-west-1"))
        XCTAssertEqual(classify(307, "TemporaryRedirect", region: "ap-northeast-2"), .wrongRegion("ap-northeast-2"))
        XCTAssertEqual(classify(307, ""), .wrongRegion(nil), "a HEAD's 307 has no body: HeadBucket is asked")
        XCTAssertEqual(classify(400, "AuthorizationHeaderMalformed", region: "ap-south-1"), .wrongRegion("ap-south-1"))
        // A HEAD's bare 400 (code from the status): a redirect when the header names a region, and for HeadObject
        // even when none does (the client then asks HeadBucket). Not for a bodiless 400 to anything else.
        func bare400(_ operation: String, region: String?) -> Classification {
            Classifier.classify(S3Error(status: 400, code: S3Error.defaultCode(400), message: "", region: region, operation: operation))
        }
        XCTAssertEqual(bare400("HeadBucket", region: "eu-west-1"), .wrongRegion("eu-west-1"))
        XCTAssertEqual(bare400("HeadObject", region: nil), .wrongRegion(nil))
        XCTAssertNotEqual(bare400("UpdateObjectEncryption", region: nil), .wrongRegion(nil))
        XCTAssertNotEqual(bare400("HeadBucket", region: nil), .wrongRegion(nil))
        XCTAssertEqual(classify(400, "ExpiredToken"), .expiredCredentials)
        XCTAssertEqual(classify(403, "SignatureDoesNotMatch"), .terminal(.accessDenied))
    }

    /// The simulator writes messages with `XMLText.escape`; the client reads them back with `XMLScan`.
    func testEscapedTextReadsBackUnchanged() {
        for text in ["plain", "a & b < c > d \"e\" 'f'", "&amp; already", "ünïcödé ✓ & <x>", ""] {
            let escaped = XMLText.escape(text)
            XCTAssertFalse(escaped.utf8.contains(where: { $0 == 0x3C || $0 == 0x3E || $0 == 0x22 || $0 == 0x27 }), escaped)
            XCTAssertEqual(XMLScan.first("Message", in: "<Error><Message>\(escaped)</Message></Error>"), text)
        }
        XCTAssertEqual(XMLText.escape("a&b"), "a&amp;b")
    }

    /// Messages are matched as bytes: found anywhere, case-sensitively, across non-ASCII text.
    func testPhrasesAreFoundAsBytes() {
        XCTAssertTrue(ByteSearch.contains("Object Lock", in: "can’t be updated: S3 Object Lock."))
        XCTAssertTrue(ByteSearch.contains("can’t", in: "it can’t"))
        XCTAssertFalse(ByteSearch.contains("object lock", in: "S3 Object Lock"))
        XCTAssertFalse(ByteSearch.contains("AWS KMS key", in: "AWS KMS"))
        XCTAssertFalse(ByteSearch.contains("KMS", in: ""))
        XCTAssertTrue(ByteSearch.contains("", in: "anything"))
    }

    /// Numeric references become their character; what is not an entity stays as it was.
    func testEntitiesAreDecodedAndAnythingElseKept() {
        let cases = ["&#x2713; &#10003; &#65;": "✓ ✓ A", "AT&T; & &unknown; &amp": "AT&T; & &unknown; &amp",
                     "&#xD800;": "&#xD800;", "&lt;a&gt;&quot;&apos;&amp;amp;": "<a>\"'&amp;"]
        for (raw, decoded) in cases {
            XCTAssertEqual(XMLScan.first("Message", in: "<Error><Message>\(raw)</Message></Error>"), decoded, raw)
        }
        XCTAssertEqual(XMLScan.first("Region", in: "<Error><Region/></Error>"), "")
        XCTAssertNil(XMLScan.first("Region", in: "<Error><Code>x</Code></Error>"))
    }

    func testErrorDocumentIsParsedWithRequestIDsAndEntities() {
        let body = Array("""
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>AccessDenied</Code><Message>can&apos;t &amp; won&#39;t</Message><Resource>/b/k</Resource>\
            <RequestId>4442587FB7D0A2F9</RequestId><HostId>host-id-2</HostId></Error>
            """.utf8)
        let e = S3Error(status: 403, headers: [("x-amz-request-id", "ignored")], body: body, operation: "UpdateObjectEncryption",
                        object: ObjectRef(bucket: "b-1", key: "k"))
        XCTAssertEqual(e.code, "AccessDenied")
        XCTAssertEqual(e.message, "can't & won't")
        XCTAssertEqual(e.requestID, "4442587FB7D0A2F9")
        XCTAssertEqual(e.hostID, "host-id-2")
        XCTAssertEqual(e.description,
                       "UpdateObjectEncryption s3://b-1/k: HTTP 403 AccessDenied: can't & won't (request id 4442587FB7D0A2F9, host id host-id-2)")
        let head = S3Error(status: 301, headers: [("x-amz-bucket-region", "eu-central-1"), ("x-amz-request-id", "R1")], body: [],
                           operation: "HeadObject", object: nil)
        XCTAssertEqual(head.code, "PermanentRedirect")
        XCTAssertEqual(head.region, "eu-central-1")
        XCTAssertEqual(head.requestID, "R1")
        XCTAssertTrue(S3Error.isErrorDocument(body))
        XCTAssertFalse(S3Error.isErrorDocument([]))
        XCTAssertEqual(head.description, "HeadObject: HTTP 301 PermanentRedirect (request id R1)")
        let noAnswer = S3Error(status: 0, code: "", message: "connection failed: Connection refused (curl code 7)",
                               operation: "GetObject", object: ObjectRef(bucket: "b-1", key: "m.csv"))
        XCTAssertEqual(noAnswer.description, "GetObject s3://b-1/m.csv: connection failed: Connection refused (curl code 7)")
    }
}
