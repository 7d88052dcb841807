"""Generated reference documents: `.env.example` from the settings, the `docs/events.md` tables and the
column docs of the dbt staging models, from the event contracts.

`python -m control.reference env > .env.example`, `python -m control.reference events` and
`python -m control.reference dbt` rewrite them (`all` does the last two and the research codebook page); tests
fail when any drifts from the code.
"""

from __future__ import annotations

import ast
import enum
import json
import re
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from speech_coach.contracts import EVENT_TYPES, TOPIC_EVENT, Event, Topic, constraints_of, unit_of
from speech_coach.settings import Settings
from warehouse.dbt import PROJECT_DIR
from warehouse.rows import TABLES, Column, RawTable

EVENTS_DOC = Path(__file__).resolve().parents[1] / "docs" / "events.md"
BEGIN, END = "<!-- BEGIN GENERATED: python -m control.reference events -->", "<!-- END GENERATED -->"


def _default(field: FieldInfo) -> str:
    value = field.get_default(call_default_factory=True)
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def env_example() -> str:
    lines = [
        "# Speech Coach settings. Every variable, with its safe local default.",
        "# Copy to .env to change them locally; in production set them in the environment.",
        "# Empty external addresses mean: the local stack (`speech-coach stack up`) runs that server.",
        "",
    ]
    for name, field in Settings.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            lines.append(f"# --- {name} ---")
            for sub_name, sub in ann.model_fields.items():
                if sub.description:
                    lines.append(f"# {sub.description}")
                # Unset-by-default settings stay commented: an empty value is not the same as unset.
                unset = "# " if sub.get_default(call_default_factory=True) is None else ""
                lines.append(f"{unset}SC_{name.upper()}__{sub_name.upper()}={_default(sub)}")
            lines.append("")
        else:
            if field.description:
                lines.append(f"# {field.description}")
            lines.append(f"SC_{name.upper()}={_default(field)}")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " or ".join(json.dumps(a) for a in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _type_name(typing.get_args(annotation)[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        return " or ".join(_type_name(a) for a in typing.get_args(annotation))
    if origin in (list, dict):
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in typing.get_args(annotation))}]"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "one of " + ", ".join(f"`{m.value}`" for m in annotation)
    name = getattr(annotation, "__name__", str(annotation))
    return {
        "AwareDatetime": "timestamp (ISO 8601, with zone)",
        "str": "string",
        "int": "integer",
        "float": "number",
    }.get(name, name)


def _constraints(field: FieldInfo) -> str:
    parts = []
    for meta in constraints_of(field):
        for attr in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{attr} {value}")
    return ", ".join(parts)


def _table(model: type[BaseModel], nested: list[type[BaseModel]]) -> list[str]:
    rows = ["| field | type | unit | required | constraints | description |", "|---|---|---|---|---|---|"]
    for name, field in model.model_fields.items():
        ann = field.annotation
        for arg in (ann, *typing.get_args(ann)):
            if isinstance(arg, type) and issubclass(arg, BaseModel) and arg not in nested:
                nested.append(arg)
            for inner in typing.get_args(arg):
                if isinstance(inner, type) and issubclass(inner, BaseModel) and inner not in nested:
                    nested.append(inner)
        required = "yes" if field.is_required() else "no"
        desc = (field.description or "").replace("|", "\\|")
        cells = [f"`{name}`", _type_name(ann), unit_of(field), required, _constraints(field), desc]
        rows.append(f"| {' | '.join(cells)} |")
    return rows


def _key_doc(cls: type[Event]) -> str:
    if cls.KEY is None:
        return f"see `{cls.__name__}.key()`"
    return " + `|` + ".join(f"`{name}`" for name in cls.KEY)


def _retention_table() -> list[str]:
    from speech_coach.contracts.topics import RETENTION_DAYS

    intro = (
        "Set on every topic when the platform creates it (`ensure_topics`, which also applies it to a topic that "
        "exists), from `RETENTION_DAYS` in `speech_coach/contracts/topics.py`:"
    )
    rows = ["### Retention", "", intro, "", "| topic | keeps records |", "|---|---|"]
    for topic, days in RETENTION_DAYS.items():
        rows.append(f"| `{topic.value}` | {'kept for ever (compacted)' if days is None else f'{days} days'} |")
    return [*rows, ""]


def events_reference() -> str:
    out = [BEGIN, "", *_retention_table()]
    nested: list[type[BaseModel]] = []
    for topic in Topic:
        cls = TOPIC_EVENT[topic]
        out += [
            f"### `{cls.EVENT_TYPE}` on `{topic.value}`",
            "",
            " ".join((cls.__doc__ or "").split()),
            "",
            f"Schema version {cls.SCHEMA_VERSION}. Message key: {_key_doc(cls)}.",
            "",
            *_table(cls, nested),
            "",
        ]
    done: set[type[BaseModel]] = set(EVENT_TYPES.values())
    while nested:
        model = nested.pop(0)
        if model in done:
            continue
        done.add(model)
        out += [f"#### `{model.__name__}`", "", *_table(model, nested), ""]
    out.append(END)
    return "\n".join(out)


def write_events_doc() -> None:
    text = EVENTS_DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    EVENTS_DOC.write_text(head + events_reference() + tail)


# --- dbt staging docs -------------------------------------------------------------------------------------

STAGING_DIR = PROJECT_DIR / "models" / "staging"
TABLES_BY_NAME = {t.name: t for t in TABLES.values()}
# What the `contract_columns` macro (dbt/macros/contract_columns.sql) leaves out besides its `except`.
MACRO_SKIPS = {"event_id", "occurred_at"}
_SOURCE = re.compile(r"\bfrom\s+\{\{\s*source\('raw',\s*'(\w+)'\)\s*\}\}", re.I)
_MACRO = re.compile(r"\{\{\s*contract_columns\((.*)\)\s*\}\}", re.S)
_ALIAS = re.compile(r"\bas\s+(\w+)$", re.I)
_NAME = re.compile(r"(?:\w+\.)?(\w+)")


@dataclass(frozen=True)
class Staging:
    """A staging model over a raw table: its columns in order, and the contract field behind each one."""

    model: str
    table: RawTable
    columns: list[str]

    def contract_column(self, name: str) -> Column | None:
        return next((c for c in self.table.columns if c.column == name), None)


def _top_level_items(select: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in select:
        depth += {"(": 1, "[": 1, "{": 1, ")": -1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current.strip())
            current = ""
        else:
            current += char
    return [*items, current.strip()] if current.strip() else items


def _macro_columns(args: str) -> list[str]:
    # Jinja's call syntax is Python's, but `except` is a Python keyword.
    call = ast.parse("f(" + re.sub(r"\bexcept\s*=", "except_=", args) + ")", mode="eval").body
    assert isinstance(call, ast.Call)
    table = TABLES_BY_NAME[ast.literal_eval(call.args[0])]
    skip = MACRO_SKIPS | {v for k in call.keywords if k.arg == "except_" for v in ast.literal_eval(k.value)}
    return [c.column for c in table.columns if c.column not in skip]


def staging_model(sql_path: Path) -> Staging | None:
    """The staging model in `sql_path` when it reads a raw table that contract events fill, else None.

    Reads the select list the way the staging models are written: `column`, `expression as alias`, and
    `{{ contract_columns('raw_table', except=[...]) }}`; tests/test_schema.py checks the result against the
    columns of the views dbt builds."""
    sql = "\n".join(line.split("--", 1)[0] for line in sql_path.read_text().splitlines())
    source = _SOURCE.search(sql)
    if source is None or source.group(1) not in TABLES_BY_NAME:
        return None
    select = sql[re.search(r"\bselect\b", sql, re.I).end() : source.start()]  # type: ignore[union-attr]
    columns: list[str] = []
    for item in _top_level_items(select):
        if macro := _MACRO.fullmatch(item):
            columns += _macro_columns(macro.group(1))
        elif alias := _ALIAS.search(item):
            columns.append(alias.group(1))
        elif name := _NAME.fullmatch(item):
            columns.append(name.group(1))
        else:
            raise ValueError(f"{sql_path.name}: cannot tell the column name of {item!r}; add `as <name>`")
    return Staging(sql_path.stem, TABLES_BY_NAME[source.group(1)], columns)


def staging_models() -> list[Staging]:
    return [m for path in sorted(STAGING_DIR.glob("stg_*.sql")) if (m := staging_model(path))]


class _Flow(dict[str, Any]):
    """A mapping written on one line: `meta: {contract: ..., unit: ...}`."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)  # lists indented under their key, as in the hand-written files


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(v, str | int | float) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _list)
_Dumper.add_representer(_Flow, lambda d, data: d.represent_mapping("tag:yaml.org,2002:map", data, flow_style=True))

STAGING_HEADER = (
    "# Columns marked `meta: {contract: ...}` are described by the event contract "
    "(speech_coach/contracts/events.py):\n# python -m control.reference dbt rewrites them; the rest is written here.\n"
)


def contract_doc(staging: Staging, name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """`entry` (the column's YAML) with the description and meta the contract gives it."""
    column = staging.contract_column(name)
    if column is None:
        return entry
    meta = _Flow(contract=f"{staging.table.event.__name__}.{column.path}")
    if unit := unit_of(column.info):
        meta["unit"] = unit
    description = column.info.description or ""
    if staging.table.per_item and column.path == staging.table.per_item[0]:
        # A dict stored one row per item: the column is its key or its value, described here by hand.
        description = entry.get("description") or f"From {meta['contract']}: {description}"
    rest = {k: v for k, v in entry.items() if k not in ("name", "description", "meta")}
    if isinstance(column.annotation, type) and issubclass(column.annotation, enum.Enum):
        # The enum's members are the accepted values, so a new member needs no edit here.
        tests = [t for t in rest.get("data_tests", []) if not (isinstance(t, dict) and "accepted_values" in t)]
        values = [m.value for m in column.annotation]
        rest["data_tests"] = [*tests, {"accepted_values": {"arguments": {"values": values}}}]
    return {"name": name, "description": description, "meta": meta, **rest}


def staging_yaml(staging: Staging) -> str:
    """The model's YAML file with every contract column documented from the contract, in the view's order;
    hand-written entries and tests are kept."""
    path = STAGING_DIR / f"{staging.model}.yml"
    doc = yaml.safe_load(path.read_text())
    (model,) = [m for m in doc["models"] if m["name"] == staging.model]
    entries = {e["name"]: e for e in model.get("columns", [])}
    ordered = [n for n in staging.columns if n in entries or staging.contract_column(n)]
    ordered += [n for n in entries if n not in ordered]
    model["columns"] = [contract_doc(staging, n, entries.get(n, {"name": n})) for n in ordered]
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=120, allow_unicode=True)
    return STAGING_HEADER + body.replace("\nmodels:", "\n\nmodels:", 1)


def write_staging_docs() -> list[Path]:
    changed = []
    for staging in staging_models():
        path = STAGING_DIR / f"{staging.model}.yml"
        text = staging_yaml(staging)
        if path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "env":
        sys.stdout.write(env_example())
    elif what in ("events", "dbt", "all"):
        if what in ("events", "all"):
            write_events_doc()
        if what in ("dbt", "all"):
            for path in write_staging_docs():
                print(f"updated {path.relative_to(PROJECT_DIR.parent)}")
        if what == "all":
            from warehouse.codebook_doc import write_guide

            write_guide()
    else:
        sys.exit("usage: python -m control.reference env|events|dbt|all")
