"""The demo shop: a DuckDB file of customers, products and orders, registered as `demo`.

`freshcache up` runs `python -m app.demo --seed` when no connection is registered. To make
the demo data change (and see a data refresh pick it up):

    .venv/bin/python -m app.demo --add-orders 1000
    .venv/bin/python -m app.demo --move-customers 50
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

if TYPE_CHECKING:
    from runtime.container import Runtime

DEMO_CONNECTION = "demo"
DEMO_FILE = "demo.duckdb"
CUSTOMERS = 10_000
PRODUCTS = 500
ORDERS = 50_000
LOCK_RETRY_SECONDS = 10.0

# Every value derives from hash(id, salt): the same database on every machine, made in SQL.
_PICK = "list_element({items}, (hash({key}, '{salt}') % len({items}))::INTEGER + 1)"

_FIRST = "['Ada','Alan','Grace','Linus','Margaret','Dennis','Barbara','Ken','Frances','Edsger',\
'Radia','Tim','Hedy','John','Katherine','Guido','Sophie','Yukihiro','Anita','Bjarne']"
_LAST = "['Lovelace','Turing','Hopper','Torvalds','Hamilton','Ritchie','Liskov','Thompson',\
'Allen','Dijkstra','Perlman','Berners-Lee','Lamarr','Backus','Johnson','van Rossum','Wilson',\
'Matsumoto','Borg','Stroustrup']"
_CITIES = "[['Paris','France'],['Lyon','France'],['Berlin','Germany'],['Munich','Germany'],\
['Madrid','Spain'],['Lisbon','Portugal'],['Amsterdam','Netherlands'],['London','United Kingdom'],\
['Dublin','Ireland'],['Milan','Italy'],['Vienna','Austria'],['Warsaw','Poland'],\
['Stockholm','Sweden'],['Oslo','Norway'],['New York','United States'],['Toronto','Canada']]"
_ADJECTIVES = "['Classic','Compact','Deluxe','Eco','Ergonomic','Portable','Premium','Smart',\
'Vintage','Wireless']"
_CATEGORIES = "[['Keyboard','Electronics'],['Headphones','Electronics'],['Lamp','Home'],\
['Kettle','Kitchen'],['Backpack','Outdoor'],['Tent','Outdoor'],['Notebook','Office'],\
['Chair','Office'],['Mug','Kitchen'],['Speaker','Electronics']]"
_STATUSES = "['delivered','delivered','delivered','delivered','shipped','shipped','paid',\
'cancelled','returned']"


def _pick(items: str, key: str, salt: str) -> str:
    return _PICK.format(items=items, key=key, salt=salt)


_CREATE_SQL = f"""
CREATE TABLE products AS
SELECT i AS product_id,
       {_pick(_ADJECTIVES, "i", "adj")} || ' ' || {_pick(_CATEGORIES, "i", "cat")}[1]
         || ' ' || (100 + i)::VARCHAR AS name,
       {_pick(_CATEGORIES, "i", "cat")}[2] AS category,
       (4.99 + (hash(i, 'price') % 29500) / 100.0)::DECIMAL(10, 2) AS unit_price,
       (hash(i, 'stock') % 400)::INTEGER AS in_stock
FROM range(1, {PRODUCTS} + 1) t(i);

CREATE TABLE customers (
    customer_id BIGINT PRIMARY KEY,
    first_name VARCHAR NOT NULL,
    last_name VARCHAR NOT NULL,
    email VARCHAR NOT NULL,
    city VARCHAR NOT NULL,
    country VARCHAR NOT NULL,
    signed_up_on DATE NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
INSERT INTO customers
SELECT i AS customer_id,
       {_pick(_FIRST, "i", "first")} AS first_name,
       {_pick(_LAST, "i", "last")} AS last_name,
       lower(replace({_pick(_FIRST, "i", "first")} || '.' || {_pick(_LAST, "i", "last")},
             ' ', '')) || i::VARCHAR || '@example.com' AS email,
       {_pick(_CITIES, "i", "city")}[1] AS city,
       {_pick(_CITIES, "i", "city")}[2] AS country,
       DATE '2022-01-01' + (hash(i, 'signup') % 1095)::INTEGER AS signed_up_on,
       (DATE '2022-01-01' + (hash(i, 'signup') % 1095)::INTEGER)::TIMESTAMP
         + to_seconds((hash(i, 'updated') % 86400)::BIGINT) AS updated_at
FROM range(1, {CUSTOMERS} + 1) t(i);

CREATE TABLE orders (
    order_id BIGINT PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    quantity INTEGER NOT NULL,
    amount DECIMAL(12, 2) NOT NULL,
    status VARCHAR NOT NULL,
    ordered_at TIMESTAMP NOT NULL
);
"""

# $first and $count: the ids to add; the orders spread over the $span seconds before $base.
_ADD_ORDERS_SQL = f"""
INSERT INTO orders
SELECT i AS order_id,
       1 + hash(i, 'customer') % {CUSTOMERS} AS customer_id,
       p.product_id,
       q.quantity,
       (p.unit_price * q.quantity)::DECIMAL(12, 2) AS amount,
       {_pick(_STATUSES, "i", "status")} AS status,
       $base::TIMESTAMP - to_seconds((hash(i, 'at') % $span)::BIGINT) AS ordered_at
FROM range($first, $first + $count) t(i)
JOIN products p ON p.product_id = 1 + hash(i, 'product') % {PRODUCTS}
CROSS JOIN LATERAL (SELECT (1 + hash(i, 'qty') % 4)::INTEGER AS quantity) q
"""


# $count customers move to another city (chosen at random), at $at.
_MOVE_CUSTOMERS_SQL = f"""
UPDATE customers
SET city = {_pick(_CITIES, "customer_id", "moved")}[1],
    country = {_pick(_CITIES, "customer_id", "moved")}[2],
    updated_at = $at
WHERE customer_id IN (SELECT customer_id FROM customers ORDER BY random() LIMIT $count)
"""


def demo_path(data_dir: Path) -> Path:
    return (data_dir / DEMO_FILE).resolve()


def create_demo_database(path: Path) -> None:
    """Write the demo shop beside `path`, then rename it: never a half-written demo file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with duckdb.connect(str(partial)) as con:
        con.execute(_CREATE_SQL)
        _insert_orders(con, ORDERS, base=datetime(2025, 12, 31, 23), span=timedelta(days=3 * 365))
    partial.rename(path)


def add_orders(path: Path, count: int) -> int:
    """Append `count` recent orders; returns the new number of orders."""
    con = _connect_for_writing(path)
    try:
        _insert_orders(
            con, count, base=datetime.now().replace(microsecond=0), span=timedelta(hours=1)
        )
        row = con.execute("SELECT count(*) FROM orders").fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


def move_customers(path: Path, count: int) -> int:
    """`count` customers move to another city now (their updated_at says when); returns how
    many customers changed in the last minute."""
    con = _connect_for_writing(path)
    try:
        now = datetime.now().replace(microsecond=0)
        con.execute(_MOVE_CUSTOMERS_SQL, {"count": count, "at": now})
        row = con.execute(
            "SELECT count(*) FROM customers WHERE updated_at >= $since",
            {"since": now - timedelta(minutes=1)},
        ).fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


def _insert_orders(
    con: duckdb.DuckDBPyConnection, count: int, base: datetime, span: timedelta
) -> None:
    row = con.execute("SELECT coalesce(max(order_id), 0) + 1 FROM orders").fetchone()
    assert row is not None
    con.execute(
        _ADD_ORDERS_SQL,
        {"first": row[0], "count": count, "base": base, "span": int(span.total_seconds())},
    )


def _connect_for_writing(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-write connection; a refresh reading the file holds its lock for a moment."""
    if not path.exists():
        raise SystemExit(f"no demo database at {path}: start `freshcache up` first")
    deadline = time.monotonic() + LOCK_RETRY_SECONDS
    while True:
        try:
            return duckdb.connect(str(path))
        except duckdb.IOException:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def seed_demo(runtime: Runtime) -> str:
    """With no connection registered: create the demo file if needed, register it, discover it.

    Returns the one line to print, also when the registration or its discovery failed.
    """
    from catalog import CatalogError
    from core.connections import InvalidConnectionError, discover_tables, register_connection
    from orchestration.secrets import externalize_password, resolve_password
    from sources import SourceError

    if runtime.catalog.list_connections():
        return "connections already registered; no demo added"
    path = demo_path(runtime.settings.data_dir)
    if not path.exists():
        create_demo_database(path)
    try:
        record = register_connection(
            runtime.catalog, externalize_password, DEMO_CONNECTION, "duckdb", {"path": str(path)}
        )
    except (CatalogError, SourceError, InvalidConnectionError) as exc:
        return f"could not register the demo connection {DEMO_CONNECTION!r}: {exc}"
    discovery = discover_tables(runtime, resolve_password, record.id)
    if discovery.changes is None:
        return (
            f"registered the demo connection {DEMO_CONNECTION!r} (id {record.id}, {path}), "
            f"but discovering its tables failed: {discovery.error_line}"
        )
    return (
        f"registered the demo connection {DEMO_CONNECTION!r} (id {record.id}, {path}): "
        f"{discovery.changes.tables_discovered} tables"
    )


def main(argv: Sequence[str] | None = None) -> int:
    from app.processes import wait_for_prefect_api
    from runtime.container import build_runtime
    from runtime.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m app.demo", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--seed", action="store_true", help="register the demo if nothing is")
    action.add_argument("--add-orders", type=int, metavar="N", help="append N new orders")
    action.add_argument(
        "--move-customers", type=int, metavar="N", help="N customers move to another city"
    )
    args = parser.parse_args(argv)
    settings = load_settings()
    data_dir = settings.data_dir
    if args.seed:
        wait_for_prefect_api()  # started with the server, to import while it boots
        runtime = build_runtime(settings)
        try:
            print(f"freshcache: {seed_demo(runtime)}", flush=True)
        finally:
            runtime.close()
        return 0
    count = args.add_orders or args.move_customers
    if count < 1:
        parser.error("--add-orders and --move-customers need a positive number")
    path = demo_path(data_dir)
    if args.add_orders:
        total = add_orders(path, count)
        print(f"added {count} orders to {path}; orders now has {total} rows")
    else:
        recent = move_customers(path, count)
        print(f"{count} customers of {path} moved; {recent} changed in the last minute")
    return 0


if __name__ == "__main__":
    from app.processes import run_stoppable

    sys.exit(run_stoppable(main))
