"""Research exports: a month of `research_answers` as Parquet, CSV and DuckDB, with a Frictionless data
package whose table schema is also the codebook. Deterministic: the same data gives byte-identical files."""

from __future__ import annotations

import csv
import enum
import hashlib
import io
import json
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
from clickhouse_driver import Client

from speech_coach.contracts import (
    POINTS,
    RATIO,
    SECONDS,
    AnswerMetrics,
    Event,
    FeedbackResult,
    RawVoiceAnswer,
    unit_of,
)
from warehouse.rows import TABLES

LICENSE = {"name": "CC-BY-4.0", "path": "https://creativecommons.org/licenses/by/4.0/", "title": "CC BY 4.0"}


class Variable(NamedTuple):
    """One exported column: name, Frictionless type, unit, description, derivation, and the contract field it is
    (`Event.path`), if any."""

    name: str
    type: str
    unit: str
    description: str
    derivation: str
    source: str = ""


_FRICTIONLESS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def from_contract(event: type[Event], path: str, derivation: str, *, name: str = "") -> Variable:
    """A column that is a contract field as the warehouse stores it: its type, unit and description come from
    the contract (speech_coach/contracts/events.py), so they read the same in every document."""
    (table,) = [t for t in TABLES.values() if t.event is event]
    (column,) = [c for c in table.columns if c.path == path]
    kind, description = column.annotation, column.info.description or ""
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        description += f" One of {', '.join(m.value for m in kind)}."
        kind = str
    return Variable(
        name or column.column,
        _FRICTIONLESS[kind],
        unit_of(column.info),
        description,
        derivation,
        f"{event.__name__}.{path}",
    )


# The codebook: the export's columns in order. Columns that are contract fields are declared by their field.
CODEBOOK: list[Variable] = [
    from_contract(RawVoiceAnswer, "answer_id", "The pipeline's idempotency key."),
    Variable(
        "learner_pseudonym",
        "string",
        "",
        "Learner pseudonym.",
        "Keyed HMAC-SHA256 of the Telegram user id, truncated to 96 bits; the key is never exported.",
    ),
    Variable(
        "split",
        "string",
        "",
        "Fixed train/dev/test split, by learner.",
        "sha256(pseudonym) mod 100: 0-79 train, 80-89 dev, 90-99 test; all answers of a learner share a split.",
    ),
    from_contract(RawVoiceAnswer, "question_id", "From the question bank."),
    from_contract(RawVoiceAnswer, "track", "From the question bank."),
    from_contract(RawVoiceAnswer, "task_type", "From the question bank."),
    Variable(
        "answered_date",
        "date",
        "",
        "UTC date the answer was received.",
        "Date part of received_at; the time of day is withheld.",
    ),
    Variable(
        "answer_number",
        "integer",
        "answers",
        "The learner's nth answer.",
        "Row number per learner ordered by receive time.",
    ),
    Variable(
        "seconds_to_answer",
        "number",
        SECONDS,
        "Time from question to answer, preparation included.",
        "received_at - question_sent_at.",
    ),
    from_contract(RawVoiceAnswer, "audio.duration_s", "Telegram's metadata of the voice message."),
    from_contract(FeedbackResult, "status", "From the answer pipeline."),
    from_contract(FeedbackResult, "rejection_reason", "Machine code from the answer pipeline."),
    from_contract(FeedbackResult, "overall_score", "Feedback engine; see scale_max."),
    Variable(
        "scale_max",
        "number",
        POINTS,
        "Top of the score scale (4 for TOEFL, 5 otherwise).",
        "Maximum of the rubric's criteria.",
    ),
    Variable("normalized_score", "number", RATIO, "overall_score / scale_max.", "Comparable across tracks."),
    from_contract(FeedbackResult, "engine.fallback", "From the result's engine block.", name="is_fallback"),
    from_contract(FeedbackResult, "transcript", "Automatic transcription (Whisper)."),
    from_contract(AnswerMetrics, "speaking_rate_wpm", "tokens / speech span; docs/metrics.md."),
    from_contract(AnswerMetrics, "articulation_rate_wpm", "tokens / speech duration (voice activity detection)."),
    from_contract(AnswerMetrics, "silent_pause_count", "Voice activity detection on the audio."),
    from_contract(AnswerMetrics, "mean_silent_pause_s", "Voice activity detection on the audio."),
    from_contract(AnswerMetrics, "filled_pause_count", "Count of filler tokens."),
    from_contract(AnswerMetrics, "tokens", "docs/metrics.md tokenization."),
    from_contract(AnswerMetrics, "types", "Word forms, not lemmas; docs/metrics.md."),
    from_contract(AnswerMetrics, "ttr", "Over the transcript's tokens; docs/metrics.md."),
    from_contract(
        AnswerMetrics, "mattr", "The TTR of a single window for answers of 50 tokens or fewer; docs/metrics.md."
    ),
    from_contract(AnswerMetrics, "mtld", "Mean of a forward and a backward pass; docs/metrics.md."),
    from_contract(AnswerMetrics, "hdd", "Hypergeometric expectation, on the TTR scale; docs/metrics.md."),
    from_contract(AnswerMetrics, "mean_zipf", "Over the tokens; words wordfreq does not know count 0."),
    from_contract(
        AnswerMetrics, "rare_word_share", "Word form and lemma both outside wordfreq's top 2,000; docs/metrics.md."
    ),
]
COLUMNS = [c.name for c in CODEBOOK]
SOURCE_COLUMNS = [c for c in COLUMNS if c != "split"]
_ARROW = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "date": pa.date32(),
}


@dataclass(frozen=True)
class ExportFile:
    name: str
    data: bytes
    media_type: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def split_of(pseudonym: str) -> str:
    bucket = int(hashlib.sha256(pseudonym.encode()).hexdigest(), 16) % 100
    return "train" if bucket < 80 else "dev" if bucket < 90 else "test"


# Contact details a learner may say in an answer: never released, whatever the transcript holds.
EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
PHONE = re.compile(r"(?<![\w+])\+?\d(?:[\s().-]?\d){6,14}(?![\w])")


# The platform's own ids are UUIDs (answer ids): the digits between their dashes look like a phone number to PHONE
# in about one UUID in twelve ("55625062-93d4-...", "...-4621-9147-..."), so a release of real answers would always
# fail its check. They are not contact details and are taken out before looking for some.
UUID = re.compile(r"\b[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}\b")


def redact_contacts(text: str) -> str:
    return PHONE.sub("[phone number]", EMAIL.sub("[email]", text))


def contact_details(value: str) -> tuple[bool, bool]:
    """(holds an e-mail address, holds a phone number): what the export check looks for in every released value."""
    text = UUID.sub(" ", value)
    return bool(EMAIL.search(text)), bool(PHONE.search(text))


def fetch_month(client: Client, month: date, erased: Collection[str] = ()) -> list[dict[str, Any]]:
    """The month's research answers of learners who consent now: `research_answers` is as of its last dbt build, so
    consent is checked again against the newest learners copy, and `erased` (learner ids with a deletion request,
    read from the deletion topic itself) are left out even before ingestion has erased them."""
    rows = client.execute(
        f"SELECT {', '.join(SOURCE_COLUMNS)} FROM research_answers WHERE answered_month = %(month)s "
        "AND learner_pseudonym IN (SELECT learner_pseudonym FROM raw_learners FINAL "
        "WHERE research_consent = 1 AND learner_id NOT IN %(erased)s) ORDER BY answer_id",
        {"month": month, "erased": tuple(erased) or ("",)},
    )
    out = []
    for row in rows:
        record = dict(zip(SOURCE_COLUMNS, row, strict=True))
        record["split"] = split_of(record["learner_pseudonym"])
        record["transcript"] = redact_contacts(record["transcript"] or "")
        record["is_fallback"] = bool(record["is_fallback"]) if record["is_fallback"] is not None else None
        out.append({c: record[c] for c in COLUMNS})
    return out


def _parquet(rows: list[dict[str, Any]]) -> bytes:
    schema = pa.schema([(name, _ARROW[kind]) for name, kind, *_ in CODEBOOK])
    table = pa.Table.from_pylist(rows, schema=schema)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd", write_statistics=True)
    return sink.getvalue()


def _csv(rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return out.getvalue().encode()


def datapackage(month: date, files: list[ExportFile], rows: int) -> dict[str, Any]:
    fields = [
        {"name": n, "type": t, "description": d, **({"unit": u} if u else {}), "derivation": der}
        for n, t, u, d, der, _ in CODEBOOK
    ]
    resources = []
    for f in files:
        fmt = f.name.rsplit(".", 1)[1]
        resource: dict[str, Any] = {
            "name": f"answers-{fmt}",
            "path": f.name,
            "format": fmt,
            "mediatype": f.media_type,
            "schema": {"fields": fields, "primaryKey": ["answer_id"]},
        }
        if fmt == "csv":
            resource |= {"hash": f"sha256:{f.sha256}", "bytes": len(f.data)}
        else:
            # Frictionless reads Parquet through pyarrow and cannot verify hash/bytes; keep the checksum anyway.
            resource["sha256"] = f.sha256
        resources.append(resource)
    return {
        "name": f"speech-coach-answers-{month:%Y-%m}",
        "title": f"Speech Coach spoken-English practice answers, {month:%B %Y}",
        "description": "Consenting learners' practice answers with scores, fluency and lexical measures. "
        "Pseudonymized; see README.md.",
        "version": f"{month:%Y.%m}.0",
        "licenses": [LICENSE],
        "keywords": ["spoken English", "learner corpus", "fluency", "lexical diversity", "TOEFL"],
        "resources": resources,
        "rows": rows,
    }


README = """# Speech Coach answers, {month:%B %Y}

{rows:,} practice answers from learners who consented to research use, in `answers.parquet`,
`answers.csv` and `answers.duckdb` (table `answers`, the same rows; a convenience copy outside the
checksummed package because DuckDB's file bytes vary between builds). `datapackage.json` describes every
column: its type, unit, meaning and derivation (the codebook), and can be checked with
`frictionless validate datapackage.json`.

- **Pseudonymized.** Learners appear only as `learner_pseudonym`, a keyed HMAC of their Telegram id. No
  Telegram ids, usernames or names are included, and times are reduced to dates.
- **Consent.** Only learners who accepted research use are included; learners who withdrew consent or asked
  for deletion are removed from later exports.
- **Splits.** `split` assigns each learner, and all their answers, to train (80 %), dev (10 %) or test (10 %)
  by a hash of the pseudonym, so splits are the same in every monthly export.

Query it without a server:

```python
import duckdb
duckdb.sql("SELECT track, count(*), avg(normalized_score) FROM 'answers.parquet' GROUP BY track").show()
```

## Citation

Speech Coach contributors ({month:%Y}). *Speech Coach spoken-English practice answers, {month:%B %Y}*
(version {month:%Y.%m}.0) [Data set].

## Licence

Creative Commons Attribution 4.0 International (CC BY 4.0).
"""


def build_export(rows: list[dict[str, Any]], month: date, *, with_duckdb: bool = True) -> list[ExportFile]:
    tables = [
        ExportFile("answers.parquet", _parquet(rows), "application/vnd.apache.parquet"),
        ExportFile("answers.csv", _csv(rows), "text/csv"),
    ]
    package = json.dumps(datapackage(month, tables, len(rows)), indent=2, sort_keys=True).encode()
    files = [
        *tables,
        ExportFile("datapackage.json", package, "application/json"),
        ExportFile("README.md", README.format(month=month, rows=len(rows)).encode(), "text/markdown"),
    ]
    # The DuckDB copy holds the same table, but DuckDB's file bytes differ from build to build, so it stays
    # out of the checksummed data package (README.md describes it).
    if with_duckdb:
        files.append(ExportFile("answers.duckdb", duckdb_file(tables[0].data), "application/octet-stream"))
    return files


def duckdb_file(parquet: bytes) -> bytes:
    """A DuckDB database with the month's `answers` table (built from the Parquet file)."""
    import tempfile
    from pathlib import Path

    import duckdb

    with tempfile.TemporaryDirectory() as tmp:
        src, db = Path(tmp) / "answers.parquet", Path(tmp) / "answers.duckdb"
        src.write_bytes(parquet)
        con = duckdb.connect(str(db))
        con.execute(f"CREATE TABLE answers AS SELECT * FROM read_parquet('{src}') ORDER BY answer_id")
        con.close()
        return db.read_bytes()
