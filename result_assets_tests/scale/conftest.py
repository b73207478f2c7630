"""Servers the scale-out tests start on 127.0.0.1 and stop: an S3-compatible store (moto)."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

S3_VARS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_ALLOW_HTTP": "true",  # the local server speaks plain HTTP
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {seconds}s")


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on a free local port; its URL. AWS_* variables point at it meanwhile."""
    port = free_port()
    log = tempfile.TemporaryFile()
    process = subprocess.Popen([sys.executable, "-m", "result_assets_tests.scale.s3_server", str(port)],
                               stdout=log, stderr=log)
    endpoint = f"http://127.0.0.1:{port}"
    saved = {k: os.environ.get(k) for k in (*S3_VARS, "AWS_ENDPOINT_URL")}
    try:
        wait_for_port(port, process)
        os.environ.update(S3_VARS, AWS_ENDPOINT_URL=endpoint)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def make_bucket(endpoint: str) -> str:
    import boto3

    name = f"results-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=endpoint, region_name=S3_VARS["AWS_REGION"],
                 aws_access_key_id=S3_VARS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=S3_VARS["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=name)
    return name
