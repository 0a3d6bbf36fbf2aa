"""Writes a wrk Lua script that sends one UpdateObjectEncryption request signed by botocore (valid for the
simulator's 15-minute clock window). Usage: wrk_request.py ENDPOINT BUCKET KEY OUT.lua"""
import sys

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config

endpoint, bucket, key, out = sys.argv[1:5]
client = botocore.session.get_session().create_client(
    "s3", region_name="us-east-1", endpoint_url=endpoint,
    aws_access_key_id="AKIDSIMULATOR", aws_secret_access_key="simulator/secret+key",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))
captured = {}


class _Raw:
    def stream(self, *args, **kwargs):
        return iter([b""])


def grab(request, **kwargs):
    captured["request"] = request
    return AWSResponse(request.url, 200, {}, _Raw())


client.meta.events.register("before-send.s3", grab)
client.update_object_encryption(Bucket=bucket, Key=key, ObjectEncryption={
    "SSEKMS": {"KMSKeyArn": "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
               "BucketKeyEnabled": True}})
r = captured["request"]
path = r.url.split("://", 1)[1]
path = path[path.index("/"):]
body = r.body if isinstance(r.body, bytes) else r.body.encode()


def lua(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


with open(out, "w") as f:
    f.write("wrk.method = \"PUT\"\n")
    f.write("wrk.path = %s\n" % lua(path))
    f.write("wrk.body = %s\n" % lua(body.decode()))
    for k, v in r.headers.items():
        v = v.decode() if isinstance(v, bytes) else v
        if k.lower() in ("content-length", "user-agent"):
            continue
        f.write("wrk.headers[%s] = %s\n" % (lua(k), lua(v)))
