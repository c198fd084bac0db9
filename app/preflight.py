"""Checks `freshcache up` makes before starting anything: one instance per data dir, free ports."""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import IO

LOCK_FILE = "up.lock"


class PreflightError(RuntimeError):
    """Why `freshcache up` cannot start; the message says what to do."""


@dataclass
class InstanceLock:
    """An exclusive flock on DATA_DIR/up.lock, held while `freshcache up` runs."""

    handle: IO[str]

    def describe(self, **details: object) -> None:
        """Record who holds the lock, for the message a second `freshcache up` prints."""
        self.handle.seek(0)
        self.handle.truncate()
        json.dump({"pid": os.getpid(), **details}, self.handle)
        self.handle.flush()

    def release(self) -> None:
        # The file stays: unlinking it could let two later instances lock two different files.
        self.handle.seek(0)
        self.handle.truncate()
        self.handle.close()


def acquire_instance_lock(data_dir: Path) -> InstanceLock:
    path = data_dir / LOCK_FILE
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = _holder(handle.read())
        handle.close()
        raise PreflightError(
            f"freshcache is already running with the data directory {data_dir}{holder}. "
            "Stop it (Ctrl-C in its terminal) or use another FRESHCACHE_DATA_DIR."
        ) from None
    return InstanceLock(handle)


def _holder(text: str) -> str:
    try:
        info = json.loads(text)
    except ValueError:
        return ""
    webhook = f", webhook {info['webhook']}" if "webhook" in info else ""
    return f" (pid {info.get('pid')}{webhook})"


def check_port_free(host: str, port: int, role: str, option: str) -> None:
    """Fail, naming the port, when something already listens on host:port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise PreflightError(f"cannot resolve the host {host!r} for the {role}: {exc}") from None
    with socket.socket(family, kind, proto) as probe:
        # As uvicorn binds: a port left in TIME_WAIT by a previous run is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise PreflightError(
                f"port {port} on {host} (the {role}) is already in use ({exc.strerror}). "
                f"Stop what uses it (`lsof -i :{port}`) or pick another port with {option}."
            ) from None
