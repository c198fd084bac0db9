"""Concurrent fetches counted by the PostgreSQL source itself, not sampled from outside.

A view that reads `counted_sleep(seconds)` takes that long to read. When such a read starts,
counted_sleep counts (under an advisory lock) how many are sleeping at that moment, itself
included, and keeps the highest count: the exact peak of concurrent reads, however loaded the
machine is. The counts live in sequences: they change outside transactions, so they survive the
reader's rollback (ADBC reads in a transaction it never commits), and a sequence is not a table
that discovery would add to the connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from tests.hostile_support import pg_admin
from tests.source_dbs import PostgresSource

_LOCK_KEY = 4243
_SEQUENCES = ("fetches_started", "fetches_finished", "fetches_peak")
_COUNT = "(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {})"


def install_fetch_counter(source: PostgresSource) -> None:
    """Create counted_sleep(seconds) and its counters in the source database."""
    finished, peak = _COUNT.format("fetches_finished"), _COUNT.format("fetches_peak")
    source.execute(
        *(f"CREATE SEQUENCE {name}" for name in _SEQUENCES),
        f"""CREATE FUNCTION counted_sleep(seconds float8) RETURNS void
        LANGUAGE plpgsql VOLATILE AS $$
        DECLARE
          running bigint;
        BEGIN
          PERFORM pg_advisory_lock({_LOCK_KEY});
          running := nextval('fetches_started') - {finished};
          IF running > {peak} THEN
            PERFORM setval('fetches_peak', running);
          END IF;
          PERFORM pg_advisory_unlock({_LOCK_KEY});
          PERFORM pg_sleep(seconds);
          PERFORM nextval('fetches_finished');
        END $$""",
    )


@dataclass
class FetchCounts:
    """Reads of counted views started and finished, and the most sleeping at once."""

    started: int = 0
    finished: int = 0
    peak: int = 0


def read_counts(source: PostgresSource) -> FetchCounts:
    with pg_admin(source.database) as conn:
        row = conn.execute("SELECT " + ", ".join(_COUNT.format(n) for n in _SEQUENCES)).fetchone()
    assert row is not None
    return FetchCounts(*row)


@contextmanager
def counting_fetches(source: PostgresSource) -> Iterator[FetchCounts]:
    """Counts from zero; the yielded FetchCounts is filled in when the block ends."""
    source.execute(*(f"SELECT setval('{name}', 1, false)" for name in _SEQUENCES))
    counts = FetchCounts()
    try:
        yield counts
    finally:
        final = read_counts(source)
        counts.started, counts.finished, counts.peak = final.started, final.finished, final.peak
