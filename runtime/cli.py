"""The `freshcache` command: up, api, cleanup, migrate."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

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
    from flows.cleanup import cleanup

    result = cleanup()
    print(
        f"deleted {len(result['deleted'])} files, {len(result['failed'])} failed, "
        f"{len(result['released'])} still referenced, "
        f"{len(result['orphans_scheduled'])} orphans scheduled"
    )
    for failure in result["failed"]:
        print(f"  failed: {failure['path']}: {failure['error']}")
    return 1 if result["failed"] else 0


def _api(args: argparse.Namespace) -> int:
    from runtime.serve import serve_api

    serve_api(args.host, args.port)
    return 0


def _up(args: argparse.Namespace) -> int:
    from runtime.up import run_up

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
    commands.add_parser("cleanup", help="run the cleanup flow once").set_defaults(handler=_cleanup)
    commands.add_parser("migrate", help="apply catalog migrations").set_defaults(handler=_migrate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except SettingsError as exc:
        print(f"freshcache: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
