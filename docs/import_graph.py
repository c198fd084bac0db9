"""Print which project packages each package imports directly: `make imports`."""

from __future__ import annotations

import grimp

PACKAGES = [
    "app",
    "webhook",
    "flows",
    "tasks",
    "query",
    "orchestration",
    "core",
    "runtime",
    "catalog",
    "storage",
    "sources",
]


def main() -> None:
    graph = grimp.build_graph(*PACKAGES)
    for importer in PACKAGES:
        imported = [
            p
            for p in PACKAGES
            if p != importer
            and graph.direct_import_exists(importer=importer, imported=p, as_packages=True)
        ]
        print(f"{importer:14} -> {' '.join(imported)}")


if __name__ == "__main__":
    main()
