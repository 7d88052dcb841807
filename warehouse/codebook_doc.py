"""The codebook table in docs/researcher-guide.md, generated from `warehouse.exports.CODEBOOK`.

`python -m warehouse.codebook_doc` rewrites the table between the marker comments; tests/test_docs.py fails
when the page drifts from the codebook the exports are written with.
"""

from __future__ import annotations

from pathlib import Path

from warehouse.exports import _ARROW, CODEBOOK

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "researcher-guide.md"
BEGIN = "<!-- codebook:start -->"
END = "<!-- codebook:end -->"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def codebook_table() -> str:
    """The markdown block, markers included, that the guide must contain."""
    rows = [
        "| # | column | type (Parquet) | unit | description | derivation |",
        "|---|---|---|---|---|---|",
    ]
    for number, (name, kind, unit, description, derivation, _) in enumerate(CODEBOOK, start=1):
        cells = [str(number), f"`{name}`", f"{kind} (`{_ARROW[kind]}`)", unit, description, derivation]
        rows.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join([BEGIN, "", *rows, "", END])


def write_guide(path: Path = GUIDE) -> bool:
    """Replace the block between the markers; True when the file changed."""
    text = path.read_text()
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{path}: markers {BEGIN!r} and {END!r} not found")
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    new = head + codebook_table() + tail
    if new != text:
        path.write_text(new)
    return new != text


if __name__ == "__main__":
    print(f"{GUIDE.name}: {'updated' if write_guide() else 'already current'}")
