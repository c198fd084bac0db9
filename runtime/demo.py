"""The demo shop: a DuckDB file of customers, products and orders, registered as `demo`.

`freshcache up` runs `python -m runtime.demo --seed` when no connection is registered. To make
the demo data change (and see a data refresh pick it up):

    .venv/bin/python -m runtime.demo --add-orders 1000
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import duckdb

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

CREATE TABLE customers AS
SELECT i AS customer_id,
       {_pick(_FIRST, "i", "first")} AS first_name,
       {_pick(_LAST, "i", "last")} AS last_name,
       lower(replace({_pick(_FIRST, "i", "first")} || '.' || {_pick(_LAST, "i", "last")},
             ' ', '')) || i::VARCHAR || '@example.com' AS email,
       {_pick(_CITIES, "i", "city")}[1] AS city,
       {_pick(_CITIES, "i", "city")}[2] AS country,
       DATE '2022-01-01' + (hash(i, 'signup') % 1095)::INTEGER AS signed_up_on
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


def seed_demo(data_dir: Path) -> str:
    """With no connection registered: create the demo file if needed, register it, discover it."""
    from flows.schema import refresh_schema
    from runtime.container import get_runtime
    from tasks.connections import register_connection

    if get_runtime().catalog.list_connections():
        return "connections already registered; no demo added"
    path = demo_path(data_dir)
    if not path.exists():
        create_demo_database(path)
    record = register_connection(DEMO_CONNECTION, "duckdb", {"path": str(path)})
    result = refresh_schema(record.id)
    return (
        f"registered the demo connection {DEMO_CONNECTION!r} (id {record.id}, {path}): "
        f"{result['tables_discovered']} tables"
    )


def main(argv: Sequence[str] | None = None) -> int:
    from runtime.processes import wait_for_prefect_api
    from runtime.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m runtime.demo", description=__doc__)
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--seed", action="store_true", help="register the demo if nothing is")
    action.add_argument("--add-orders", type=int, metavar="N", help="append N new orders")
    args = parser.parse_args(argv)
    data_dir = load_settings().data_dir
    if args.seed:
        wait_for_prefect_api()  # started with the server, to import while it boots
        print(f"freshcache: {seed_demo(data_dir)}", flush=True)
        return 0
    if args.add_orders < 1:
        parser.error("--add-orders needs a positive number")
    total = add_orders(demo_path(data_dir), args.add_orders)
    print(f"added {args.add_orders} orders to {demo_path(data_dir)}; orders now has {total} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
