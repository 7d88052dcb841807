"""How each event becomes rows of the raw tables, derived from the contracts. No I/O here.

Every field of an event is a column of the same name in its raw table; nested models are flattened to their
fields' names, and a list of models becomes one array column per field. `TABLES` states only what differs from
that: renamed columns, fields the warehouse does not keep (with the reason), fields whose absence is stored as
an empty value rather than NULL, and a dict stored as one row per item. `warehouse/schema.py` checks a migrated
database against the same description, naming any field without a column of a compatible type.
"""

from __future__ import annotations

import enum
import operator
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from speech_coach.contracts import (
    AnswerMetrics,
    DeadLetter,
    Event,
    FeedbackResult,
    LearnerDeletionRequest,
    RawVoiceAnswer,
    Topic,
    WindowedMetrics,
    WindowedVocabulary,
)

Rows = list[tuple[str, dict[str, Any]]]  # (table, row)

# Envelope fields no raw table keeps: the table says which event it holds, and traces live in the tracing backend.
ENVELOPE_NOT_STORED = {
    "schema_version": "one version per topic; the table holds that topic's events",
    "event_type": "one event type per topic; the table holds that topic's events",
    "traceparent": "trace context belongs to the tracing backend",
}
# Columns ingestion adds to every row: where the record came from and when it was written.
INGESTION_COLUMNS = {"_topic", "_partition", "_offset", "_ingested_at"}


@dataclass(frozen=True)
class Column:
    """One column filled from a contract field. `path` is the field's dotted path in the event."""

    path: str
    column: str
    info: FieldInfo  # the field as declared (description, unit, constraints)
    annotation: Any  # its type, without `| None` and without Annotated metadata
    nullable: bool  # can be absent: an optional field, or inside an optional model
    array: bool  # a field of a model inside a list: one array per field
    empty_if_null: bool  # absent values are stored as '' / 0 instead of NULL


@dataclass(frozen=True)
class RawTable:
    """The raw table one topic's events fill, and how its columns differ from the event's fields."""

    name: str
    event: type[Event]
    renamed: Mapping[str, str] = field(default_factory=dict)  # field path -> column
    not_stored: Mapping[str, str] = field(default_factory=dict)  # field path -> why the warehouse does not keep it
    empty_if_null: frozenset[str] = frozenset()  # field paths (or models) whose absence is '' / 0, not NULL
    per_item: tuple[str, str, str] | None = None  # (dict field, key column, value column): one row per item

    @cached_property
    def columns(self) -> list[Column]:
        return list(_columns(self, self.event, "", nullable=False, array=False, empty=False))

    @cached_property
    def _getters(self) -> list[tuple[str, Callable[[Any], Any]]]:
        return [(c.column, _getter(c)) for c in self.columns if self.per_item is None or c.path != self.per_item[0]]

    def rows(self, event: Event) -> list[dict[str, Any]]:
        row = {column: get(event) for column, get in self._getters}
        if self.per_item is None:
            return [row]
        name, key_column, value_column = self.per_item
        items = sorted(getattr(event, name).items())
        return [row | {key_column: k, value_column: v} for k, v in items]


def _strip(annotation: Any) -> tuple[Any, bool]:
    """(the type without `| None` and Annotated metadata, whether None was allowed)."""
    nullable = False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        annotation = args[0] if len(args) == 1 else annotation
    if typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation, nullable


def _model(annotation: Any) -> type[BaseModel] | None:
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def _columns(
    table: RawTable, model: type[BaseModel], prefix: str, *, nullable: bool, array: bool, empty: bool
) -> Iterator[Column]:
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        if path in table.not_stored or (not prefix and name in ENVELOPE_NOT_STORED):
            continue
        annotation, optional = _strip(info.annotation)
        absent = nullable or optional
        empty_here = empty or path in table.empty_if_null
        nested = _model(annotation)
        if typing.get_origin(annotation) is list and (item := _model(typing.get_args(annotation)[0])):
            yield from _columns(table, item, f"{path}.", nullable=absent, array=True, empty=empty_here)
        elif nested is not None:
            yield from _columns(table, nested, f"{path}.", nullable=absent, array=array, empty=empty_here)
        elif table.per_item is not None and path == table.per_item[0]:
            key_type, value_type = typing.get_args(annotation)
            for column, kind in zip(table.per_item[1:], (key_type, value_type), strict=True):
                yield Column(path, column, info, kind, absent, array, empty_here)
        else:
            column = table.renamed.get(path, name)
            yield Column(path, column, info, annotation, absent, array, empty_here)


def _empty(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, str | enum.Enum):
        return ""
    return 0


def _converter(annotation: Any) -> Callable[[Any], Any] | None:
    """How a value of this type becomes what the ClickHouse driver takes; None when it already is."""
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return operator.attrgetter("value")
    if annotation is bool:
        return int  # UInt8 columns
    if typing.get_origin(annotation) is list and (inner := _converter(typing.get_args(annotation)[0])):
        return lambda values: [inner(v) for v in values]
    if typing.get_origin(annotation) is dict:
        return dict
    return None


def _getter(column: Column) -> Callable[[Any], Any]:
    """A function reading the column's value from an event: its field, through nested models and lists.
    Built once per column; ingestion calls it for every event."""
    *outer, leaf = column.path.split(".")
    convert = _converter(column.annotation)
    empty = _empty(column.annotation) if column.empty_if_null else None
    read = operator.attrgetter(leaf)
    if not outer and convert is None and empty is None:
        return read

    def get(event: Any) -> Any:
        value = event
        for part in outer:
            value = getattr(value, part)
            if value is None:
                return empty
            if isinstance(value, list):  # a list of models (one level deep): the field of each item
                return [read(item) if convert is None else convert(read(item)) for item in value]
        found = read(value)
        if found is None:
            return empty
        return found if convert is None else convert(found)

    return get


TABLES: dict[Topic, RawTable] = {
    Topic.RAW_ANSWERS: RawTable(
        "raw_answers",
        RawVoiceAnswer,
        renamed={"audio.bucket": "audio_bucket", "audio.key": "audio_key", "audio.sha256": "audio_sha256"},
        not_stored={"telegram": "Telegram ids never leave the operational systems"},
    ),
    Topic.FEEDBACK: RawTable(
        "raw_feedback",
        FeedbackResult,
        renamed={
            "rubric.criterion": "rubric_criteria",
            "rubric.score": "rubric_scores",
            "rubric.max_score": "rubric_max_scores",
        },
        not_stored={
            "words": "word timings serve the learner's feedback; the warehouse keeps the transcript",
            "rubric.comment": "comments are texts for the learner; the warehouse keeps the scores",
        },
        empty_if_null=frozenset({"rejection_reason", "engine"}),
    ),
    Topic.ANSWER_METRICS: RawTable("raw_answer_metrics", AnswerMetrics),
    Topic.WINDOWED_METRICS: RawTable("raw_windowed_metrics", WindowedMetrics),
    Topic.VOCABULARY: RawTable(
        "raw_word_counts",
        WindowedVocabulary,
        not_stored={"occurred_at": "a window's vocabulary is dated by the window"},
        per_item=("words", "word", "frequency"),
    ),
    Topic.DELETION_REQUESTS: RawTable(
        "raw_deletion_requests",
        LearnerDeletionRequest,
        not_stored={"occurred_at": "requested_at is the time that counts"},
    ),
    Topic.DEAD_LETTERS: RawTable(
        "raw_dead_letters",
        DeadLetter,
        renamed={"occurred_at": "failed_at"},
        not_stored={"source_key": "the payload and the source offsets identify the record"},
    ),
}

# Tables holding learner data, erased when a learner asks (raw_deletion_requests itself is the audit trail).
LEARNER_TABLES = [
    "raw_answers",
    "raw_feedback",
    "raw_answer_metrics",
    "raw_windowed_metrics",
    "raw_word_counts",
    "raw_learners",
    "raw_credit_ledger_snapshots",
    "raw_dead_letters",
]


def rows_for(topic: Topic, event: Event) -> Rows:
    table = TABLES[topic]
    return [(table.name, row) for row in table.rows(event)]
