"""Docs that follow the code: the researcher guide's codebook, the architecture page's topics, relative links."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from speech_coach.contracts import TOPIC_EVENT, Topic
from warehouse.codebook_doc import GUIDE, codebook_table, write_guide
from warehouse.exports import CODEBOOK

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", "docs/architecture.md", "docs/researcher-guide.md", "docs/reliability.md", "docs/contributing.md"]


def test_codebook_in_researcher_guide_is_current() -> None:
    assert codebook_table() in GUIDE.read_text(), "docs/researcher-guide.md is stale: python -m warehouse.codebook_doc"


def test_codebook_table_has_every_column_once() -> None:
    rows = [line for line in codebook_table().splitlines() if re.match(r"\| \d+ \|", line)]
    assert [row.split(" | ")[1].strip("`") for row in rows] == [name for name, *_ in CODEBOOK]


def test_write_guide_replaces_only_the_block(tmp_path: Path) -> None:
    page = tmp_path / "guide.md"
    page.write_text("before\n<!-- codebook:start -->\nold | table\n<!-- codebook:end -->\nafter\n")
    assert write_guide(page)
    assert page.read_text() == "before\n" + codebook_table() + "\nafter\n"
    assert not write_guide(page)  # a second run changes nothing


def test_architecture_names_every_topic_and_event() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    for topic in Topic:
        assert f"`{topic.value}`" in text, topic.value
        assert f"`{TOPIC_EVENT[topic].EVENT_TYPE}`" in text, TOPIC_EVENT[topic].EVENT_TYPE


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_resolve(doc: str) -> None:
    path = ROOT / doc
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text())
    missing = [t for t in targets if "://" not in t and not (path.parent / t).exists()]
    assert not missing, f"{doc} links to missing files: {missing}"


def test_readme_links_the_new_pages() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "(docs/architecture.md)" in readme and "(docs/researcher-guide.md)" in readme


def test_reliability_table_names_only_existing_tests() -> None:
    # docs/reliability.md maps each fault and bad input to its tests: a renamed or removed test must fail here.
    text = (ROOT / "docs" / "reliability.md").read_text()
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)`", text)
    assert len(named) > 40
    missing = [f"{path}::{name}" for path, name in named
               if not (ROOT / path).exists() or f"def {name}(" not in (ROOT / path).read_text()]  # fmt: skip
    assert not missing, f"docs/reliability.md names tests that do not exist: {missing}"
    for heading in ("## Bad input", "## Security", "## Faults and load"):
        assert heading in text
