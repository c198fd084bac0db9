"""Run summaries published as Prefect artifacts."""

from __future__ import annotations

from typing import Any

from prefect.artifacts import create_markdown_artifact, create_table_artifact

from core.results import (
    CleanupResult,
    ConnectionRefreshResult,
    FreshnessResult,
    SchemaRefreshResult,
    TableRefreshResult,
)


def publish_table_refresh(result: TableRefreshResult) -> None:
    create_table_artifact(
        key=f"refresh-table-conn-{result.connection_id}",
        table=[result.model_dump()],
        description=f"Data refresh of {result.schema_name}.{result.table_name}"
        + (" (superseded: a newer snapshot was already live)" if result.superseded else ""),
    )


def publish_connection_refresh(
    result: ConnectionRefreshResult, outcomes: list[dict[str, Any]]
) -> None:
    create_table_artifact(
        key=f"refresh-connection-{result.connection_id}",
        table=outcomes,
        description=(
            f"Connection {result.connection_id}: {result.tables_refreshed} refreshed "
            f"({result.tables_superseded} superseded by a newer snapshot), "
            f"{result.tables_failed} failed, {result.total_rows} rows in {result.duration_ms} ms"
        ),
    )


def publish_schema_refresh(result: SchemaRefreshResult) -> None:
    title = f"Schema refresh{' (dry run)' if result.dry_run else ''}"
    summary = (
        f"{result.connections_refreshed} connections refreshed, {result.connections_failed} failed;"
        f" {result.tables_discovered} tables discovered, {result.tables_added} added,"
        f" {result.tables_removed} removed, {result.tables_modified} modified"
    )
    lines = [
        f"# {title}",
        "",
        f"{summary}.",
        "",
        "| connection | table | change | columns |",
        "|---|---|---|---|",
    ]
    for changes in result.changes:
        for t in changes.added:
            lines.append(f"| {changes.connection_id} | {t.schema_name}.{t.table_name} | added | |")
        for t in changes.removed:
            lines.append(
                f"| {changes.connection_id} | {t.schema_name}.{t.table_name} | removed | |"
            )
        for m in changes.modified:
            columns = ", ".join(
                [f"+{c}" for c in m.columns_added]
                + [f"-{c}" for c in m.columns_removed]
                + [f"~{c}" for c in m.columns_changed]
            )
            table = f"{m.schema_name}.{m.table_name}"
            lines.append(f"| {changes.connection_id} | {table} | modified | {columns} |")
    for error in result.errors:
        lines.append(f"| {error.connection_id} | | failed | {error.error} |")
    create_markdown_artifact(
        key="refresh-schema",
        markdown="\n".join(lines),
        description=f"{title}: {summary}",
    )


def publish_cleanup(result: CleanupResult) -> None:
    rows = (
        [{"path": p, "outcome": "deleted", "error": ""} for p in result.deleted]
        + [{"path": p, "outcome": "still referenced, kept", "error": ""} for p in result.released]
        + [
            {"path": f.path, "outcome": f"failed (attempt {f.attempts})", "error": f.error}
            for f in result.failed
        ]
        + [
            {"path": p, "outcome": "orphan scheduled", "error": ""}
            for p in result.orphans_scheduled
        ]
        + [
            {"path": p, "outcome": "abandoned temporary removed", "error": ""}
            for p in result.temporaries_removed
        ]
    )
    create_table_artifact(
        key="cleanup",
        table=rows or [{"path": "", "outcome": "nothing due", "error": ""}],
        description=(
            f"{len(result.deleted)} deleted, {len(result.failed)} failed, "
            f"{len(result.orphans_scheduled)} orphans scheduled, "
            f"{len(result.temporaries_removed)} abandoned temporaries removed"
        ),
    )


def publish_freshness(result: FreshnessResult) -> None:
    next_run = result.next_run_at.isoformat() if result.next_run_at else "none (no targets)"
    create_table_artifact(
        key="freshness",
        table=[t.model_dump() for t in result.tables],
        description=(
            f"{result.tables_with_target} tables with a target: {result.tables_refreshed} "
            f"refreshed, {result.tables_failed} failed; next run {next_run}"
        ),
    )
