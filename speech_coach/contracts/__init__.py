"""Event contracts and topic names shared by every runtime. See docs/events.md."""

# The contracts are this package's interface: every public name of both modules.
from speech_coach.contracts.events import *  # noqa: F403
from speech_coach.contracts.topics import *  # noqa: F403
