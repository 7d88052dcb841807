"""What simulated learners say: answer texts built from the question, with pauses and fillers per persona.

Three personas differ the way real learners do on the features the pipeline measures: speaking rate, how often
and how long they pause, filled pauses, and the range of their vocabulary. Everything is drawn from a seeded
RNG, so a simulation is reproducible.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from speech_coach.questions import Question


@dataclass(frozen=True)
class Persona:
    name: str
    rate_wpm: int
    pause_every_words: int  # a silent pause after about this many words
    pause_ms: tuple[int, int]
    filler_share: float  # chance a pause is filled with "um" or "uh"
    sentences: tuple[int, int]
    openings: tuple[str, ...]
    bodies: tuple[str, ...]
    closings: tuple[str, ...]


BEGINNER = Persona(
    "beginner", 115, 6, (700, 1400), 0.5, (3, 4),
    ("I think {topic} is good.", "I like {topic}.", "For me, {topic} is important."),
    (
        "It is good for people.", "My friend likes {topic} too.", "I do it every week.",
        "It is easy and it is fun.", "Many people like {topic}.", "It helps me with my study.",
    ),
    ("So I like {topic}.", "That is why I think so."),
)  # fmt: skip
INTERMEDIATE = Persona(
    "intermediate", 140, 10, (450, 900), 0.25, (4, 5),
    ("In my opinion, {topic} is very useful.", "I prefer {topic} for a few reasons."),
    (
        "First, it saves a lot of time during the week.", "For example, last year I tried {topic} with my colleagues.",
        "Second, it helps me to understand other people better.", "Also, I can learn new things from my mistakes.",
        "Many of my friends have a similar experience with {topic}.", "However, it can be difficult at the beginning.",
    ),
    ("For these reasons, I believe {topic} is the better choice.", "That is why I would choose {topic}."),
)  # fmt: skip
ADVANCED = Persona(
    "advanced", 165, 16, (300, 600), 0.1, (5, 6),
    ("From my perspective, {topic} offers considerable advantages.", "I would argue that {topic} is preferable."),
    (
        "To begin with, it encourages a more deliberate and reflective approach.",
        "A vivid illustration comes from my previous internship, where {topic} transformed our workflow.",
        "Moreover, it cultivates resilience, since setbacks become opportunities for refinement.",
        "Admittedly, critics contend that the initial investment seems disproportionate.",
        "Nevertheless, the long-term benefits substantially outweigh these modest drawbacks.",
        "Consequently, colleagues collaborate more transparently and anticipate obstacles earlier.",
    ),
    ("Ultimately, {topic} strikes a sensible balance between efficiency and depth.",),
)  # fmt: skip
PERSONAS = (BEGINNER, INTERMEDIATE, ADVANCED)

_STOP = frozenset(
    [
        "about",
        "after",
        "again",
        "answer",
        "before",
        "being",
        "between",
        "could",
        "describe",
        "during",
        "every",
        "examples",
        "explain",
        "others",
        "people",
        "prefer",
        "reasons",
        "should",
        "specific",
        "support",
        "their",
        "there",
        "these",
        "think",
        "those",
        "which",
        "while",
        "would",
        "your",
        "yourself",
        "introduce",
        "respond",
        "manager",
        "asks",
        "expresses",
        "repeat",
        "spend",
        "opinion",
        "exactly",
    ]
)


def topic_of(question: Question) -> str:
    """The prompt's rarest content word: usually the noun the question is about (classmates, supplier...)."""
    from wordfreq import zipf_frequency

    words = {w.lower() for w in re.findall(r"[A-Za-z]+", question.prompt) if len(w) >= 5}
    words = {w for w in words if w not in _STOP and not w.endswith(("ly", "ing", "ed"))}
    if not words:
        return "this idea"
    return min(sorted(words), key=lambda w: zipf_frequency(w, "en"))


@dataclass(frozen=True)
class Script:
    text: str  # what a perfect transcript would say (fillers included)
    ssml: str  # the same with pauses, for the synthesizer
    rate_wpm: int


def compose(question: Question, persona: Persona, rng: random.Random) -> Script:
    if question.sentence:  # Listen and Repeat: the learner repeats the sentence
        sentences = [question.sentence]
    else:
        topic = topic_of(question)
        count = rng.randint(*persona.sentences)
        body = rng.sample(persona.bodies, k=min(count - 2, len(persona.bodies)))
        sentences = [rng.choice(persona.openings), *body, rng.choice(persona.closings)]
        sentences = [s.format(topic=topic) for s in sentences]
    words = " ".join(sentences).split()
    text_parts: list[str] = []
    ssml_parts: list[str] = []
    since_pause = 0
    for i, word in enumerate(words):
        text_parts.append(word)
        ssml_parts.append(_escape(word))
        since_pause += 1
        if since_pause >= persona.pause_every_words and i < len(words) - 1 and rng.random() < 0.8:
            since_pause = 0
            ssml_parts.append(f'<break time="{rng.randint(*persona.pause_ms)}ms"/>')
            if rng.random() < persona.filler_share:
                filler = rng.choice(("um", "uh"))
                text_parts.append(filler)
                ssml_parts.append(f'{filler} <break time="250ms"/>')
    rate = max(90, int(rng.gauss(persona.rate_wpm, 8)))
    return Script(" ".join(text_parts), "<speak>" + " ".join(ssml_parts) + "</speak>", rate)


def _escape(word: str) -> str:
    return word.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
