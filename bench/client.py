"""Plain HTTP/1.1 calls to a freshcache webhook: one `http.client` connection, no pool to build.

httpx's client builds a TLS context when it is created (tens of ms on this machine): a figure
that times one request through it would time the client too.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from contextlib import closing
from typing import Any
from urllib.parse import urlsplit

Address = tuple[str, int]


def address_of(url: str) -> Address:
    """(host, port) of a base URL such as http://127.0.0.1:8000."""
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None, url
    return parts.hostname, parts.port


def request(
    connection: http.client.HTTPConnection,
    path: str,
    body: dict[str, Any],
    accept: str = "application/json",
) -> tuple[int, bytes]:
    payload = json.dumps(body).encode()
    headers = {"content-type": "application/json", "accept": accept}
    connection.request("POST", path, payload, headers)
    response = connection.getresponse()
    return response.status, response.read()


def post(
    address: Address, path: str, body: dict[str, Any], timeout: float = 120
) -> tuple[int, bytes]:
    """POST `body` as JSON on a new connection; the status and the raw answer."""
    with closing(http.client.HTTPConnection(*address, timeout=timeout)) as connection:
        return request(connection, path, body)


def expect(answer: tuple[int, bytes], status: int) -> Any:
    """The decoded JSON answer, when its status is `status`."""
    if answer[0] != status:
        raise RuntimeError(f"expected {status}, got {answer[0]}: {answer[1][:300]!r}")
    return json.loads(answer[1])


def timed(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def timed_posts(
    address: Address, path: str, body: dict[str, Any], repeat: int, timeout: float = 3600
) -> list[tuple[float, Any]]:
    """`repeat` POSTs of `body`, one after the other: each one's seconds and JSON answer
    (anything but a 200 fails)."""
    answers = []
    for _ in range(repeat):
        started = time.perf_counter()
        answer = post(address, path, body, timeout)
        elapsed = time.perf_counter() - started
        answers.append((elapsed, expect(answer, 200)))
    return answers
