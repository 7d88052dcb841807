"""The versioned question bank: YAML files in `question_bank/`, loaded and validated into typed models.

`load_bank(directory)` reads `bank.yaml` (version, release date, changelog) and every other `*.yaml` file
(items), checks each file against `question_bank/schema.json` (JSON Schema draft 2020-12), then against the
pydantic models and the rules no schema can express: ids unique across files, task type consistent with the
track, the material each task type needs, TOEFL timings, and well-formed sets (Listen and Repeat, Take an
Interview). Any problem raises `QuestionBankError`, whose message names the file, the line and the field:

    question_bank/job_interview.yaml:214: items[12].speaking_time_s: 0 is less than or equal to the minimum of 0

`to_dim_rows(bank)` maps the items to rows of the warehouse's `dim_questions` table. The bot and Dagster
import this module; neither parses the YAML itself. See docs/question-bank.md.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from enum import StrEnum
from functools import cached_property
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from referencing import Registry, Resource

from speech_coach.contracts.events import TaskType, Track
from speech_coach.i18n import N_
from speech_coach.package_data import data_dir

# Package data: the repository's question_bank/ (through the symlink speech_coach/question_bank), or the wheel's copy.
DEFAULT_BANK_DIR = data_dir("speech_coach", "question_bank")
BANK_FILE = "bank.yaml"
SCHEMA_FILE = "schema.json"
MAX_SPEAKING_TIME_S = 600  # the event contract's limit (RawVoiceAnswer.speaking_time_s)

TRACK_OF_TASK: dict[TaskType, Track] = {
    TaskType.TOEFL_INDEPENDENT: Track.TOEFL,
    TaskType.TOEFL_INTEGRATED_CAMPUS: Track.TOEFL,
    TaskType.TOEFL_INTEGRATED_ACADEMIC: Track.TOEFL,
    TaskType.TOEFL_INTEGRATED_LECTURE: Track.TOEFL,
    TaskType.TOEFL_LISTEN_REPEAT: Track.TOEFL,
    TaskType.TOEFL_INTERVIEW: Track.TOEFL,
    TaskType.JOB_INTERVIEW: Track.JOB_INTERVIEW,
    TaskType.WORKPLACE: Track.WORKPLACE,
}

# TOEFL timings are fixed by the test format: (preparation_time_s, speaking_time_s).
TOEFL_TIMINGS: dict[TaskType, tuple[int, int]] = {
    TaskType.TOEFL_INDEPENDENT: (15, 45),
    TaskType.TOEFL_INTEGRATED_CAMPUS: (30, 60),
    TaskType.TOEFL_INTEGRATED_ACADEMIC: (30, 60),
    TaskType.TOEFL_INTEGRATED_LECTURE: (20, 60),
    TaskType.TOEFL_INTERVIEW: (0, 45),
}
# Listen and Repeat: no preparation; 8 to 12 seconds per sentence, longer sentences get more.
LISTEN_REPEAT_SPEAKING_S = (8, 12)
SET_SIZES: dict[TaskType, int] = {TaskType.TOEFL_LISTEN_REPEAT: 7, TaskType.TOEFL_INTERVIEW: 4}

# Which optional fields each task type requires (True), allows (None) or forbids (False).
_MATERIAL_FIELDS = ("reading", "listening", "sentence", "set_id", "set_position", "tip")
_NO_MATERIAL: dict[str, bool | None] = dict.fromkeys(_MATERIAL_FIELDS, False)
MATERIAL: dict[TaskType, dict[str, bool | None]] = {
    TaskType.TOEFL_INDEPENDENT: _NO_MATERIAL,
    TaskType.TOEFL_INTEGRATED_CAMPUS: {**_NO_MATERIAL, "reading": True, "listening": True},
    TaskType.TOEFL_INTEGRATED_ACADEMIC: {**_NO_MATERIAL, "reading": True, "listening": True},
    TaskType.TOEFL_INTEGRATED_LECTURE: {**_NO_MATERIAL, "listening": True},
    TaskType.TOEFL_LISTEN_REPEAT: {**_NO_MATERIAL, "sentence": True, "set_id": True, "set_position": True},
    TaskType.TOEFL_INTERVIEW: {**_NO_MATERIAL, "set_id": True, "set_position": True},
    TaskType.JOB_INTERVIEW: {**_NO_MATERIAL, "tip": True},
    TaskType.WORKPLACE: {**_NO_MATERIAL, "tip": None},
}

# What a learner reads as each task's name (translated where shown: speech_coach/locales).
TASK_LABELS: dict[TaskType, str] = {
    TaskType.TOEFL_INDEPENDENT: N_("TOEFL Task 1 — independent"),
    TaskType.TOEFL_INTEGRATED_CAMPUS: N_("TOEFL Task 2 — campus situation"),
    TaskType.TOEFL_INTEGRATED_ACADEMIC: N_("TOEFL Task 3 — academic course"),
    TaskType.TOEFL_INTEGRATED_LECTURE: N_("TOEFL Task 4 — academic lecture"),
    TaskType.TOEFL_LISTEN_REPEAT: N_("TOEFL Listen and Repeat"),
    TaskType.TOEFL_INTERVIEW: N_("TOEFL Take an Interview"),
    TaskType.JOB_INTERVIEW: N_("Job interview"),
    TaskType.WORKPLACE: N_("Workplace conversation"),
}


class QuestionBankError(ValueError):
    """The bank failed to load. The message has one `file:line: field: problem` line per problem."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.field))
        super().__init__("\n".join(str(p) for p in self.problems))

    @property
    def file(self) -> str:
        return self.problems[0].file

    @property
    def line(self) -> int:
        return self.problems[0].line

    @property
    def field(self) -> str:
        return self.problems[0].field


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    field: str  # a path such as `items[12].speaking_time_s`; empty for the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class Difficulty(StrEnum):
    EASY = "easy"
    MEDIUM = "medium"
    HARD = "hard"


Text = Annotated[str, Field(min_length=1, pattern=r"\S")]
KebabId = Annotated[str, Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$", max_length=80)]


class Question(BaseModel):
    """One question the bot can ask; one voice answer is given to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: KebabId
    track: Track
    task_type: TaskType
    title: Annotated[str, Field(min_length=1, max_length=120)]
    prompt: Text
    reading: Text | None = None
    listening: Text | None = None
    sentence: Text | None = None
    set_id: KebabId | None = None
    set_position: Annotated[int, Field(ge=1)] | None = None
    tip: Text | None = None
    preparation_time_s: Annotated[int, Field(ge=0, le=MAX_SPEAKING_TIME_S)]
    speaking_time_s: Annotated[int, Field(gt=0, le=MAX_SPEAKING_TIME_S)]
    difficulty: Difficulty
    tags: tuple[KebabId, ...] = ()
    retired: bool = False
    retired_at: date | None = None

    def problems(self) -> list[tuple[str, str]]:
        """(field, message) for every rule of its task type that this item breaks."""
        out: list[tuple[str, str]] = []
        expected_track = TRACK_OF_TASK[self.task_type]
        if self.track != expected_track:
            out.append(("task_type", f"{self.task_type.value!r} belongs to track {expected_track.value!r}, "
                                     f"not {self.track.value!r}"))  # fmt: skip
        for name, rule in MATERIAL[self.task_type].items():
            present = getattr(self, name) is not None
            if rule is True and not present:
                out.append((name, f"is required for task type {self.task_type.value!r}"))
            elif rule is False and present:
                out.append((name, f"is not allowed for task type {self.task_type.value!r}"))
        if self.task_type in TOEFL_TIMINGS:
            prep, speak = TOEFL_TIMINGS[self.task_type]
            if self.preparation_time_s != prep:
                out.append(("preparation_time_s", f"must be {prep} for {self.task_type.value!r}"))
            if self.speaking_time_s != speak:
                out.append(("speaking_time_s", f"must be {speak} for {self.task_type.value!r}"))
        elif self.task_type is TaskType.TOEFL_LISTEN_REPEAT:
            low, high = LISTEN_REPEAT_SPEAKING_S
            if self.preparation_time_s != 0:
                out.append(("preparation_time_s", "must be 0 for 'toefl_listen_repeat'"))
            if not low <= self.speaking_time_s <= high:
                out.append(("speaking_time_s", f"must be between {low} and {high} for 'toefl_listen_repeat'"))
        if self.retired and self.retired_at is None:
            out.append(("retired_at", "is required when retired is true"))
        if not self.retired and self.retired_at is not None:
            out.append(("retired", "must be true when retired_at is set"))
        return out

    def material_text(self) -> str:
        """The prompt with its material, as one text (the warehouse's `dim_questions.prompt`)."""
        parts = [self.prompt]
        if self.reading:
            parts.append(f"Reading: {self.reading}")
        if self.listening:
            parts.append(f"Listening: {self.listening}")
        if self.sentence:
            parts.append(f"Sentence to repeat: {self.sentence}")
        return "\n\n".join(parts)


class ChangelogEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: str
    date: date
    note: Text


class QuestionBank(BaseModel):
    """A release of the bank: every item, retired ones included, in file order."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, Field(pattern=r"^[0-9]{4}\.[0-9]{1,2}\.[0-9]+$")]
    released_at: date
    changelog: tuple[ChangelogEntry, ...]
    items: tuple[Question, ...]

    @cached_property
    def by_id(self) -> dict[str, Question]:
        return {q.id: q for q in self.items}

    @cached_property
    def sets(self) -> dict[str, tuple[Question, ...]]:
        """Set id -> its items in set order (Listen and Repeat, Take an Interview)."""
        groups: dict[str, list[Question]] = {}
        for q in self.items:
            if q.set_id is not None:
                groups.setdefault(q.set_id, []).append(q)
        return {k: tuple(sorted(v, key=lambda q: q.set_position or 0)) for k, v in groups.items()}

    def active(self) -> tuple[Question, ...]:
        """The items the bot may ask: every item not retired."""
        return tuple(q for q in self.items if not q.retired)

    def of_task(self, task_type: TaskType, *, include_retired: bool = False) -> tuple[Question, ...]:
        return tuple(q for q in self.items if q.task_type is task_type and (include_retired or not q.retired))

    def set_ids(self, task_type: TaskType, *, include_retired: bool = False) -> list[str]:
        """Ids of the sets of a task type, in file order; a set counts as retired when all its items are."""
        return [
            set_id
            for set_id, members in self.sets.items()
            if members[0].task_type is task_type and (include_retired or not all(q.retired for q in members))
        ]


# --- YAML with line numbers ---------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def field_path(path: Path_) -> str:
    """('items', 12, 'speaking_time_s') -> 'items[12].speaking_time_s'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


class _Doc:
    """A YAML document as plain JSON-like data plus the line of every node (keys and values)."""

    def __init__(self, display: str, text: str) -> None:
        self.display = display
        self.value_lines: dict[Path_, int] = {}
        self.key_lines: dict[Path_, int] = {}
        self.problems: list[Problem] = []
        try:
            node = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.MarkedYAMLError as exc:
            raise QuestionBankError([self._syntax_problem(text, exc)]) from None
        except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error from text is marked
            raise QuestionBankError([Problem(display, 1, "", f"invalid YAML: {exc}")]) from None
        self.data: Any = None if node is None else self._build(node, ())
        if self.problems:
            raise QuestionBankError(self.problems)

    def _build(self, node: yaml.Node, path: Path_) -> Any:
        self.value_lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    self.problems.append(Problem(self.display, key_node.start_mark.line + 1, field_path(path),
                                                 "mapping keys must be plain strings"))  # fmt: skip
                    continue
                key = str(key_node.value)
                if key in out:
                    self.problems.append(Problem(self.display, key_node.start_mark.line + 1,
                                                 field_path((*path, key)), "duplicate key"))  # fmt: skip
                self.key_lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self._build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._build(child, (*path, i)) for i, child in enumerate(node.value)]
        assert isinstance(node, yaml.ScalarNode)
        if node.tag in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool",
                        "tag:yaml.org,2002:null"):  # fmt: skip
            return yaml.SafeLoader("").construct_object(node)
        return node.value  # strings, and dates kept as written (the schema and pydantic check them)

    def line(self, path: Path_, *, key: bool = False) -> int:
        """The line of the node at `path` (or of its key), else of its nearest existing parent."""
        while path:
            lines = self.key_lines if key else self.value_lines
            if path in lines:
                return lines[path]
            path, key = path[:-1], False
        return self.value_lines.get((), 1)

    def _syntax_problem(self, text: str, exc: yaml.MarkedYAMLError) -> Problem:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        near = field_path(_last_path_before_error(text))
        message = f"invalid YAML: {exc.problem or exc}"
        if exc.context:
            message += f" ({exc.context})"
        return Problem(self.display, line, near, message)


@dataclass
class _Frame:
    is_map: bool
    path: Path_
    key: str = ""
    index: int = -1
    want_key: bool = True


def _last_path_before_error(text: str) -> Path_:
    """The path of the field the parser was in when it failed, from the events it produced before failing."""
    stack: list[_Frame] = []
    current: Path_ = ()
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
                current = stack.pop().path
                if stack and stack[-1].is_map:
                    stack[-1].want_key = True
                continue
            if not isinstance(event, yaml.ScalarEvent | yaml.AliasEvent | yaml.CollectionStartEvent):
                continue
            top = stack[-1] if stack else None
            if top is not None and top.is_map and top.want_key:
                top.key, top.want_key = str(getattr(event, "value", "?")), False
                current = (*top.path, top.key)
                continue
            if top is None:
                current = ()
            elif top.is_map:
                current = (*top.path, top.key)
            else:
                top.index += 1
                current = (*top.path, top.index)
            if isinstance(event, yaml.CollectionStartEvent):
                stack.append(_Frame(is_map=isinstance(event, yaml.MappingStartEvent), path=current))
            elif top is not None and top.is_map:
                top.want_key = True
    except yaml.YAMLError:
        pass
    return current


# --- loading ------------------------------------------------------------------------------------------


def _display(path: Path) -> str:
    try:
        return os.path.relpath(path) if path.is_absolute() and path.is_relative_to(Path.cwd()) else str(path)
    except ValueError:  # pragma: no cover - a different drive on Windows
        return str(path)


@dataclass(frozen=True)
class _Validators:
    items: Draft202012Validator
    bank: Draft202012Validator


def _validators(schema_path: Path) -> _Validators:
    schema = json.loads(schema_path.read_text())
    Draft202012Validator.check_schema(schema)
    registry: Registry[Any] = Registry().with_resource(schema["$id"], Resource.from_contents(schema))
    return _Validators(
        items=Draft202012Validator(schema, registry=registry),
        bank=Draft202012Validator({"$ref": f"{schema['$id']}#/$defs/bankFile"}, registry=registry),
    )


def _schema_problems(doc: _Doc, validator: Draft202012Validator) -> list[Problem]:
    problems: list[Problem] = []
    for error in validator.iter_errors(doc.data):
        problems.extend(_schema_problem(doc, error))
    return problems


def _schema_problem(doc: _Doc, error: SchemaError) -> Iterator[Problem]:
    path: Path_ = tuple(error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, Mapping):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        for name in required:
            if name not in instance:
                # A missing field is reported on the line of the object that lacks it.
                yield Problem(doc.display, doc.line(path), field_path((*path, name)), "is a required property")
        return
    if error.validator == "additionalProperties" and isinstance(instance, Mapping):
        allowed = error.schema.get("properties", {}) if isinstance(error.schema, Mapping) else {}
        for name in instance:
            if name not in allowed:
                yield Problem(doc.display, doc.line((*path, name), key=True), field_path((*path, name)),
                              "is not an allowed field")  # fmt: skip
        return
    if error.validator == "if":  # pragma: no cover - jsonschema reports the failing `then` keyword instead
        return
    yield Problem(doc.display, doc.line(path), field_path(path) or "(file)", _message(error))


_JSON_TYPES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer", float: "number"}


def _message(error: SchemaError) -> str:
    """Short messages for the common cases (`must be > 0`); jsonschema's own message for the rest."""
    value, instance = error.validator_value, error.instance
    bounds = {"exclusiveMinimum": ">", "minimum": ">=", "exclusiveMaximum": "<", "maximum": "<="}
    if error.validator in bounds:
        return f"must be {bounds[str(error.validator)]} {value}, not {instance!r}"
    if error.validator == "type":
        found = "null" if instance is None else _JSON_TYPES.get(type(instance), type(instance).__name__)
        return f"must be of type {value}, not {found} ({instance!r})"
    if error.validator == "enum" and isinstance(value, list):
        return f"must be one of {', '.join(map(str, value))}; got {instance!r}"
    if error.validator == "const":
        return f"must be {value!r}, not {instance!r}"
    return error.message


def _pydantic_problems(doc: _Doc, base: Path_, exc: ValidationError) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc: Path_ = (*base, *(part for part in err["loc"] if isinstance(part, str | int)))
        out.append(Problem(doc.display, doc.line(loc), field_path(loc), err["msg"]))
    return out


def _read(path: Path) -> _Doc:
    display = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise QuestionBankError([Problem(display, 1, "", f"cannot read: {exc}")]) from None
    return _Doc(display, text)


def load_bank(directory: str | os.PathLike[str] = DEFAULT_BANK_DIR, *, schema: Path | None = None) -> QuestionBank:
    """Load and validate the bank in `directory`; raise `QuestionBankError` naming file, line and field.

    The schema is `directory/schema.json` when there is one, else the shipped bank's `schema.json`.
    """
    directory = Path(directory)
    if schema is None:
        schema = directory / SCHEMA_FILE if (directory / SCHEMA_FILE).is_file() else DEFAULT_BANK_DIR / SCHEMA_FILE
    validators = _validators(schema)
    problems: list[Problem] = []

    bank_path = directory / BANK_FILE
    if not bank_path.is_file():
        raise QuestionBankError([Problem(_display(bank_path), 1, "", "missing: the bank's version and changelog")])
    bank_doc = _read(bank_path)
    problems += _schema_problems(bank_doc, validators.bank)
    if problems:
        raise QuestionBankError(problems)

    item_files = sorted(p for p in directory.glob("*.yaml") if p.name != BANK_FILE)
    if not item_files:
        raise QuestionBankError([Problem(_display(directory), 1, "", "no item files (*.yaml) in the bank")])

    items: list[Question] = []
    where: dict[str, tuple[_Doc, int]] = {}  # id -> (document, index) of its first occurrence
    for path in item_files:
        try:
            doc = _read(path)
        except QuestionBankError as exc:  # unreadable or not YAML: report it with the other files' problems
            problems += exc.problems
            continue
        file_problems = _schema_problems(doc, validators.items)
        if file_problems:
            problems += file_problems
            continue
        for index, raw in enumerate(doc.data["items"]):
            base: Path_ = ("items", index)
            try:
                question = Question.model_validate(raw)
            except ValidationError as exc:
                problems += _pydantic_problems(doc, base, exc)
                continue
            for name, message in question.problems():
                problems.append(Problem(doc.display, doc.line((*base, name)), field_path((*base, name)), message))
            if question.id in where:
                first_doc, first_index = where[question.id]
                first = f"{first_doc.display}:{first_doc.line(('items', first_index, 'id'))}"
                problems.append(Problem(doc.display, doc.line((*base, "id")), field_path((*base, "id")),
                                        f"duplicate id {question.id!r}, first used at {first}"))  # fmt: skip
                continue
            where[question.id] = (doc, index)
            items.append(question)
    if problems:
        raise QuestionBankError(problems)
    problems += _set_problems(items, where)
    if problems:
        raise QuestionBankError(problems)

    try:
        return QuestionBank.model_validate(
            {
                "version": bank_doc.data["version"],
                "released_at": bank_doc.data["released_at"],
                "changelog": bank_doc.data["changelog"],
                "items": items,
            }
        )
    except ValidationError as exc:
        raise QuestionBankError(_pydantic_problems(bank_doc, (), exc)) from None


def _set_problems(items: Sequence[Question], where: Mapping[str, tuple[_Doc, int]]) -> list[Problem]:
    """Sets: one task type, positions 1..n, the expected size, Listen and Repeat sentences growing longer."""
    problems: list[Problem] = []

    def report(q: Question, name: str, message: str) -> None:
        doc, index = where[q.id]
        path: Path_ = ("items", index, name)
        problems.append(Problem(doc.display, doc.line(path), field_path(path), message))

    groups: dict[str, list[Question]] = {}
    for q in items:
        if q.set_id is not None:
            groups.setdefault(q.set_id, []).append(q)
    for set_id, members in groups.items():
        first = members[0]
        mixed = [q for q in members if q.task_type is not first.task_type]
        for q in mixed:
            report(q, "task_type", f"set {set_id!r} mixes task types ({first.task_type.value!r} first)")
        if mixed:
            continue
        positions = sorted(q.set_position or 0 for q in members)
        expected = SET_SIZES.get(first.task_type, len(members))
        if positions != list(range(1, expected + 1)):
            report(members[-1], "set_position",
                   f"set {set_id!r} must have positions 1..{expected} once each, has {positions}")  # fmt: skip
            continue
        if first.task_type is TaskType.TOEFL_LISTEN_REPEAT:
            ordered = sorted(members, key=lambda q: q.set_position or 0)
            for prev, q in pairwise(ordered):
                if len((q.sentence or "").split()) <= len((prev.sentence or "").split()):
                    report(q, "sentence", f"set {set_id!r}: each sentence must have more words than the one before")
                if q.speaking_time_s < prev.speaking_time_s:
                    report(q, "speaking_time_s", f"set {set_id!r}: speaking time must not shrink as sentences grow")
    return problems


# --- warehouse ----------------------------------------------------------------------------------------


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def to_dim_rows(bank: QuestionBank, *, updated_at: datetime | None = None) -> list[dict[str, Any]]:
    """One `dim_questions` row per item, retired ones included (their `retired_at` set).

    `updated_at` defaults to the bank's release date, so loading the same release twice writes identical rows
    and a later release replaces them (the table is a ReplacingMergeTree on `updated_at`).
    """
    stamp = updated_at or _midnight(bank.released_at)
    return [
        {
            "question_id": q.id,
            "bank_version": bank.version,
            "track": q.track.value,
            "task_type": q.task_type.value,
            "title": q.title,
            "prompt": q.material_text(),
            "preparation_time_s": q.preparation_time_s,
            "speaking_time_s": q.speaking_time_s,
            "difficulty": q.difficulty.value,
            "retired_at": _midnight(q.retired_at) if q.retired and q.retired_at else None,
            "updated_at": stamp,
        }
        for q in bank.items
    ]


__all__ = [
    "DEFAULT_BANK_DIR",
    "MAX_SPEAKING_TIME_S",
    "TRACK_OF_TASK",
    "ChangelogEntry",
    "Difficulty",
    "Problem",
    "Question",
    "QuestionBank",
    "QuestionBankError",
    "load_bank",
    "to_dim_rows",
]
