"""S3 fixtures: a moto server on loopback for the session, a fresh bucket per test."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from storage import CacheStorage

_DUMMY_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint_url() -> Iterator[str]:
    """URL of a moto S3 server on loopback, with dummy AWS credentials set for the session."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request
    saved = {name: os.environ.get(name) for name in _DUMMY_AWS_ENV}
    os.environ.update(_DUMMY_AWS_ENV)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def s3_client(s3_endpoint_url: str) -> Any:
    """A boto3 client for the moto server, for checks below the storage API."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint_url, region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    """A fresh, empty bucket."""
    name = f"test-{uuid.uuid4().hex[:20]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_cache_url(s3_bucket: str) -> str:
    """``s3://<fresh bucket>/cache``."""
    return f"s3://{s3_bucket}/cache"


@pytest.fixture(params=["local", "s3"])
def cache_storage(request: pytest.FixtureRequest, tmp_path: Path) -> CacheStorage:
    """A CacheStorage on a temporary directory, then on a fresh moto S3 bucket."""
    if request.param == "local":
        return CacheStorage(str(tmp_path / "cache"))
    url: str = request.getfixturevalue("s3_cache_url")
    endpoint: str = request.getfixturevalue("s3_endpoint_url")
    return CacheStorage(url, s3_endpoint_url=endpoint)
