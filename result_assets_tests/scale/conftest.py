"""Servers the scale-out tests start on 127.0.0.1 and stop: S3 (moto) and an external PostgreSQL."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

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
    try:
        with pytest.MonkeyPatch.context() as env:  # the AWS variables put back as they were, after
            wait_for_port(port, process)
            for key, value in {**S3_VARS, "AWS_ENDPOINT_URL": endpoint}.items():
                env.setenv(key, value)
            yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:  # busy with a kept-alive connection: stop it hard
            process.kill()
            process.wait(timeout=10)
        log.close()


def make_bucket(endpoint: str) -> str:
    import boto3

    name = f"results-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=endpoint, region_name=S3_VARS["AWS_REGION"],
                 aws_access_key_id=S3_VARS["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=S3_VARS["AWS_SECRET_ACCESS_KEY"]).create_bucket(Bucket=name)
    return name


PG_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian's postgresql-15 package (CI installs it)
PG_USER, PG_PASSWORD = "result_assets", "s3cret-pw"


@pytest.fixture(scope="module")
def external_postgres():
    """A PostgreSQL 15 server on 127.0.0.1 that only accepts passwords; its admin URL.

    As root, the server runs as the `postgres` user (initdb refuses root).
    """
    port = free_port()
    base = Path(tempfile.mkdtemp(prefix="ra-external-pg-"))
    data, pwfile = base / "data", base / "pw"
    pwfile.write_text(PG_PASSWORD)
    run_as = []
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        shutil.chown(pwfile, "postgres")
    subprocess.run([*run_as, str(PG_BIN / "initdb"), "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}",
                    "--auth=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"],
                   check=True, capture_output=True, timeout=120)
    options = f"-h 127.0.0.1 -p {port} -k {base} -c fsync=off"
    subprocess.run([*run_as, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(base / "log"), "-o", options,
                    "-w", "-t", "60", "start"], check=True, capture_output=True, timeout=90)
    try:
        yield f"postgresql+psycopg2://{PG_USER}:{PG_PASSWORD}@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def deploy_pg_env(url: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads, for the database of `url`."""
    parts = urlsplit(url)
    return {"DAGSTER_PG_USERNAME": parts.username, "DAGSTER_PG_PASSWORD": parts.password,
            "DAGSTER_PG_HOST": parts.hostname, "DAGSTER_PG_DB": parts.path.lstrip("/"),
            "DAGSTER_PG_PORT": str(parts.port)}
