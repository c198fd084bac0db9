from __future__ import annotations

from sources import SourceAuthError, SourceError
from sources.errors import redact


def test_redact_masks_plain_and_url_encoded_passwords() -> None:
    password = "p@ss word/%"
    text = f"url postgresql://u:p%40ss%20word%2F%25@h and p%40ss+word%2F%25 and {password}"
    assert "ss" not in redact(text, password)
    assert redact("no secret here", None) == "no secret here"


def test_a_source_error_names_its_connection_and_cause() -> None:
    error = SourceAuthError("warehouse", "Access denied for user 'u'")
    assert isinstance(error, SourceError)
    assert error.connection_name == "warehouse"
    assert str(error) == "connection 'warehouse': Access denied for user 'u'"
