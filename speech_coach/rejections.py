"""Why an answer was rejected: the reason codes the answer job emits, each with the text its learner reads.

The codes travel in `FeedbackResult.rejection_reason` and `DeadLetter.reason` (the table in
docs/answer-pipeline.md says when each is used). The answer job writes the text into the result, and the bot
renders it again from the code in the learner's current language: both from the same catalog, through
`rejection_text`, which always adds that no credit was spent.
"""

from __future__ import annotations

from enum import StrEnum

from speech_coach.i18n import N_, gettext


class RejectionReason(StrEnum):
    AUDIO_MISSING = "audio.missing"
    AUDIO_CORRUPT = "audio.corrupt"
    AUDIO_TOO_LARGE = "audio.too_large"
    AUDIO_EMPTY = "audio.empty"
    AUDIO_UNDECODABLE = "audio.undecodable"
    AUDIO_TOO_LONG = "audio.too_long"
    AUDIO_SILENT = "audio.silent"
    AUDIO_NOT_ENGLISH = "audio.not_english"
    TRANSCRIPTION_UNAVAILABLE = "transcription.unavailable"
    FEEDBACK_UNAVAILABLE = "feedback.unavailable"
    INTERNAL_ERROR = "internal.error"


TEXTS: dict[RejectionReason, str] = {
    RejectionReason.AUDIO_MISSING: N_("We could not find your recording. Please send your answer again."),
    RejectionReason.AUDIO_CORRUPT: N_("Your recording arrived damaged. Please send your answer again."),
    RejectionReason.AUDIO_TOO_LARGE: N_("Your recording is too large for us to process. Please send a shorter answer."),
    RejectionReason.AUDIO_EMPTY: N_("Your recording is empty. Please record your answer again."),
    RejectionReason.AUDIO_UNDECODABLE: N_(
        "We could not play your recording. Please record it again as a Telegram voice message."
    ),
    RejectionReason.AUDIO_TOO_LONG: N_("Your recording is too long for this task. Please answer within the time."),
    RejectionReason.AUDIO_SILENT: N_(
        "We could not hear any speech in your recording. Please check your microphone and try again."
    ),
    RejectionReason.AUDIO_NOT_ENGLISH: N_("Your answer does not seem to be in English. Please answer in English."),
    RejectionReason.TRANSCRIPTION_UNAVAILABLE: N_(
        "Speech recognition is unavailable right now. Please try again later."
    ),
    RejectionReason.FEEDBACK_UNAVAILABLE: N_("Feedback is unavailable right now. Please try again later."),
    RejectionReason.INTERNAL_ERROR: N_("Something went wrong while we processed your answer. Please try again."),
}
# Where the answer job knows the limit it applied (the bot, rendering from the code alone, does not).
TOO_LONG_WITH_LIMIT = N_("Your recording is too long for this task ({limit:.0f} s). Please answer within the time.")
UNKNOWN = N_("We could not process your answer. Please try again.")
NO_CREDIT = N_("No credit was spent.")


def reason_of(code: str | None) -> RejectionReason | None:
    try:
        return RejectionReason(code) if code is not None else None
    except ValueError:
        return None


def rejection_text(code: str | None, lang: str, *, limit_s: float | None = None) -> str:
    """What the learner reads for a rejected answer: what was wrong, and that no credit was spent. An unknown
    code (a newer job, a bad event) gets a general line rather than nothing."""
    reason = reason_of(code)
    if reason is RejectionReason.AUDIO_TOO_LONG and limit_s:
        message = gettext(lang, TOO_LONG_WITH_LIMIT).format(limit=limit_s)
    else:
        message = gettext(lang, TEXTS[reason] if reason is not None else UNKNOWN)
    return f"{message} {gettext(lang, NO_CREDIT)}"
