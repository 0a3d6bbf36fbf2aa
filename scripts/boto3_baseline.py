"""The alternative reencryptd must beat: a boto3 script with a thread pool calling UpdateObjectEncryption for the
objects of a Batch Operations CSV manifest, against the same simulator. Runs for SECONDS, prints objects/s.
Usage: boto3_baseline.py ENDPOINT MANIFEST.csv SECONDS [THREADS]"""
import concurrent.futures
import csv
import sys
import threading
import time
import urllib.parse

import boto3
from botocore.config import Config

endpoint, manifest, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
threads = int(sys.argv[4]) if len(sys.argv) > 4 else 32
arn = "arn:aws:kms:us-east-1:111122223333:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="AKIDSIMULATOR", aws_secret_access_key="simulator/secret+key",
                      config=Config(max_pool_connections=threads, retries={"mode": "standard"},
                                    s3={"addressing_style": "path"}))
rows = []
with open(manifest) as f:
    for row in csv.reader(f):
        rows.append((row[0], urllib.parse.unquote_plus(row[1]), row[2] if len(row) > 2 else None))
        if len(rows) >= 200000:
            break
lock = threading.Lock()
done = 0
next_row = 0
deadline = time.time() + seconds


def worker():
    global done, next_row
    while time.time() < deadline:
        with lock:
            i = next_row
            next_row += 1
        bucket, key, version = rows[i % len(rows)]
        args = dict(Bucket=bucket, Key=key, ObjectEncryption={"SSEKMS": {"KMSKeyArn": arn, "BucketKeyEnabled": True}})
        if version:
            args["VersionId"] = version
        try:
            client.update_object_encryption(**args)
        except Exception:
            pass
        with lock:
            done += 1


start = time.time()
with concurrent.futures.ThreadPoolExecutor(threads) as pool:
    for _ in range(threads):
        pool.submit(worker)
elapsed = time.time() - start
print("boto3 thread pool (%d threads): %d objects in %.1f s = %.0f objects/s" % (threads, done, elapsed, done / elapsed))
