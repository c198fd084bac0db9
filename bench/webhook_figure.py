"""POST /refresh validation errors under concurrent clients, against `freshcache api` over HTTP."""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time

from bench.process import serve_api
from bench.report import Figure
from bench.sizes import Sizes

P99_TARGET_MS = 50.0
# Invalid bodies and the status each must get: field combinations and unknown fields (400),
# JSON types (422).
INVALID: list[tuple[dict[str, object], int]] = [
    ({"schema_name": "public"}, 400),
    ({"data": True}, 400),
    ({"connection_id": 1, "schema_name": "public"}, 400),
    ({"connection_id": "one"}, 422),
    ({"connection_id": 1, "tables": "typo"}, 400),
]


def webhook_figure(sizes: Sizes) -> Figure:
    with serve_api() as (url, _server):
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
    """p99 and p50 latency in ms, and the number of failed or wrong answers.

    Each client is one keep-alive HTTP/1.1 connection on asyncio streams, sending its next
    request when the previous answer is in: the client's own cost per request stays in the
    microseconds (httpx's connection pool, shared by 50 connections, added several ms).
    """
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    requests = [
        [INVALID[(client + n) % len(INVALID)] for n in range(sizes.http_requests)]
        for client in range(sizes.http_clients)
    ]
    errors = await asyncio.gather(*(_client(host, int(port), r, latencies) for r in requests))
    cuts = statistics.quantiles(latencies, n=100)
    return cuts[98], cuts[49], sum(errors)


async def _client(
    host: str, port: int, requests: list[tuple[dict[str, object], int]], latencies: list[float]
) -> int:
    """Send `requests` one after the other; returns how many failed or got a wrong answer."""
    reader, writer = await asyncio.open_connection(host, port)
    errors = answered = 0
    try:
        for body, status in requests:
            payload = json.dumps(body).encode()
            head = (
                f"POST /refresh HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n"
            )
            started = time.perf_counter()
            writer.write(head.encode() + payload)
            answer_head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: *(\d+)", answer_head)
            answer = await reader.readexactly(int(length.group(1)) if length else 0)
            latencies.append((time.perf_counter() - started) * 1000)
            answered += 1
            errors += int(answer_head.split(b" ", 2)[1]) != status or b'"error"' not in answer
    except (OSError, asyncio.IncompleteReadError):
        errors += len(requests) - answered  # the rest of this client's requests
    finally:
        writer.close()
    return errors
