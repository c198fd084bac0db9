"""The `freshcache` command: up, api, refresh, cleanup, deletions, migrate, crash-detection."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from orchestration.deployments import HEARTBEAT_SECONDS
from runtime.settings import SettingsError


def _migrate(_args: argparse.Namespace) -> int:
    from catalog import Catalog
    from runtime.settings import load_settings

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalog = Catalog.from_url(settings.resolved_catalog_url, migrate=False)
    before, after = catalog.migrate()
    if before == after:
        print(f"catalog already at revision {after}")
    else:
        print(f"catalog migrated from {before or 'empty'} to {after}")
    return 0


def _cleanup(_args: argparse.Namespace) -> int:
    from app.stack import prefect_of
    from runtime.container import build_runtime, runtime_scope
    from runtime.settings import load_settings

    settings = load_settings()
    with prefect_of(settings.data_dir.resolve()):
        from flows.cleanup import cleanup
        from flows.inline import without_heartbeats

        runtime = build_runtime(settings)
        try:
            with runtime_scope(runtime), without_heartbeats():
                result = cleanup()
        finally:
            runtime.close()
    print(
        f"deleted {len(result['deleted'])} files, {len(result['failed'])} failed, "
        f"{len(result['released'])} still referenced, "
        f"{len(result['orphans_scheduled'])} orphans scheduled, "
        f"{len(result['temporaries_removed'])} abandoned temporaries removed"
    )
    for failure in result["failed"]:
        print(f"  failed: {failure['path']}: {failure['error']}")
    return 1 if result["failed"] else 0


def _deletions(_args: argparse.Namespace) -> int:
    from catalog import Catalog
    from runtime.settings import load_settings

    settings = load_settings()
    catalog = Catalog.from_url(settings.resolved_catalog_url)
    try:
        queued = catalog.list_deletions()
    finally:
        catalog.dispose()
    print(f"{len(queued)} cache files queued for deletion")
    for deletion in queued:
        tried = f", {deletion.attempts} failed attempts: {deletion.last_error}"
        print(
            f"  {deletion.path}: due {deletion.delete_after.isoformat(timespec='seconds')}"
            f"{tried if deletion.attempts else ''}"
        )
    return 0


def _crash_detection(args: argparse.Namespace) -> int:
    from app.crash_detection_command import run_crash_detection_command

    return run_crash_detection_command(args.heartbeat_seconds)


def _refresh(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.refresh_command import run_refresh_command
    from flows.request import RefreshRequest
    from runtime.settings import load_settings

    fields = {
        "connection_id": args.connection_id,
        "schema_name": args.schema,
        "table_name": args.table,
        "data": args.data,
        "dry_run": args.dry_run,
        "cached_only": args.cached_only,
    }
    try:
        request = RefreshRequest(**fields)
    except ValidationError as exc:
        messages = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        print(f"freshcache: {messages}", file=sys.stderr)
        return 2
    return run_refresh_command(request, load_settings(), inline=args.inline)


def _api(args: argparse.Namespace) -> int:
    from app.serve import serve_api

    serve_api(args.host, args.port)
    return 0


def _up(args: argparse.Namespace) -> int:
    from app.up import run_up

    return run_up(host=args.host, port=args.port, ui_port=args.ui_port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="freshcache", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="Prefect server + UI, deployments and the webhook")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000)
    up.add_argument("--ui-port", type=int, default=4200)
    up.set_defaults(handler=_up)
    api = commands.add_parser("api", help="serve the webhook")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.set_defaults(handler=_api)
    refresh = commands.add_parser(
        "refresh",
        help="refresh schemas or data now (the fields of POST /refresh)",
        description="Through the running stack's deployment, or here when none runs.",
    )
    refresh.add_argument("--connection-id", "-c", type=int, help="the connection (id)")
    refresh.add_argument("--schema", help="schema of the table to refresh (with --table)")
    refresh.add_argument("--table", help="the table to refresh (with --schema and --data)")
    refresh.add_argument("--data", action="store_true", help="refresh data, not the schema")
    refresh.add_argument("--dry-run", action="store_true", help="report schema changes only")
    refresh.add_argument("--cached-only", action="store_true", help="only tables cached already")
    refresh.add_argument("--inline", action="store_true", help="run here even if a stack runs")
    refresh.set_defaults(handler=_refresh)
    commands.add_parser("cleanup", help="run the cleanup flow once").set_defaults(handler=_cleanup)
    commands.add_parser(
        "deletions", help="list the cache files queued for deletion, and when each falls due"
    ).set_defaults(handler=_deletions)
    commands.add_parser("migrate", help="apply catalog migrations").set_defaults(handler=_migrate)
    crash_detection = commands.add_parser(
        "crash-detection",
        help="create the automation that marks silent deployment runs Crashed (for workers)",
        description="On the Prefect server of PREFECT_API_URL, unless it exists already "
        "(freshcache up creates it on its own server).",
    )
    crash_detection.add_argument(
        "--heartbeat-seconds",
        type=int,
        default=HEARTBEAT_SECONDS,
        help="seconds between a run's heartbeats, as prefect.yaml's job variables set them",
    )
    crash_detection.set_defaults(handler=_crash_detection)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from app.processes import run_stoppable

    args = build_parser().parse_args(argv)
    try:
        return run_stoppable(lambda: int(args.handler(args)))
    except SettingsError as exc:
        print(f"freshcache: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
