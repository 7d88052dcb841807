"""Feedback engines behind one interface (`SC_FEEDBACK__ENGINE`): offline rubric estimates, or OpenAI."""

from speech_coach.feedback.base import Feedback, FeedbackEngine, FeedbackInput

__all__ = ["Feedback", "FeedbackEngine", "FeedbackInput"]
