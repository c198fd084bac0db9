"""A long table fetch shows its progress in the Prefect UI: a progress artifact, created once
the fetch has run the interval, updated as rows arrive at a bounded rate, at 100 once the file
is written. A short fetch has its run's summary artifact alone."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from uuid import UUID

import pyarrow as pa
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterType,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import Artifact

from core.progress import After, FetchProgress, after
from flows.refresh import refresh
from tests.source_dbs import create_numbered_table
from tests.world import make_world

SECONDS_PER_BATCH = 1 / 64  # exact in binary: the simulated clock does not drift


def never(_delay: float, _action: Callable[[], None]) -> Callable[[], None]:
    """A timer that does not fire: the simulated fetch reports from its batches alone."""
    return lambda: None


def simulated_fetch(
    batches: int, expected_rows: int | None, timer: After = never
) -> list[tuple[float, str]]:
    """The reports of a fetch of `batches` one-row batches, each taking 1/64 s (simulated)."""
    now = 0.0
    reports: list[tuple[float, str]] = []

    def source() -> Iterator[pa.RecordBatch]:
        nonlocal now
        for i in range(batches):
            now += SECONDS_PER_BATCH
            yield pa.record_batch({"id": [i]})

    progress = FetchProgress(
        "main.t",
        lambda: expected_rows,
        lambda percent, description: reports.append((percent, description)),
        interval=1.0,
        clock=lambda: now,
        timer=timer,
    )
    with progress:
        reader = pa.RecordBatchReader.from_batches(pa.schema({"id": pa.int64()}), source())
        progress.finish(sum(batch.num_rows for batch in progress.reading(reader)))
    return reports


def test_rows_are_reported_at_most_once_per_interval_never_per_batch() -> None:
    reports = simulated_fetch(6_400, expected_rows=6_400)
    assert reports[-1] == (100.0, "main.t: 6,400 rows fetched")
    during = reports[:-1]
    # 100 simulated seconds of fetching: one report a second, not one per batch.
    assert len(during) == 100
    assert during[0] == (1.0, "main.t: 64 of about 6,400 rows fetched so far")
    assert during[49] == (50.0, "main.t: 3,200 of about 6,400 rows fetched so far")
    assert during[-1] == (99.0, "main.t: 6,400 of about 6,400 rows fetched so far")


def test_without_an_expected_size_the_rows_so_far_are_told() -> None:
    assert simulated_fetch(128, expected_rows=None) == [
        (0.0, "main.t: 64 rows fetched so far"),
        (0.0, "main.t: 128 rows fetched so far"),
        (100.0, "main.t: 128 rows fetched"),
    ]


def test_a_fetch_shorter_than_the_interval_reports_nothing() -> None:
    assert simulated_fetch(63, expected_rows=6_400) == []


def test_a_fetch_still_waiting_or_writing_after_the_interval_is_reported_started() -> None:
    """No batch arrives while a fetch waits for a slot or DuckDB writes its file: the timer
    reports it."""
    fired: list[Callable[[], None]] = []

    def fire_at_once(_delay: float, action: Callable[[], None]) -> Callable[[], None]:
        fired.append(action)
        action()
        return lambda: None

    assert simulated_fetch(10, expected_rows=None, timer=fire_at_once) == [
        (0.0, "main.t: started"),
        (100.0, "main.t: 10 rows fetched"),
    ]
    assert len(fired) == 1


def test_a_failed_fetch_reports_nothing_more() -> None:
    """A fetch that fails stops its timer: the run that ended with it gets no report (one sent
    to the run's closed client logged a warning)."""
    reports: list[tuple[float, str]] = []
    timers: list[Callable[[], None]] = []
    cancelled: list[Callable[[], None]] = []

    def later(_delay: float, action: Callable[[], None]) -> Callable[[], None]:
        timers.append(action)
        return lambda: cancelled.append(action)

    progress = FetchProgress(
        "main.t",
        lambda: None,
        lambda percent, description: reports.append((percent, description)),
        interval=1.0,
        timer=later,
    )
    with pytest.raises(RuntimeError, match="the source went away"), progress:
        raise RuntimeError("the source went away")
    assert cancelled == timers and len(timers) == 1
    timers[0]()  # a timer that was firing as the fetch failed
    assert reports == []


def test_the_timer_fires_in_the_callers_context() -> None:
    """The first report of a slow fetch runs on a timer thread, in the fetch's Prefect run."""
    where: ContextVar[str] = ContextVar("where", default="elsewhere")
    where.set("the fetch's run")
    seen: list[str] = []
    done = threading.Event()
    after(0.0, lambda: (seen.append(where.get()), done.set()))
    assert done.wait(10)
    assert seen == ["the fetch's run"]


@pytest.mark.parametrize(
    ("source_kind", "policy"),
    [
        ("postgres", None),
        ("duckdb", None),
        ("postgres", '{"mode": "append", "cursor_column": "id"}'),
    ],
    ids=["postgres", "duckdb", "postgres-append"],
)
def test_a_refresh_leaves_a_progress_artifact_at_100(
    prefect_server: None, tmp_path: Path, source_kind: str, policy: str | None
) -> None:
    """PostgreSQL streams through pyarrow's writer (many batches), DuckDB writes its own file;
    an append table is read past its mark (here, its first load)."""
    rows = 300_000  # 5 batches of the sources' 65,536 rows
    with make_world("sqlite", source_kind, tmp_path, progress_interval_seconds=0) as world:
        create_numbered_table(world.source, "big", rows)
        conn_id = world.register()
        refresh(connection_id=conn_id)
        schema = world.source.schema
        world.catalog.set_table_policy(conn_id, schema, "big", policy)
        state = refresh(
            connection_id=conn_id,
            schema_name=schema,
            table_name="big",
            data=True,
            return_state=True,
        )
    assert state.is_completed(), state
    (artifact,) = progress_artifacts(state.state_details.flow_run_id)
    assert artifact.data == 100
    assert artifact.description == f"{schema}.big of connection 'src': 300,000 rows fetched"
    assert artifact.task_run_id is not None


def progress_artifacts(flow_run_id: UUID | None) -> list[Artifact]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["progress"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
        )


def test_a_refresh_shorter_than_the_interval_leaves_only_its_summary(
    prefect_server: None, tmp_path: Path
) -> None:
    with make_world("sqlite", "duckdb", tmp_path, progress_interval_seconds=30) as world:
        create_numbered_table(world.source, "small", 100)
        conn_id = world.register()
        refresh(connection_id=conn_id)
        state = refresh(
            connection_id=conn_id,
            schema_name=world.source.schema,
            table_name="small",
            data=True,
            return_state=True,
        )
    assert state.is_completed(), state
    run_id = state.state_details.flow_run_id
    assert progress_artifacts(run_id) == []
    with get_client(sync_client=True) as client:
        (summary,) = client.read_artifacts(
            artifact_filter=ArtifactFilter(type=ArtifactFilterType(any_=["table"])),
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
        )
    assert "small" in str(summary.data)
