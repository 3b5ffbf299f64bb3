"""A local S3 server for tests: moto in server mode (moto[server], pinned in requirements-dev.txt), on a free
loopback port. It speaks S3's HTTP API, so django-storages and boto3 talk to it exactly as to a real bucket."""

import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

from tests.worker_support import unavailable

S3_KEY_ID = "billpay-test"
S3_SECRET = "billpay-test-secret"
S3_REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def moto_s3_server():
    """Yields the endpoint URL of a running moto S3 server; stops it afterwards."""
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    try:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    except OSError as exc:
        unavailable(f"cannot start the local S3 server (moto[server]): {exc}")
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    unavailable(f"the local S3 server did not start: {process.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def s3_storage_settings(endpoint: str, bucket: str, location: str = "private") -> dict:
    """A STORAGES entry as production builds it (config/settings/production.py), pointed at the local server."""
    return {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint,
            "region_name": S3_REGION,
            "access_key": S3_KEY_ID,
            "secret_key": S3_SECRET,
            "default_acl": "private",
            "signature_version": "s3v4",
            "querystring_auth": True,
            "querystring_expire": 300,
            "file_overwrite": False,
            "location": location,
        },
    }
