"""The types of the flows' optional parameters, as the Prefect UI's run form shows them.

pydantic describes `int | None` as anyOf [integer, null], which the UI renders as a choice whose
null branch reads "Property is type 'None'". These keep the schema of the value's type alone:
a field left empty is not sent, and the parameter takes its default, None.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import WithJsonSchema

OptionalInt = Annotated[int | None, WithJsonSchema({"type": "integer"})]
OptionalStr = Annotated[str | None, WithJsonSchema({"type": "string"})]
OptionalFloat = Annotated[float | None, WithJsonSchema({"type": "number"})]
