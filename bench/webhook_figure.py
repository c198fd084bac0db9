"""POST /refresh validation errors under concurrent clients, against `freshcache api` over HTTP."""

from __future__ import annotations

import asyncio
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from bench.process import ROOT
from bench.report import Figure
from bench.sizes import Sizes

P99_TARGET_MS = 50.0
# Invalid bodies and the status each must get: field combinations and unknown fields (400),
# JSON types (422).
INVALID = [
    ({"schema_name": "public"}, 400),
    ({"data": True}, 400),
    ({"connection_id": 1, "schema_name": "public"}, 400),
    ({"connection_id": "one"}, 422),
    ({"connection_id": 1, "tables": "typo"}, 400),
]


def webhook_figure(sizes: Sizes) -> Figure:
    with serve_api() as url:
        rounds = [asyncio.run(_load(url, sizes)) for _ in range(sizes.repeat)]
    p99 = statistics.median(r[0] for r in rounds)
    p50 = statistics.median(r[1] for r in rounds)
    errors = sum(r[2] for r in rounds)
    requests = sizes.http_clients * sizes.http_requests
    return Figure(
        f"`POST /refresh` validation errors, {sizes.http_clients} concurrent clients",
        f"p99 {p99:.1f} ms, p50 {p50:.1f} ms, {errors} errors",
        f"{requests:,} requests per round",
        "—",
        f"p99 ≤ {P99_TARGET_MS:.0f} ms, no errors",
        p99 <= P99_TARGET_MS and errors == 0,
    )


async def _load(url: str, sizes: Sizes) -> tuple[float, float, int]:
    """p99 and p50 latency in ms, and the number of failed or wrong answers."""
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=sizes.http_clients)

    async def client(number: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        for n in range(sizes.http_requests):
            body, status = INVALID[(number + n) % len(INVALID)]
            started = time.perf_counter()
            try:
                response = await http.post("/refresh", json=body)
                ok = response.status_code == status and "error" in response.json()
            except httpx.HTTPError:
                ok = False
            latencies.append((time.perf_counter() - started) * 1000)
            errors += not ok

    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        await asyncio.gather(*(client(c, http) for c in range(sizes.http_clients)))
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[98], cuts[49], errors


@contextmanager
def serve_api() -> Iterator[str]:
    """`freshcache api` in a child process on a free port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    command = [sys.executable, "-m", "runtime.cli", "api", "--port", str(port)]
    server = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_healthy(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("freshcache api exited before serving")
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("freshcache api did not answer /health within 60 s")
