"""Feedback as Telegram HTML, split into messages that fit Telegram's 4096-character limit.

Sections are kept whole where they fit; a long transcript or example answer is cut at word boundaries and
each piece wrapped in its own tags, so every message is valid HTML on its own.
"""

from __future__ import annotations

from html import escape

from aiogram.utils.i18n import gettext as _

from bot.i18n import current_language
from speech_coach.contracts.events import FeedbackResult
from speech_coach.i18n import ngettext

LIMIT = 4096


def _pieces(text: str, size: int) -> list[str]:
    """Cut plain text into pieces whose HTML-escaped form has at most `size` characters, at a newline or
    space where possible. Nothing is dropped."""
    out: list[str] = []
    while text:
        if len(escape(text)) <= size:
            out.append(text)
            break
        cut = size
        while len(escape(text[:cut])) > size:  # escaping lengthens & < > "
            cut = int(cut * 0.9)
        space = max(text.rfind("\n", 0, cut), text.rfind(" ", 0, cut))
        cut = space if space > cut // 2 else cut
        out.append(text[:cut])
        text = text[cut:].lstrip()
    return out


def _block(title: str, body: str, tag: str = "blockquote") -> list[str]:
    """A titled section of escaped plain text, split so that each part fits in one message."""
    head = f"<b>{escape(title)}</b>\n"
    room = LIMIT - len(head) - len(tag) * 2 - 8
    return [f"{head if i == 0 else ''}<{tag}>{escape(piece)}</{tag}>" for i, piece in enumerate(_pieces(body, room))]


def _lines(title: str, lines: list[tuple[str, str]]) -> list[str]:
    """A titled list whose lines are an HTML head plus escaped plain text, split into sections that each fit in
    one message; a line too long for a message continues on the next ones. Nothing is dropped."""
    head = f"<b>{escape(title)}</b>"
    room = LIMIT - len(head) - 2
    rendered: list[str] = []
    for html_head, plain in lines:
        pieces = _pieces(plain, room - len(html_head)) or [""]
        rendered += [(html_head if i == 0 else "") + escape(piece) for i, piece in enumerate(pieces)]
    sections: list[str] = []
    current = head
    for line in rendered:
        if len(current) + 1 + len(line) > LIMIT:
            sections.append(current)
            current = line
        else:
            current += "\n" + line
    return [*sections, current]


def feedback_sections(result: FeedbackResult, title: str) -> list[str]:
    heading = _("Feedback")
    sections = [f"<b>{escape(heading)}: {escape(title[:512])}</b>"]
    if result.overall_score is not None:
        sections[0] += "\n" + _("Overall score: <b>{score}</b>").format(score=f"{result.overall_score:g}")
    if result.transcript:
        sections += _block(_("Transcript"), result.transcript)
    if result.rubric:
        # Criteria and comments come from the feedback engine: long ones continue in the next message.
        sections += _lines(_("Rubric"), [
            (f"• {escape(r.criterion)}: <b>{r.score:g}/{r.max_score:g}</b>" + (" — " if r.comment else ""), r.comment)
            for r in result.rubric
        ])  # fmt: skip
    if result.feedback:
        sections += _block(_("Summary"), result.feedback, tag="i")
    for heading, items in ((_("Strengths"), result.strengths), (_("Suggestions"), result.suggestions)):
        if items:
            sections += _lines(heading, [("• ", item) for item in items])
    if result.improved_answer:
        sections += _block(_("Improved example answer"), result.improved_answer)
    if result.metrics:
        m = result.metrics
        wpm = round(m.words_per_minute)
        rate = ngettext(
            current_language(), "Speaking rate: {wpm} word per minute", "Speaking rate: {wpm} words per minute", wpm
        )
        metrics_heading = _("Key metrics")
        sections.append(
            f"<b>{escape(metrics_heading)}</b>\n"
            + rate.format(wpm=wpm) + "\n"
            + _("Pauses: {count} (average {mean:.1f} s)").format(count=m.pause_count, mean=m.mean_pause_s) + "\n"
            + _("Lexical diversity (MATTR): {ld:.2f}").format(ld=m.lexical_diversity)
        )  # fmt: skip
    return sections


def pack(sections: list[str], limit: int = LIMIT) -> list[str]:
    """Join sections into as few messages as fit under the limit."""
    messages: list[str] = []
    current = ""
    for section in sections:
        candidate = f"{current}\n\n{section}" if current else section
        if len(candidate) <= limit:
            current = candidate
        else:
            messages.append(current)
            current = section
    if current:
        messages.append(current)
    return messages


def feedback_messages(result: FeedbackResult, title: str) -> list[str]:
    return pack(feedback_sections(result, title))
