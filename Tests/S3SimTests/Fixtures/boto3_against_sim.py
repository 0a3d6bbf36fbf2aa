"""Sends botocore-signed requests to the simulator (argv: endpoint, bucket, key, version id), genuine and tampered
after signing, and prints what came back as JSON. Loopback only."""
import json
import sys

import boto3
import botocore
from botocore.config import Config

endpoint, bucket, key, version = sys.argv[1:5]
arn = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def client():
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIDSIMULATOR", aws_secret_access_key="simulator/secret+key",
                        config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}))


def call(tamper=None):
    c = client()
    if tamper:
        c.meta.events.register("before-send.s3", tamper)
    try:
        c.update_object_encryption(Bucket=bucket, Key=key, VersionId=version,
                                   ObjectEncryption={"SSEKMS": {"KMSKeyArn": arn, "BucketKeyEnabled": True}})
        return {"ok": True}
    except botocore.exceptions.ClientError as e:
        return {"ok": False, "code": e.response["Error"]["Code"], "status": e.response["ResponseMetadata"]["HTTPStatusCode"]}


def other_key(request, **kwargs):
    request.url = request.url.replace("?encryption", "x?encryption")


def other_date(request, **kwargs):
    d = request.headers["X-Amz-Date"]
    d = d.decode() if isinstance(d, bytes) else d
    # One second later: still inside the clock window, but not what was signed.
    request.headers["X-Amz-Date"] = d[:-2] + str((int(d[-2]) + 1) % 10) + "Z"


def other_body(request, **kwargs):
    request.body = request.body.replace(b"true", b"fals")


def other_query(request, **kwargs):
    request.url = request.url.replace("versionId=", "versionId=x")


def unsigned_header(request, **kwargs):
    request.headers["x-amz-request-payer"] = "requester"


results = {
    "genuine": call(),
    "key": call(other_key),
    "date": call(other_date),
    "body": call(other_body),
    "query": call(other_query),
    "unsigned_header": call(unsigned_header),
}
head = client().head_object(Bucket=bucket, Key=key, VersionId=version)
results["head"] = {"sse": head.get("ServerSideEncryption"), "key": head.get("SSEKMSKeyId"), "bucket_key": head.get("BucketKeyEnabled")}
json.dump(results, sys.stdout)
