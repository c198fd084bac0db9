"""A cache of one source for the incremental tests: refresh by policy, compare with the source.

Everything runs the real code without Prefect: `core.incremental.refresh_by_cursor` over a real
catalog, a real cache directory and a real source database.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import duckdb
import pyarrow as pa

from catalog import Catalog, DiscoveredTable, Snapshot
from core.access import SourceAccess, source_key
from core.incremental import CursorRefresh, refresh_by_cursor
from core.policy import RefreshPolicy, table_policy
from core.sql import snapshot_sql
from sources import discover, open_reader, parse_source_config, schema_to_json
from storage import CacheStorage
from tests.source_dbs import SourceDB


@dataclass
class Cache:
    catalog: Catalog
    storage: CacheStorage
    source: SourceDB
    connection_id: int
    access: SourceAccess
    compact_after_files: int = 1000

    def discover(self) -> None:
        found = discover(self.access.config, None, connection_name=self.access.name)
        self.catalog.sync_tables(
            self.connection_id,
            [
                DiscoveredTable(t.schema_name, t.table_name, schema_to_json(t.arrow_schema))
                for t in found
            ],
            delete_after=self.catalog.clock(),
        )

    def set_policy(self, table: str, **fields: object) -> None:
        policy = RefreshPolicy.model_validate(fields)
        self.catalog.set_table_policy(
            self.connection_id, self.source.schema, table, policy.to_json()
        )

    def snapshot(self, table: str) -> Snapshot:
        return self.catalog.snapshot(self.connection_id, self.source.schema, table)

    def refresh(
        self, table: str, *, full: bool = False, based_on: Snapshot | None = None
    ) -> CursorRefresh:
        """Refresh by the table's policy, read against `based_on` (default: the live snapshot)."""
        record = self.catalog.get_table(self.connection_id, self.source.schema, table)
        policy = table_policy(
            self.catalog, record, lambda: source_key(self.access, self.source.schema, table)
        )
        return refresh_by_cursor(
            self.catalog,
            self.storage,
            self.access,
            based_on or self.snapshot(table),
            policy,
            full=full,
            grace=timedelta(0),
            compact_after_files=self.compact_after_files,
            hold_source=nullcontext,
        )

    def source_rows(self, table: str) -> pa.Table:
        (metadata,) = [
            t
            for t in discover(self.access.config, None, connection_name=self.access.name)
            if t.table_name == table
        ]
        with open_reader(
            self.access.config, None, metadata, connection_name=self.access.name
        ) as reader:
            return reader.read_all()

    def differences(self, table: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
        """(rows only the source has, rows only the cache has), compared as a query reads them."""
        snapshot = self.snapshot(table)
        assert snapshot.table.parquet_path is not None, "the table is not cached"
        key = snapshot.increments.primary_key if snapshot.increments else ()
        mode = snapshot.increments.mode if snapshot.increments else "full"
        con = duckdb.connect(":memory:")
        try:
            con.register("source_rows", self.source_rows(table))
            con.execute(
                "CREATE VIEW cached AS "
                + snapshot_sql(snapshot.files, key if mode == "merge" else ())
            )
            missing = con.sql("SELECT * FROM source_rows EXCEPT ALL SELECT * FROM cached")
            extra = con.sql("SELECT * FROM cached EXCEPT ALL SELECT * FROM source_rows")
            return sorted(missing.fetchall(), key=repr), sorted(extra.fetchall(), key=repr)
        finally:
            con.close()

    def assert_equal_to_source(self, table: str) -> None:
        missing, extra = self.differences(table)
        assert (missing, extra) == ([], []), f"missing {missing[:5]}, extra {extra[:5]}"


@contextmanager
def cache_of(source: SourceDB, tmp_path: Path, catalog_url: str | None = None) -> Iterator[Cache]:
    """A catalog (SQLite unless `catalog_url`) and a cache directory holding `source` as `src`."""
    catalog = Catalog.from_url(catalog_url or f"sqlite:///{tmp_path / 'catalog.db'}")
    try:
        storage = CacheStorage(str(tmp_path / "cache"))
        source_type, config = source.registration()
        connection_id = catalog.add_connection("src", source_type, config).id
        access = SourceAccess("src", parse_source_config(source_type, config), None)
        yield Cache(catalog, storage, source, connection_id, access)
    finally:
        catalog.dispose()
