"""The question bank: the real files load and meet the content targets; broken files fail with file:line: field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from speech_coach.contracts.events import RawVoiceAnswer, TaskType, Track
from speech_coach.questions import (
    DEFAULT_BANK_DIR,
    MAX_SPEAKING_TIME_S,
    Question,
    QuestionBank,
    QuestionBankError,
    load_bank,
    to_dim_rows,
)

ROOT = Path(__file__).resolve().parents[1]
BANK_DIR = ROOT / "question_bank"

# --- the real bank ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bank() -> QuestionBank:
    return load_bank(BANK_DIR)


def test_default_directory_is_the_repositorys_bank() -> None:
    assert DEFAULT_BANK_DIR == BANK_DIR
    assert load_bank().version == load_bank(BANK_DIR).version


def test_schema_is_valid_draft_2020_12() -> None:
    schema = json.loads((BANK_DIR / "schema.json").read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    # The schema's enums are exactly the contract's, so the bank can only use values the events accept.
    item = schema["$defs"]["item"]["properties"]
    assert item["track"]["enum"] == [t.value for t in Track]
    assert item["task_type"]["enum"] == [t.value for t in TaskType]
    contract_limit = [m.le for m in RawVoiceAnswer.model_fields["speaking_time_s"].metadata if hasattr(m, "le")]
    assert [item["speaking_time_s"]["maximum"]] == contract_limit == [MAX_SPEAKING_TIME_S]


def test_bank_version_and_changelog(bank: QuestionBank) -> None:
    assert bank.version == "2026.11.0"
    assert bank.changelog[-1].version == bank.version or bank.changelog[0].version == bank.version


def test_counts_per_task(bank: QuestionBank) -> None:
    assert len(bank.of_task(TaskType.TOEFL_INDEPENDENT)) >= 60
    for task in (
        TaskType.TOEFL_INTEGRATED_CAMPUS,
        TaskType.TOEFL_INTEGRATED_ACADEMIC,
        TaskType.TOEFL_INTEGRATED_LECTURE,
    ):
        assert len(bank.of_task(task)) >= 8, task
    assert len(bank.set_ids(TaskType.TOEFL_LISTEN_REPEAT)) >= 8
    assert len(bank.set_ids(TaskType.TOEFL_INTERVIEW)) >= 8
    assert len(bank.of_task(TaskType.JOB_INTERVIEW)) >= 40
    assert len(bank.of_task(TaskType.WORKPLACE)) >= 40


def test_ids_unique_and_kebab_case(bank: QuestionBank) -> None:
    ids = [q.id for q in bank.items]
    assert len(ids) == len(set(ids)) == len(bank.by_id)


def test_titles_and_prompts_unique_where_they_should_be(bank: QuestionBank) -> None:
    singles = [q for q in bank.items if q.set_id is None]
    assert len({q.prompt for q in singles}) == len(singles)
    assert len({q.title for q in bank.items}) == len(bank.items)


def test_every_item_consistent_with_its_track(bank: QuestionBank) -> None:
    for q in bank.items:
        assert q.problems() == [], q.id
        assert 0 < q.speaking_time_s <= 600


def _words(text: str | None) -> int:
    return len((text or "").split())


def test_integrated_material_present_and_of_the_right_length(bank: QuestionBank) -> None:
    # Word counts include the headline of a reading and the speaker labels of a transcript.
    for q in bank.of_task(TaskType.TOEFL_INTEGRATED_CAMPUS):
        assert 80 <= _words(q.reading) <= 115 and 150 <= _words(q.listening) <= 205, q.id
        assert (q.preparation_time_s, q.speaking_time_s) == (30, 60)
    for q in bank.of_task(TaskType.TOEFL_INTEGRATED_ACADEMIC):
        assert 90 <= _words(q.reading) <= 115 and 180 <= _words(q.listening) <= 235, q.id
        assert (q.preparation_time_s, q.speaking_time_s) == (30, 60)
    for q in bank.of_task(TaskType.TOEFL_INTEGRATED_LECTURE):
        assert q.reading is None and 200 <= _words(q.listening) <= 260, q.id
        assert (q.preparation_time_s, q.speaking_time_s) == (20, 60)


def test_task_1_timings(bank: QuestionBank) -> None:
    for q in bank.of_task(TaskType.TOEFL_INDEPENDENT):
        assert (q.preparation_time_s, q.speaking_time_s) == (15, 45)


def test_listen_repeat_sets(bank: QuestionBank) -> None:
    for set_id in bank.set_ids(TaskType.TOEFL_LISTEN_REPEAT):
        members = bank.sets[set_id]
        assert [q.set_position for q in members] == list(range(1, 8))
        lengths = [_words(q.sentence) for q in members]
        assert lengths == sorted(set(lengths)), set_id  # strictly increasing
        assert all(8 <= q.speaking_time_s <= 12 and q.preparation_time_s == 0 for q in members)
        assert len({q.prompt for q in members}) == 1  # one scenario per set


def test_interview_sets(bank: QuestionBank) -> None:
    for set_id in bank.set_ids(TaskType.TOEFL_INTERVIEW):
        members = bank.sets[set_id]
        assert [q.set_position for q in members] == [1, 2, 3, 4]
        assert all((q.preparation_time_s, q.speaking_time_s) == (0, 45) for q in members)


def test_job_interview_items_have_tips(bank: QuestionBank) -> None:
    for q in bank.of_task(TaskType.JOB_INTERVIEW):
        assert q.tip and (q.preparation_time_s, q.speaking_time_s) == (30, 90)
    for q in bank.of_task(TaskType.WORKPLACE):
        assert (q.preparation_time_s, q.speaking_time_s) == (20, 60)


def test_dim_rows_match_the_warehouse_table(bank: QuestionBank) -> None:
    ddl = (ROOT / "warehouse" / "migrations" / "0002_dimensions.sql").read_text()
    table = ddl.split("CREATE TABLE IF NOT EXISTS dim_questions")[1].split("ENGINE")[0]
    columns = [line.split()[0] for line in table.strip().strip("()").strip().splitlines() if line.strip()]
    rows = to_dim_rows(bank)
    assert len(rows) == len(bank.items)
    assert all(list(row) == columns for row in rows)
    by_id = {row["question_id"]: row for row in rows}
    campus = bank.of_task(TaskType.TOEFL_INTEGRATED_CAMPUS)[0]
    row = by_id[campus.id]
    assert row["bank_version"] == bank.version and row["task_type"] == "toefl_integrated_campus"
    assert row["prompt"].startswith(campus.prompt)
    assert campus.reading and campus.reading in row["prompt"] and "Listening: " in row["prompt"]
    assert row["retired_at"] is None
    assert row["updated_at"] == datetime(2026, 11, 20, tzinfo=UTC)
    assert all(row["updated_at"].tzinfo is UTC for row in rows)


# --- broken banks -------------------------------------------------------------------------------------

BANK_YAML = """\
version: "2026.11.1"
released_at: "2026-11-21"
changelog:
  - version: "2026.11.1"
    date: "2026-11-21"
    note: Test bank.
"""


def workplace_item(item_id: str, speaking: str = "60", extra: str = "") -> str:
    """A valid workplace item: 9 lines (10 with `extra`), `- id:` on the first."""
    return (
        f"  - id: {item_id}\n"
        "    track: workplace\n"
        "    task_type: workplace\n"
        f"    title: Title of {item_id}\n"
        f"    prompt: Say something about {item_id}.\n"
        "    preparation_time_s: 20\n"
        f"    speaking_time_s: {speaking}\n"
        "    difficulty: easy\n"
        "    tags: [small-talk]\n"
    ) + (f"    {extra}\n" if extra else "")


def write_bank(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if "bank.yaml" not in files:
        (directory / "bank.yaml").write_text(BANK_YAML)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def load_error(directory: Path) -> QuestionBankError:
    with pytest.raises(QuestionBankError) as info:
        load_bank(directory)
    return info.value


def test_a_minimal_valid_bank_loads(tmp_path: Path) -> None:
    bank = load_bank(write_bank(tmp_path, {"w.yaml": "items:\n" + workplace_item("w-1") + workplace_item("w-2")}))
    assert bank.version == "2026.11.1" and [q.id for q in bank.items] == ["w-1", "w-2"]
    assert isinstance(bank.by_id["w-2"], Question)


def test_wrong_type(tmp_path: Path) -> None:
    text = "items:\n" + workplace_item("w-1") + workplace_item("w-2", speaking='"sixty"')
    err = load_error(write_bank(tmp_path, {"w.yaml": text}))
    # line 1 `items:`, item 0 on lines 2-10, item 1 from line 11: speaking_time_s is its 7th line.
    where = f"{tmp_path / 'w.yaml'}:17: items[1].speaking_time_s"
    assert str(err) == f"{where}: must be of type integer, not string ('sixty')"
    assert (err.file, err.line, err.field) == (str(tmp_path / "w.yaml"), 17, "items[1].speaking_time_s")


def test_speaking_time_must_be_positive_and_within_the_contract(tmp_path: Path) -> None:
    text = "items:\n" + workplace_item("w-1", speaking="0") + workplace_item("w-2", speaking="601")
    err = load_error(write_bank(tmp_path, {"w.yaml": text}))
    assert str(err).splitlines() == [
        f"{tmp_path / 'w.yaml'}:8: items[0].speaking_time_s: must be > 0, not 0",
        f"{tmp_path / 'w.yaml'}:17: items[1].speaking_time_s: must be <= 600, not 601",
    ]


def test_missing_field_points_at_its_item(tmp_path: Path) -> None:
    second = workplace_item("w-2").replace("    prompt: Say something about w-2.\n", "")
    err = load_error(write_bank(tmp_path, {"w.yaml": "items:\n" + workplace_item("w-1") + second}))
    assert str(err) == f"{tmp_path / 'w.yaml'}:11: items[1].prompt: is a required property"


def test_duplicate_id_across_files(tmp_path: Path) -> None:
    a = "items:\n" + workplace_item("w-1") + workplace_item("w-2")
    b = "description: Second file.\nitems:\n" + workplace_item("w-3") + workplace_item("w-2")
    err = load_error(write_bank(tmp_path, {"a.yaml": a, "b.yaml": b}))
    assert str(err) == (
        f"{tmp_path / 'b.yaml'}:12: items[1].id: duplicate id 'w-2', first used at {tmp_path / 'a.yaml'}:11"
    )


def test_bad_yaml_syntax(tmp_path: Path) -> None:
    text = "items:\n" + workplace_item("w-1").replace("title: Title of w-1", "title: Meeting: agenda")
    err = load_error(write_bank(tmp_path, {"w.yaml": text}))
    assert err.line == 5 and err.field == "items[0].title"
    assert str(err).startswith(f"{tmp_path / 'w.yaml'}:5: items[0].title: invalid YAML: mapping values are not allowed")


def test_bad_indentation_names_the_field_before(tmp_path: Path) -> None:
    text = "items:\n" + workplace_item("w-1").replace("    difficulty: easy\n", "   difficulty: easy\n")
    err = load_error(write_bank(tmp_path, {"w.yaml": text}))
    assert err.file == str(tmp_path / "w.yaml") and err.line == 9
    assert err.field.startswith("items[0]") and "invalid YAML" in str(err)


def test_every_file_is_checked_before_raising(tmp_path: Path) -> None:
    broken = "items:\n" + workplace_item("w-1").replace("title: Title of w-1", "title: Meeting: agenda")
    invalid = "items:\n" + workplace_item("w-2", speaking="-5")
    err = load_error(write_bank(tmp_path, {"a.yaml": broken, "b.yaml": invalid}))
    assert [(p.file, p.line, p.field) for p in err.problems] == [
        (str(tmp_path / "a.yaml"), 5, "items[0].title"),
        (str(tmp_path / "b.yaml"), 8, "items[0].speaking_time_s"),
    ]


def test_unknown_task_type(tmp_path: Path) -> None:
    text = "items:\n" + workplace_item("w-1").replace("task_type: workplace", "task_type: toefl_speaking")
    err = load_error(write_bank(tmp_path, {"w.yaml": text}))
    assert str(err).startswith(f"{tmp_path / 'w.yaml'}:4: items[0].task_type: must be one of toefl_independent,")
    assert str(err).endswith("; got 'toefl_speaking'")


def test_task_type_inconsistent_with_track(tmp_path: Path) -> None:
    text = "items:\n" + workplace_item("w-1").replace("track: workplace", "track: toefl")
    err = load_error(write_bank(tmp_path, {"w.yaml": text}))
    assert str(err) == (
        f"{tmp_path / 'w.yaml'}:4: items[0].task_type: 'workplace' belongs to track 'workplace', not 'toefl'"
    )


def test_unknown_field_points_at_its_key(tmp_path: Path) -> None:
    text = "items:\n" + workplace_item("w-1", extra="speaking_time: 60")
    err = load_error(write_bank(tmp_path, {"w.yaml": text}))
    assert str(err) == f"{tmp_path / 'w.yaml'}:11: items[0].speaking_time: is not an allowed field"


def test_duplicate_key(tmp_path: Path) -> None:
    text = "items:\n" + workplace_item("w-1", extra="difficulty: hard")
    err = load_error(write_bank(tmp_path, {"w.yaml": text}))
    assert str(err) == f"{tmp_path / 'w.yaml'}:11: items[0].difficulty: duplicate key"


def test_retired_needs_a_date(tmp_path: Path) -> None:
    err = load_error(write_bank(tmp_path, {"w.yaml": "items:\n" + workplace_item("w-1", extra="retired: true")}))
    assert str(err) == f"{tmp_path / 'w.yaml'}:2: items[0].retired_at: is a required property"


def test_retired_items_load_and_map_to_retired_rows(tmp_path: Path) -> None:
    text = "items:\n" + workplace_item("w-1", extra="retired: true\n    retired_at: 2026-12-01") + workplace_item("w-2")
    bank = load_bank(write_bank(tmp_path, {"w.yaml": text}))
    assert [q.id for q in bank.active()] == ["w-2"] and len(bank.items) == 2
    rows = {row["question_id"]: row for row in to_dim_rows(bank)}
    assert rows["w-1"]["retired_at"] == datetime(2026, 12, 1, tzinfo=UTC)
    assert rows["w-2"]["retired_at"] is None


CAMPUS = """\
items:
  - id: c-1
    track: toefl
    task_type: toefl_integrated_campus
    title: Campus
    prompt: State the man's opinion.
    listening: "Man: I like it."
    preparation_time_s: 30
    speaking_time_s: 60
    difficulty: easy
    tags: []
"""


def test_integrated_task_needs_its_material(tmp_path: Path) -> None:
    err = load_error(write_bank(tmp_path, {"c.yaml": CAMPUS}))
    assert str(err) == (
        f"{tmp_path / 'c.yaml'}:2: items[0].reading: is required for task type 'toefl_integrated_campus'"
    )


def test_toefl_timings_are_fixed(tmp_path: Path) -> None:
    text = CAMPUS.replace('listening: "Man: I like it."', 'reading: "A notice."\n    listening: "Man: I like it."')
    err = load_error(write_bank(tmp_path, {"c.yaml": text.replace("speaking_time_s: 60", "speaking_time_s: 45")}))
    assert str(err) == f"{tmp_path / 'c.yaml'}:10: items[0].speaking_time_s: must be 60 for 'toefl_integrated_campus'"


def listen_repeat(sentences: list[str], positions: list[int] | None = None) -> str:
    lines = ["items:"]
    for i, (sentence, pos) in enumerate(zip(sentences, positions or range(1, 8), strict=True), 1):
        lines += [
            f"  - id: lr-{i}",
            "    track: toefl",
            "    task_type: toefl_listen_repeat",
            f"    title: Tour {i}",
            "    set_id: lr",
            f"    set_position: {pos}",
            "    prompt: Repeat what you hear.",
            f"    sentence: {sentence}",
            "    preparation_time_s: 0",
            "    speaking_time_s: 10",
            "    difficulty: easy",
            "    tags: []",
        ]
    return "\n".join(lines) + "\n"


SENTENCES = [" ".join(["word"] * n) + "." for n in (3, 4, 5, 6, 7, 8, 9)]


def test_listen_repeat_set_loads(tmp_path: Path) -> None:
    bank = load_bank(write_bank(tmp_path, {"lr.yaml": listen_repeat(SENTENCES)}))
    assert [q.id for q in bank.sets["lr"]] == [f"lr-{i}" for i in range(1, 8)]
    assert bank.set_ids(TaskType.TOEFL_LISTEN_REPEAT) == ["lr"]


def test_listen_repeat_needs_sentences(tmp_path: Path) -> None:
    text = listen_repeat(SENTENCES).replace("    sentence: word word word.\n", "")
    err = load_error(write_bank(tmp_path, {"lr.yaml": text}))
    assert str(err) == f"{tmp_path / 'lr.yaml'}:2: items[0].sentence: is required for task type 'toefl_listen_repeat'"


def test_listen_repeat_sentences_grow(tmp_path: Path) -> None:
    sentences = [*SENTENCES[:3], SENTENCES[2], *SENTENCES[4:]]  # the 4th is no longer than the 3rd
    err = load_error(write_bank(tmp_path, {"lr.yaml": listen_repeat(sentences)}))
    # item 3 starts on line 2 + 3 * 12 = 38; `sentence` is its 8th line.
    where = f"{tmp_path / 'lr.yaml'}:45: items[3].sentence"
    assert str(err) == f"{where}: set 'lr': each sentence must have more words than the one before"


def test_listen_repeat_set_positions(tmp_path: Path) -> None:
    err = load_error(write_bank(tmp_path, {"lr.yaml": listen_repeat(SENTENCES, [1, 2, 3, 4, 5, 6, 6])}))
    assert err.line == 2 + 6 * 12 + 5 and err.field == "items[6].set_position"
    assert "positions 1..7 once each" in str(err)


def test_missing_bank_file(tmp_path: Path) -> None:
    (tmp_path / "w.yaml").write_text("items:\n" + workplace_item("w-1"))
    err = load_error(tmp_path)
    assert err.file == str(tmp_path / "bank.yaml") and err.line == 1


def test_bad_bank_version(tmp_path: Path) -> None:
    bank_yaml = BANK_YAML.replace('version: "2026.11.1"\nreleased', 'version: "v1"\nreleased')
    err = load_error(write_bank(tmp_path, {"bank.yaml": bank_yaml, "w.yaml": "items:\n" + workplace_item("w-1")}))
    assert err.file == str(tmp_path / "bank.yaml") and err.line == 1 and err.field == "version"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    count=st.integers(min_value=1, max_value=12),
    data=st.data(),
    speaking=st.one_of(st.integers(max_value=0), st.integers(min_value=601)),
)
def test_any_bad_speaking_time_is_reported_on_its_line(
    tmp_path: Path, count: int, data: st.DataObject, speaking: int
) -> None:
    bad = data.draw(st.integers(min_value=0, max_value=count - 1))
    text = "items:\n" + "".join(
        workplace_item(f"w-{i}", speaking=str(speaking) if i == bad else "60") for i in range(count)
    )
    directory = write_bank(tmp_path / f"case-{count}-{bad}-{speaking}", {"w.yaml": text})
    err = load_error(directory)
    assert err.line == 2 + 9 * bad + 6 and err.field == f"items[{bad}].speaking_time_s"
    assert len(err.problems) == 1
