"""Helpers for the hostile-input and fault tests: state snapshots, mounts, PostgreSQL, S3 faults."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.services import POSTGRES_HOST, POSTGRES_PORT, POSTGRES_USER
from tests.world import World


def state(world: World) -> dict[str, Any]:
    """Everything a request could change: catalog rows and every file under the cache root."""
    catalog = world.catalog
    return {
        "connections": [
            (c.id, c.name, c.source_type, json.dumps(c.config, sort_keys=True))
            for c in catalog.list_connections()
        ],
        "tables": [
            (
                t.id,
                t.connection_id,
                t.schema_name,
                t.table_name,
                t.arrow_schema_json,
                t.parquet_path,
                t.last_sync,
            )
            for t in catalog.list_tables()
        ],
        "pending_deletions": [
            (d.path, d.delete_after, d.attempts, d.last_error) for d in catalog.list_deletions()
        ],
        "files": all_files(world.storage.root) if not world.storage.is_s3 else world.cache_files(),
    }


def all_files(root: str | Path) -> set[str]:
    """Every file (not only Parquet) below a local directory."""
    return {
        os.path.join(directory, name) for directory, _, names in os.walk(root) for name in names
    }


def assert_inside(root: str, paths: set[str]) -> None:
    real_root = os.path.realpath(root)
    for path in paths:
        real = os.path.realpath(path)
        assert os.path.commonpath([real_root, real]) == real_root and real != real_root, path


def register(client: httpx.Client, name: str, source_type: str, config: dict[str, Any]) -> int:
    response = client.post(
        "/connections", json={"name": name, "source_type": source_type, "config": config}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["discovery_status"] == "success", body
    return int(body["id"])


def query_rows(client: httpx.Client, sql: str) -> list[list[Any]]:
    response = client.post("/query", json={"sql": sql})
    assert response.status_code == 200, f"{sql}: {response.text}"
    return list(response.json()["rows"])


def refresh_table(
    client: httpx.Client, connection_id: int, schema: str, table: str
) -> httpx.Response:
    return client.post(
        "/refresh",
        json={
            "connection_id": connection_id,
            "schema_name": schema,
            "table_name": table,
            "data": True,
        },
    )


# -- PostgreSQL ------------------------------------------------------------------------------


def pg_admin(database: str = "test") -> psycopg.Connection[Any]:
    dsn = f"host={POSTGRES_HOST} port={POSTGRES_PORT} user={POSTGRES_USER} dbname={database}"
    return psycopg.connect(dsn, autocommit=True)


def terminate_backends(database: str, query_matches: str | None = None) -> int:
    """pg_terminate_backend every other session on `database` (running a query matching a regex)."""
    with pg_admin() as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid() "
            "AND (%s::text IS NULL OR (state = 'active' AND query ~* %s))",
            (database, query_matches, query_matches),
        ).fetchall()
    return sum(1 for (killed,) in rows if killed)


# -- mounts ----------------------------------------------------------------------------------


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True)


@contextmanager
def tmpfs(directory: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted on `directory` (root only), unmounted afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        _mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory))
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        pytest.skip(f"cannot mount a tmpfs (needs root / CAP_SYS_ADMIN): {detail}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False, capture_output=True)


def remount(directory: Path, options: str) -> None:
    _mount("-o", f"remount,{options}", str(directory))


@contextmanager
def freezable_directory(directory: Path) -> Iterator[Callable[[bool], str]]:
    """`directory`, writable until the yielded `freeze(True)`; it returns the cause a write then
    fails with, and `freeze(False)` makes it writable again.

    Root ignores directory permissions, so as root it is a tmpfs remounted read-only (as the
    fault tests do), otherwise a directory whose write permission is taken away.
    """
    if os.geteuid() != 0:
        directory.mkdir(parents=True, exist_ok=True)

        def chmod(frozen: bool) -> str:
            os.chmod(directory, 0o555 if frozen else 0o755)
            return "permission denied"

        try:
            yield chmod
        finally:
            chmod(False)
        return
    with tmpfs(directory, "64m"):

        def ro(frozen: bool) -> str:
            remount(directory, "ro" if frozen else "rw")
            return "read-only file system"

        yield ro


# -- S3 --------------------------------------------------------------------------------------


class FaultyS3Proxy:
    """A loopback HTTP proxy in front of an S3 endpoint that can be told to fail.

    mode "pass": forward everything; "fail_writes": answer uploads (objects, multipart parts
    and completion, not the start of a multipart upload) with 403 AccessDenied, forward reads
    and aborts; "down": answer
    every request with 503.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.mode = "pass"
        self.failed: list[str] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive and "100 Continue", as S3 clients expect

            def log_message(self, *_args: Any) -> None:
                return

            def _handle(self) -> None:
                # Starting a multipart upload passes, so a failed upload must be aborted.
                writes = self.command in ("PUT", "POST") and not self.path.endswith("?uploads")
                if proxy.mode == "down" or (proxy.mode == "fail_writes" and writes):
                    # Answer before the body (a client may await "100 Continue"), then hang up.
                    self.close_connection = True
                    proxy.failed.append(f"{self.command} {self.path}")
                    status = 503 if proxy.mode == "down" else 403
                    code = "ServiceUnavailable" if proxy.mode == "down" else "AccessDenied"
                    payload = (
                        f"<Error><Code>{code}</Code><Message>injected fault</Message></Error>"
                    ).encode()
                    self.send_response(status)
                    self.send_header("content-type", "application/xml")
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                length = int(self.headers.get("content-length") or 0)
                if self.headers.get("expect", "").lower() == "100-continue":
                    self.send_response_only(100)
                    self.end_headers()
                body = self.rfile.read(length) if length else b""
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "connection", "expect")
                }
                upstream = httpx.request(
                    self.command,
                    proxy.upstream + self.path,
                    headers=headers,
                    content=body,
                    timeout=60,
                )
                self.send_response(upstream.status_code)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("transfer-encoding", "connection", "content-encoding"):
                        self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(upstream.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FaultyS3Proxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
