"""Schema refresh of one connection: discover its tables and apply them to the catalog."""

from __future__ import annotations

from catalog import DiscoveredTable, TableSync
from core.access import SourceAccess, grace_deadline
from core.results import ConnectionSchemaChanges, ModifiedTable, SchemaTable
from runtime.container import Runtime
from sources import discover, schema_diff, schema_from_json, schema_to_json


def sync_connection_schema(
    runtime: Runtime, access: SourceAccess, connection_id: int, dry_run: bool = False
) -> ConnectionSchemaChanges:
    """Re-discover a connection; keep cached data of tables that still exist, drop the rest."""
    found = discover(access.config, access.password, connection_name=access.name)
    sync = runtime.catalog.sync_tables(
        connection_id,
        [
            DiscoveredTable(t.schema_name, t.table_name, schema_to_json(t.arrow_schema))
            for t in found
        ],
        delete_after=grace_deadline(runtime),
        dry_run=dry_run,
    )
    return describe_sync(connection_id, sync)


def describe_sync(connection_id: int, sync: TableSync) -> ConnectionSchemaChanges:
    modified = []
    for old, new in sync.modified:
        diff = schema_diff(
            schema_from_json(old.arrow_schema_json), schema_from_json(new.arrow_schema_json)
        )
        modified.append(
            ModifiedTable(
                schema_name=new.schema_name,
                table_name=new.table_name,
                columns_added=diff.added,
                columns_removed=diff.removed,
                columns_changed=diff.changed,
            )
        )
    return ConnectionSchemaChanges(
        connection_id=connection_id,
        tables_discovered=sync.discovered,
        added=[SchemaTable(schema_name=t.schema_name, table_name=t.table_name) for t in sync.added],
        removed=[
            SchemaTable(schema_name=t.schema_name, table_name=t.table_name) for t in sync.removed
        ],
        modified=modified,
    )
