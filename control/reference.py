"""Generated reference documents: `.env.example` from the settings and `docs/events.md` tables.

`python -m control.reference env > .env.example` and `python -m control.reference events`
rewrite them; tests fail when either drifts from the code.
"""

from __future__ import annotations

import enum
import json
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo

from speech_coach.contracts import EVENT_TYPES, TOPIC_EVENT, Event, Topic, unit_of
from speech_coach.settings import Settings

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
    for meta in field.metadata:
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


def events_reference() -> str:
    out = [BEGIN, ""]
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


if __name__ == "__main__":
    what = sys.argv[1] if len(sys.argv) > 1 else ""
    if what == "env":
        sys.stdout.write(env_example())
    elif what == "events":
        write_events_doc()
    else:
        sys.exit("usage: python -m control.reference env|events")
