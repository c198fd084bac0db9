"""Typed catalog errors, each with a message fit for a user."""


class CatalogError(Exception):
    """Base class for catalog failures."""


class DuplicateConnectionError(CatalogError):
    def __init__(self, name: str) -> None:
        super().__init__(f"a connection named {name!r} already exists")
        self.name = name


class ConnectionNotFoundError(CatalogError):
    def __init__(self, connection_id: int | str) -> None:
        super().__init__(f"connection {connection_id} not found")
        self.connection_id = connection_id


class TableNotFoundError(CatalogError):
    def __init__(self, connection_id: int, schema_name: str, table_name: str) -> None:
        super().__init__(
            f"table {schema_name!r}.{table_name!r} not found in connection {connection_id}"
        )
        self.connection_id = connection_id
        self.schema_name = schema_name
        self.table_name = table_name
