"""Research exports: a month of `research_answers` as Parquet, CSV and DuckDB, with a Frictionless data
package whose table schema is also the codebook. Deterministic: the same data gives byte-identical files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import date
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from clickhouse_driver import Client

LICENSE = {"name": "CC-BY-4.0", "path": "https://creativecommons.org/licenses/by/4.0/", "title": "CC BY 4.0"}

# name, frictionless type, unit, description, derivation: the codebook.
CODEBOOK: list[tuple[str, str, str, str, str]] = [
    ("answer_id", "string", "", "Random answer identifier.", "Assigned by the bot; carries no personal data."),
    (
        "learner_pseudonym",
        "string",
        "",
        "Learner pseudonym.",
        "Keyed HMAC-SHA256 of the Telegram user id, truncated to 96 bits; the key is never exported.",
    ),
    (
        "split",
        "string",
        "",
        "Fixed train/dev/test split, by learner.",
        "sha256(pseudonym) mod 100: 0-79 train, 80-89 dev, 90-99 test; all answers of a learner share a split.",
    ),
    ("question_id", "string", "", "Question answered.", "Stable id from the question bank."),
    ("track", "string", "", "Practice track: toefl, job_interview or workplace.", "From the question bank."),
    ("task_type", "string", "", "Task within the track.", "From the question bank."),
    (
        "answered_date",
        "date",
        "",
        "UTC date the answer was received.",
        "Date part of received_at; the time of day is withheld.",
    ),
    (
        "answer_number",
        "integer",
        "answers",
        "The learner's nth answer.",
        "Row number per learner ordered by receive time.",
    ),
    (
        "seconds_to_answer",
        "number",
        "s",
        "Time from question to answer, preparation included.",
        "received_at - question_sent_at.",
    ),
    ("duration_s", "number", "s", "Audio duration.", "As reported by Telegram."),
    ("status", "string", "", "ok, or rejected when the audio could not be assessed.", "From the feedback engine."),
    (
        "rejection_reason",
        "string",
        "",
        "Why the audio was rejected (e.g. audio.silent).",
        "Machine code from the answer pipeline.",
    ),
    ("overall_score", "number", "points", "Overall score on the task's scale.", "Feedback engine; see scale_max."),
    (
        "scale_max",
        "number",
        "points",
        "Top of the score scale (4 for TOEFL, 5 otherwise).",
        "Maximum of the rubric's criteria.",
    ),
    ("normalized_score", "number", "fraction", "overall_score / scale_max (0..1).", "Comparable across tracks."),
    (
        "is_fallback",
        "boolean",
        "",
        "Feedback came from the offline engine after a remote engine failed.",
        "From the result's engine block.",
    ),
    ("transcript", "string", "", "What the learner said.", "Automatic transcription (Whisper); may contain errors."),
    (
        "speaking_rate_wpm",
        "number",
        "words/min",
        "Words per minute over the whole answer.",
        "tokens / total duration; docs/metrics.md.",
    ),
    (
        "articulation_rate_wpm",
        "number",
        "words/min",
        "Words per minute of speech, pauses excluded.",
        "tokens / speech duration (voice activity detection).",
    ),
    (
        "silent_pause_count",
        "integer",
        "pauses",
        "Silent pauses of at least 250 ms.",
        "Voice activity detection on the audio.",
    ),
    ("mean_silent_pause_s", "number", "s", "Mean silent pause length.", "Voice activity detection on the audio."),
    ("filled_pause_count", "integer", "pauses", "Filled pauses (um, uh) in the transcript.", "Count of filler tokens."),
    ("tokens", "integer", "words", "Word tokens in the transcript.", "docs/metrics.md tokenization."),
    ("types", "integer", "words", "Distinct word types.", "docs/metrics.md."),
    ("ttr", "number", "ratio", "Type-token ratio.", "types / tokens."),
    ("mattr", "number", "ratio", "Moving-average TTR, window 50.", "Covington & McFall (2010)."),
    (
        "mtld",
        "number",
        "tokens",
        "Measure of textual lexical diversity.",
        "McCarthy & Jarvis (2010), threshold 0.72, bidirectional.",
    ),
    ("hdd", "number", "ratio", "HD-D lexical diversity, sample 42.", "McCarthy & Jarvis (2007)."),
    ("mean_zipf", "number", "Zipf", "Mean word frequency on the Zipf scale.", "wordfreq (Speer), English."),
    (
        "rare_word_share",
        "number",
        "fraction",
        "Share of tokens outside the 2,000 most frequent words.",
        "Lexical frequency profile (Laufer & Nation 1995).",
    ),
]
COLUMNS = [c[0] for c in CODEBOOK]
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


def fetch_month(client: Client, month: date) -> list[dict[str, Any]]:
    rows = client.execute(
        f"SELECT {', '.join(SOURCE_COLUMNS)} FROM research_answers WHERE answered_month = %(month)s ORDER BY answer_id",
        {"month": month},
    )
    out = []
    for row in rows:
        record = dict(zip(SOURCE_COLUMNS, row, strict=True))
        record["split"] = split_of(record["learner_pseudonym"])
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
        for n, t, u, d, der in CODEBOOK
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
