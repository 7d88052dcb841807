"""The raw tables checked against the contracts: every field has a column, of a type that can hold it.

Migrations are append-only history, so the DDL is not regenerated from the contracts; instead `problems()`
compares the schema the migrations produced (`system.columns`) with `warehouse.rows.TABLES`, and names each
contract field that has no column or a column of the wrong type, with the statement a new migration needs.
`speech-coach warehouse check-schema` runs it against the configured warehouse; tests/test_warehouse.py against a
freshly migrated database.
"""

from __future__ import annotations

import enum
import re
import typing
from datetime import datetime
from typing import Any

from clickhouse_driver import Client
from pydantic import AwareDatetime

from speech_coach.contracts import constraints_of
from warehouse.rows import INGESTION_COLUMNS, TABLES, Column, RawTable

_INTEGER = re.compile(r"U?Int(8|16|32|64|128|256)")
_FLOAT = re.compile(r"Float(32|64)")
_DATETIME = re.compile(r"DateTime(64)?\((\d+, )?'UTC'\)")


def _unwrap(ch_type: str, wrapper: str) -> str | None:
    prefix = f"{wrapper}("
    return ch_type[len(prefix) : -1] if ch_type.startswith(prefix) and ch_type.endswith(")") else None


def _split_pair(inner: str) -> tuple[str, str]:
    """`K, V` of a `Map(K, V)`, splitting at the top-level comma."""
    depth = 0
    for i, char in enumerate(inner):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            return inner[:i].strip(), inner[i + 1 :].strip()
    return inner, ""


def _fits(annotation: Any, ch_type: str) -> bool:
    """Whether a ClickHouse column of `ch_type` (not Nullable) holds every value of the contract type."""
    ch_type = _unwrap(ch_type, "LowCardinality") or ch_type
    if annotation is bool:
        return ch_type in ("UInt8", "Bool")
    if isinstance(annotation, type) and issubclass(annotation, str | enum.Enum):
        return ch_type == "String" or (issubclass(annotation, enum.Enum) and ch_type.startswith("Enum"))
    if annotation is int:
        return bool(_INTEGER.fullmatch(ch_type))
    if annotation is float:
        return bool(_FLOAT.fullmatch(ch_type))
    if annotation in (datetime, AwareDatetime):
        return bool(_DATETIME.fullmatch(ch_type))  # the contracts refuse naive times; the warehouse keeps UTC
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        inner = _unwrap(ch_type, "Array")
        return inner is not None and _fits(args[0], inner)
    if origin is dict:
        inner = _unwrap(ch_type, "Map")
        if inner is None:
            return False
        key, value = _split_pair(inner)
        return _fits(args[0], key) and _fits(args[1], value)
    return False


def column_fits(column: Column, ch_type: str) -> bool:
    if column.array:
        inner = _unwrap(ch_type, "Array")
        return inner is not None and column_fits(_scalar(column), inner)
    nullable = _unwrap(ch_type, "Nullable") or _unwrap(_unwrap(ch_type, "LowCardinality") or "", "Nullable")
    if column.nullable and not column.empty_if_null and nullable is None:
        return False  # NULL has nowhere to go
    return _fits(column.annotation, nullable or ch_type)


def _scalar(column: Column) -> Column:
    return Column(column.path, column.column, column.info, column.annotation, False, False, column.empty_if_null)


def _base_type(annotation: Any, non_negative: bool) -> str:
    if annotation is bool:
        return "UInt8"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "LowCardinality(String)"
    if annotation is str:
        return "String"
    if annotation is int:
        return "UInt32" if non_negative else "Int64"
    if annotation is float:
        return "Float32"
    if annotation in (datetime, AwareDatetime):
        return "DateTime64(3, 'UTC')"
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is list:
        return f"Array({_base_type(args[0], non_negative)})"
    if origin is dict:
        return f"Map({_base_type(args[0], False)}, {_base_type(args[1], True)})"
    raise TypeError(f"no ClickHouse type for {annotation!r}")


def ddl_type(column: Column) -> str:
    """The type a new migration gives the column, in the warehouse's conventions (Float32, UInt32, UTC times)."""
    bounds = [getattr(m, bound, None) for m in constraints_of(column.info) for bound in ("ge", "gt")]
    base = _base_type(column.annotation, any(b is not None and b >= 0 for b in bounds))
    if column.array:
        return f"Array({base})"
    if column.nullable and not column.empty_if_null:
        inner = _unwrap(base, "LowCardinality")
        return f"LowCardinality(Nullable({inner}))" if inner else f"Nullable({base})"
    return base


def describe(table: RawTable, column: Column) -> str:
    kind = getattr(column.annotation, "__name__", str(column.annotation))
    optional = ", optional" if column.nullable and not column.empty_if_null else ""
    return f"{table.event.__name__}.{column.path} ({kind}{optional})"


def problems(schema: dict[str, dict[str, str]]) -> list[str]:
    """What keeps the raw tables in `schema` (table -> column -> ClickHouse type) from holding every contract
    field, one line per field or column; empty when they hold them all."""
    found = []
    for table in TABLES.values():
        columns = schema.get(table.name)
        if columns is None:
            found.append(f"{table.name}: no such table, but {table.event.__name__} events are ingested into it")
            continue
        for column in table.columns:
            ch_type = columns.get(column.column)
            wanted = ddl_type(column)
            if ch_type is None:
                found.append(
                    f"{describe(table, column)} has no column {table.name}.{column.column}; a new migration can add "
                    f"it: ALTER TABLE {table.name} ADD COLUMN IF NOT EXISTS {column.column} {wanted};"
                )
            elif not column_fits(column, ch_type):
                found.append(
                    f"{describe(table, column)} does not fit {table.name}.{column.column} {ch_type}; "
                    f"it needs a column like {wanted}"
                )
        mapped = {c.column for c in table.columns} | INGESTION_COLUMNS
        for name in columns.keys() - mapped:
            found.append(
                f"{table.name}.{name} holds no field of {table.event.__name__}: the field was removed or renamed in "
                f"the contract, or the column needs an entry in warehouse.rows.TABLES"
            )
    return found


def read_schema(client: Client) -> dict[str, dict[str, str]]:
    """table -> column -> type, for the raw tables of the client's database."""
    rows = client.execute(
        "SELECT table, name, type FROM system.columns WHERE database = currentDatabase() AND table IN %(tables)s "
        "ORDER BY table, position",
        {"tables": tuple(t.name for t in TABLES.values())},
    )
    schema: dict[str, dict[str, str]] = {}
    for table, name, ch_type in rows:
        schema.setdefault(table, {})[name] = ch_type
    return schema
