from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from types import FrameType

import psutil  # type: ignore[import-untyped]
import pytest

from tests.process_marks import marked
from tests.services import fresh_mariadb_database, fresh_postgres_database

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture
def pg_database() -> Iterator[str]:
    """Name of a fresh PostgreSQL database, dropped after the test."""
    with fresh_postgres_database() as name:
        yield name


@pytest.fixture
def mariadb_database() -> Iterator[str]:
    """Name of a fresh MariaDB database, dropped after the test."""
    with fresh_mariadb_database() as name:
        yield name


# S3 (moto server on loopback) fixtures live in their own module.
pytest_plugins = ["tests.s3_fixtures"]


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


# Every process this session starts inherits the mark, and keeps it when it is re-parented to
# init: how the end of the session finds an orphan that is no longer its descendant.
SESSION_MARK = "TEST_SESSION_PROCESS_MARK"


def pytest_configure(config: pytest.Config) -> None:
    os.environ[SESSION_MARK] = uuid.uuid4().hex
    config.addinivalue_line(
        "markers",
        "long_file(seconds): the file takes about this long on a loaded 2-core machine; it starts "
        "early, so two workers finish together instead of one running a long file at the end",
    )
    # SIGTERM ends the run as Ctrl-C does: the session fixtures (the Prefect test server, the moto
    # server) are torn down, instead of the process dying with the server left running.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)
        # A shell starts a background job (`make test &`) with SIGINT ignored, and ignored
        # signals stay ignored in every child: the commands the tests stop with Ctrl-C's signal
        # must get it as a user's terminal delivers it.
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest files first, in their own order (make test hands out files in this order)."""

    def expected_seconds(item: pytest.Item) -> float:
        marker = item.get_closest_marker("long_file")
        return float(marker.args[0]) if marker is not None else 0.0

    items.sort(key=lambda item: -expected_seconds(item))


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_session() -> Iterator[None]:
    """Torn down last: every process a test or fixture started is gone by then.

    The Prefect test server (a subprocess) has been stopped by its fixture; the moto server is a
    thread of this process, joined by its fixture. A descendant still running here, or an
    orphan carrying the session's mark, was leaked by a test: it is killed, and the run fails.
    """
    yield
    leftovers: dict[psutil.Process, str] = {}
    for process in {*psutil.Process().children(recursive=True), *_marked_by_this_session()}:
        with contextlib.suppress(psutil.Error):  # it may end meanwhile
            if process.status() != psutil.STATUS_ZOMBIE:
                leftovers[process] = " ".join(process.cmdline()[:6])
                process.kill()
    assert not leftovers, f"processes left running at the end of the session: {leftovers}"


def _marked_by_this_session() -> list[psutil.Process]:
    """Other processes carrying this session's mark; one just killed by a test gets 5 s to go."""
    _, alive = psutil.wait_procs(marked(SESSION_MARK, os.environ[SESSION_MARK]), timeout=5)
    return list(alive)


class FakeClock:
    """A controllable UTC clock for the catalog."""

    def __init__(self) -> None:
        from datetime import UTC, datetime

        self.now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self):  # type: ignore[no-untyped-def]
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """A fresh, empty catalog database URL on each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'catalog.db'}"
        return
    from tests.services import postgres_url

    with fresh_postgres_database() as name:
        yield postgres_url(name)


@pytest.fixture
def catalog(catalog_url: str, clock: FakeClock):  # type: ignore[no-untyped-def]
    from catalog import Catalog

    cat = Catalog.from_url(catalog_url, clock=clock)
    yield cat
    cat.dispose()


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """A temporary Prefect server for the whole session (SQLite, analytics off)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


BACKENDS = [
    pytest.param(("sqlite", "duckdb"), id="sqlite-catalog+duckdb-source"),
    pytest.param(("postgresql", "postgres"), id="pg-catalog+pg-source"),
]


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, prefect_server: None, tmp_path):  # type: ignore[no-untyped-def]
    """A wired Runtime (catalog, local cache, settings) and one source database."""
    from tests.world import make_world

    catalog_backend, source_kind = request.param
    with make_world(catalog_backend, source_kind, tmp_path) as w:
        yield w
