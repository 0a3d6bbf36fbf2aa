"""Signs UpdateObjectEncryption requests with botocore (the second opinion) and prints what it would send, as JSON.

Reads a JSON list of {"bucket", "key", "version_id"?} on stdin. Nothing leaves the machine: a before-send handler
captures each prepared request and answers it locally.
"""
import json
import sys

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config

cases = json.load(sys.stdin)
session = botocore.session.get_session()
client = session.create_client(
    "s3", region_name="us-west-2",
    aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
captured = []


class _Raw:
    def stream(self, *args, **kwargs):
        return iter([b""])


def before_send(request, **kwargs):
    captured.append({"url": request.url, "headers": {k: (v.decode() if isinstance(v, bytes) else v)
                                                     for k, v in request.headers.items()}})
    return AWSResponse(request.url, 200, {}, _Raw())


client.meta.events.register("before-send.s3", before_send)
for case in cases:
    args = dict(Bucket=case["bucket"], Key=case["key"],
                ObjectEncryption={"SSEKMS": {"KMSKeyArn": case["arn"], "BucketKeyEnabled": True}})
    if case.get("version_id"):
        args["VersionId"] = case["version_id"]
    client.update_object_encryption(**args)
json.dump(captured, sys.stdout)
