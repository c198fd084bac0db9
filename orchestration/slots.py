"""Slots of a Prefect global concurrency limit: one HTTP call to take, one to give back.

`prefect.concurrency.sync.concurrency` opens a new API client for each acquisition and another
for the thread that renews its lease: ~90 ms a slot on a 2-core machine, most of it building
TLS contexts (measured with `bench.orchestration`). Here the calls go through the caller's
client (inside a flow or task run, the run's own), and one thread renews the lease while a
slot is held, so a fetch killed with its process frees its slot when the lease runs out.

Fetches that find the limit full line up in a second limit, `<name>-waiting` (one slot per
waiting fetch). A run that fetches table after table (a connection refresh) keeps its slots
(`KeptSlots`) only while that line is empty, and then lets the waiting fetches go before it, so
a single fetch waits for one fetch to end, not for the whole run.

A Prefect server on SQLite answers a slot request that meets another write with 503
(SQLITE_BUSY), and Prefect's client then sleeps 2-4 s before it asks again: longer than most
fetches. A slot is asked for past the client's retries, and asked again sooner.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any
from uuid import UUID

import httpx
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.client.schemas.responses import GlobalConcurrencyLimitResponse
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

log = logging.getLogger(__name__)

# A holder that dies keeps its slot this long at most (Prefect's own default).
LEASE_SECONDS = 300.0
RENEW_EVERY = 0.75 * LEASE_SECONDS
# How often a waiting fetch asks for a slot again (jittered), however long Prefect's
# Retry-After: a queue is only fair when its members look often.
POLL_SECONDS = 0.25
WAITING_SUFFIX = "-waiting"
# The waiting line is a count, never a limit: room for any number of waiting fetches.
WAITING_CAPACITY = 1_000_000
# A busy server (503) is asked again this soon, then twice as late each time up to
# BUSY_RETRY_MAX_SECONDS (jittered), for at most BUSY_GIVE_UP_SECONDS.
BUSY_RETRY_SECONDS = 0.05
BUSY_RETRY_MAX_SECONDS = 1.0
BUSY_GIVE_UP_SECONDS = 60.0
INCREMENT_PATH = "/v2/concurrency_limits/increment-with-lease"
STALE_CONNECTION_ERRORS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


class SlotLimitError(RuntimeError):
    """The limit cannot give a slot at all (its value is 0); the message names it."""


@contextmanager
def holding_slot(name: str, create_with: int) -> Iterator[None]:
    """Hold one slot of the limit `name` for the block, waiting as long as it takes.

    A missing limit is created with `create_with` slots; an existing one is never changed.
    """
    with get_client(sync_client=True) as client:
        lease = _acquire(client, name, create_with, _holder(), queue_first=False)
        try:
            yield
        finally:
            lease.release()


class KeptSlots:
    """Slots kept by the threads of a run that fetches table after table.

    Taking a slot and giving it back are two API calls a fetch (~25 ms on a 2-core machine,
    measured with `bench.orchestration`). Here a thread keeps its slot from one fetch to its
    next while no fetch waits for one and the limit still allows it (a value lowered in the UI);
    otherwise it gives the slot back after its fetch and lines up behind the waiting fetches.
    Both are looked up at most every POLL_SECONDS, once for all threads, so a fetch that lines
    up waits for the fetches running when it came, and at most POLL_SECONDS more. A slot its
    thread does not use again within POLL_SECONDS, or leaves for another limit's, goes back.
    """

    def __init__(self, client: SyncPrefectClient) -> None:
        self._client = client
        self._holder = _holder()
        self._lock = threading.Lock()
        # By thread: the limit's name, its slot, and the keep's own token (for its idle timer).
        self._kept: dict[int, tuple[str, _Lease, object]] = {}
        self._crowding: dict[str, tuple[float, bool]] = {}
        self._looking_up = threading.Lock()  # held by the thread asking the API for crowding

    @contextmanager
    def slot(self, name: str, create_with: int) -> Iterator[None]:
        """Hold one slot of the limit `name` (created with `create_with` slots when missing)."""
        thread = threading.get_ident()
        with self._lock:
            kept = self._kept.pop(thread, None)
        crowded = self._crowded(name)
        lease = None
        if kept is not None:
            kept_name, kept_lease, _ = kept
            if kept_name == name and not crowded:
                lease = kept_lease
            else:
                kept_lease.release()
        if lease is None:
            lease = _acquire(self._client, name, create_with, self._holder, queue_first=crowded)
        keep = False
        try:
            yield
            keep = not self._crowded(name)
        finally:
            if keep:
                token = object()
                with self._lock:
                    self._kept[thread] = (name, lease, token)
                # A thread with no next table (the run's last ones are long) gives it back.
                idle = threading.Timer(POLL_SECONDS, self._give_back_unused, (thread, token))
                idle.daemon = True
                idle.start()
            else:
                lease.release()

    def _give_back_unused(self, thread: int, token: object) -> None:
        """Release the slot `thread` kept with `token`, unless it has used it since."""
        with self._lock:
            kept = self._kept.get(thread)
            if kept is None or kept[2] is not token:
                return
            del self._kept[thread]
        kept[1].release()

    def close(self) -> None:
        """Give back every kept slot."""
        with self._lock:
            kept, self._kept = list(self._kept.values()), {}
        for _, lease, _ in kept:
            lease.release()

    def _crowded(self, name: str) -> bool:
        """Whether a fetch waits for a slot of `name`, or its holders exceed the limit.

        One thread looks it up, and the others go on with the last answer meanwhile (there is
        one but the first time): the lookup is two API calls, which a busy server would make
        every thread of the run wait for.
        """
        with self._lock:
            answer = self._crowding.get(name)
        if answer is not None and _fresh(answer):
            return answer[1]
        # The first answer is waited for; a later one is not while another thread looks up.
        if not self._looking_up.acquire(blocking=answer is None):
            assert answer is not None  # a blocking acquire always succeeds
            return answer[1]
        try:
            with self._lock:
                answer = self._crowding.get(name)
            if answer is not None and _fresh(answer):  # looked up while this thread waited
                return answer[1]
            line = _read_limit(self._client, waiting_line_name(name))
            limit = _read_limit(self._client, name)
            crowded = (line is not None and line.active_slots > 0) or (
                limit is not None and limit.active and limit.active_slots > limit.limit
            )
            with self._lock:
                self._crowding[name] = (time.monotonic(), crowded)
            return crowded
        finally:
            self._looking_up.release()


def _fresh(answer: tuple[float, bool]) -> bool:
    """Whether a crowding answer, looked up at answer[0], is recent enough to go on with."""
    return time.monotonic() - answer[0] < POLL_SECONDS


def ensure_limit(client: SyncPrefectClient, name: str, limit: int) -> None:
    """Create the limit with `limit` slots unless it exists (then it stays as it is)."""
    with suppress(ObjectAlreadyExists):
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))


def waiting_line_name(name: str) -> str:
    """The limit counting the fetches that wait for a slot of `name`."""
    return name + WAITING_SUFFIX


def _acquire(
    client: SyncPrefectClient,
    name: str,
    create_with: int,
    holder: ConcurrencyLeaseHolder | None,
    *,
    queue_first: bool,
) -> _Lease:
    """A slot of `name`; with `queue_first`, taken only after the fetches waiting for one."""
    taken = None if queue_first else _take(client, name, create_with, holder)
    lease_id = taken or _wait_in_line(client, name, create_with, holder, first_try=not queue_first)
    return _Lease(client, lease_id)


def _take(
    client: SyncPrefectClient, name: str, create_with: int, holder: ConcurrencyLeaseHolder | None
) -> UUID | None:
    """A lease on one slot, or None when the limit is full."""
    body: dict[str, Any] = {
        "names": [name],
        "slots": 1,
        "mode": "concurrency",
        "lease_duration": LEASE_SECONDS,
    }
    if holder is not None:
        body["holder"] = holder.model_dump(mode="json")
    while True:
        response = _increment(client, body)
        if response.status_code == 423:
            return None
        if response.status_code == 422:
            raise SlotLimitError(
                f"the Prefect concurrency limit {name!r} allows no slot (its limit is 0)"
            )
        response.raise_for_status()
        granted = response.json()
        lease_id = UUID(granted["lease_id"])
        if granted["limits"]:  # an inactive limit is listed too, and limits nothing
            return lease_id
        # No such limit: the server granted an empty lease. Create the limit, then take a slot.
        _release(client, lease_id)
        ensure_limit(client, name, create_with)


def _increment(client: SyncPrefectClient, body: dict[str, Any]) -> httpx.Response:
    """Ask for the slots in `body`, again while the server is busy (503) or closed the
    connection under it.

    Sent by the plain httpx client underneath Prefect's, to retry sooner than it would; a
    request refused for its CSRF token (a server with CSRF protection on) goes through
    Prefect's client, which fetches one.
    """
    http = client._client  # the httpx client that Prefect's wraps with its retries
    busy_until = time.monotonic() + BUSY_GIVE_UP_SECONDS
    pause = BUSY_RETRY_SECONDS
    while True:
        request = http.build_request("POST", INCREMENT_PATH, json=body)
        try:
            response = httpx.Client.send(http, request)
        except STALE_CONNECTION_ERRORS:
            if time.monotonic() > busy_until:
                raise
            continue  # a kept-alive connection the server had closed: a new one is opened
        if response.status_code == 403:
            try:
                return http.send(http.build_request("POST", INCREMENT_PATH, json=body))
            except httpx.HTTPStatusError as refused:
                return refused.response
        if response.status_code != 503 or time.monotonic() > busy_until:
            return response
        time.sleep(pause * random.uniform(0.5, 1.5))
        pause = min(2 * pause, BUSY_RETRY_MAX_SECONDS)


def _wait_in_line(
    client: SyncPrefectClient,
    name: str,
    create_with: int,
    holder: ConcurrencyLeaseHolder | None,
    *,
    first_try: bool,
) -> UUID:
    """Join the limit's waiting line and ask for a slot until one is free."""
    line = waiting_line_name(name)
    taken = _take(client, line, WAITING_CAPACITY, holder)
    assert taken is not None  # the line has room for everyone
    place = _Lease(client, taken)
    try:
        # Joining from a run: the fetches waiting already ask (every POLL_SECONDS) first.
        if not first_try:
            time.sleep(2 * POLL_SECONDS)
        while (lease := _take(client, name, create_with, holder)) is None:
            _pause()
        return lease
    finally:
        place.release()


def _pause() -> None:
    time.sleep(POLL_SECONDS * random.uniform(0.8, 1.2))


def _read_limit(client: SyncPrefectClient, name: str) -> GlobalConcurrencyLimitResponse | None:
    """The limit `name` as it is now (its active slots), or None when there is none."""
    try:
        return client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        return None


def _release(client: SyncPrefectClient, lease_id: UUID) -> None:
    """Give the slot back; when that fails, its lease runs out in LEASE_SECONDS instead."""
    try:
        client.release_concurrency_slots_with_lease(lease_id)
    except Exception:
        log.warning("could not release concurrency lease %s", lease_id, exc_info=True)


class _Lease:
    """A held slot, its lease renewed in a background thread until it is given back."""

    def __init__(self, client: SyncPrefectClient, lease_id: UUID) -> None:
        self._client = client
        self._id = lease_id
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._renew, name=f"lease-{lease_id}", daemon=True)
        self._renewer.start()

    def release(self) -> None:
        self._stop.set()
        self._renewer.join()
        _release(self._client, self._id)

    def _renew(self) -> None:
        while not self._stop.wait(RENEW_EVERY):
            try:
                self._client.renew_concurrency_lease(self._id, LEASE_SECONDS)
            except Exception:
                # The slot may be given to another holder when the lease runs out: the limit
                # can be exceeded, the fetch itself is not harmed.
                log.warning("could not renew concurrency lease %s", self._id, exc_info=True)


def _holder() -> ConcurrencyLeaseHolder | None:
    """The task or flow run taking the slot, as Prefect's UI lists a limit's holders."""
    task_run = TaskRunContext.get()
    if task_run is not None:
        return ConcurrencyLeaseHolder(type="task_run", id=task_run.task_run.id)
    flow_run = FlowRunContext.get()
    if flow_run is not None and flow_run.flow_run is not None:
        return ConcurrencyLeaseHolder(type="flow_run", id=flow_run.flow_run.id)
    return None
