"""The answer pipeline's parts without the job: decoding, voice activity and fluency on generated speech with
pauses of known length, WER, the model hash check, learner texts, offline scores and the LLM schema."""

from __future__ import annotations

import ast
import itertools
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from speech_coach import rejections
from speech_coach.audio import SAMPLE_RATE, AudioError, decode
from speech_coach.audio.tts import Speech, add_noise, encode, silence, synthesize, to_ogg_opus
from speech_coach.contracts import RawVoiceAnswer
from speech_coach.feedback.base import FeedbackInput
from speech_coach.feedback.offline import OfflineFeedback, content_lemmas, relevance
from speech_coach.feedback.remote import response_schema
from speech_coach.feedback.rubric import SCALES
from speech_coach.i18n import DEFAULT_LANGUAGE, gettext, languages, ngettext, read_catalog
from speech_coach.rejections import RejectionReason, rejection_text
from speech_coach.settings import TINY_EN_SHA256, Settings
from speech_coach.speech.fluency import measure, speech_segments
from speech_coach.speech.transcribe import ModelError, check_model, default_model_dir
from speech_coach.speech.wer import edit_distance, wer
from speech_coach.text import analyze
from speech_coach.tools import find_ffmpeg
from tests.openai_standin import instance, strict_problems

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ffmpeg() -> Path:
    return find_ffmpeg(Settings(_env_file=None)).executable  # type: ignore[call-arg]


def test_wer_is_word_level_levenshtein() -> None:
    assert edit_distance(["a", "b", "c", "d"], ["a", "x", "c"]) == 2  # one substitution, one deletion
    assert wer("The cat sat on the mat.", "the cat sat on a mat") == pytest.approx(1 / 6)
    assert wer("I don\u2019t know", "i don't know") == 0.0
    assert wer("", "") == 0.0 and wer("", "extra") == 1.0
    assert wer("one two", "one two three four") == 1.0  # insertions count


def test_decoding_telegram_voice_gives_16k_mono_of_the_same_length(ffmpeg: Path) -> None:
    speech = synthesize("This is a short test sentence.")
    audio = decode(to_ogg_opus(speech, ffmpeg), ffmpeg, max_duration_s=60)
    assert audio.samples.dtype.name == "float32" and SAMPLE_RATE == 16_000
    assert abs(audio.duration_s - speech.duration_s) < 0.1
    wav = decode(encode(speech, ffmpeg, fmt="wav"), ffmpeg, max_duration_s=60)
    assert abs(wav.duration_s - speech.duration_s) < 0.01


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"", "audio.empty"), (b"OggS" + bytes(300), "audio.undecodable"), (bytes(range(256)) * 20, "audio.undecodable")],
)
def test_unusable_bytes_raise_a_reason(ffmpeg: Path, data: bytes, reason: str) -> None:
    with pytest.raises(AudioError) as info:
        decode(data, ffmpeg, max_duration_s=60)
    assert info.value.reason == reason


def test_too_long_audio_is_refused_without_decoding_all_of_it(ffmpeg: Path) -> None:
    speech = Speech(silence(30, 16000), 16000)
    with pytest.raises(AudioError) as info:
        decode(to_ogg_opus(speech, ffmpeg), ffmpeg, max_duration_s=10)
    assert info.value.reason == "audio.too_long"


BREAKS_MS = [900, 1500, 600, 1200]


def _paused_speech() -> Speech:
    parts = ["I usually study in the library after my classes.", "It is quiet there and I can focus.",
             "My friends sometimes join me in the evening.", "We review our notes before the exams.",
             "Then we go home together."]  # fmt: skip
    ssml = "".join(f"{p} <break time='{ms}ms'/> " for p, ms in itertools.zip_longest(parts, BREAKS_MS, fillvalue=0))
    return synthesize(ssml.replace("<break time='0ms'/>", ""))


@pytest.mark.parametrize("snr_db", [None, 20])
def test_voice_activity_finds_pauses_of_known_length(ffmpeg: Path, snr_db: float | None) -> None:
    speech = _paused_speech()
    if snr_db is not None:
        speech = add_noise(speech, snr_db)
    audio = decode(to_ogg_opus(speech, ffmpeg), ffmpeg, max_duration_s=60)
    segments = speech_segments(audio.samples)
    sent = datetime(2026, 1, 1, tzinfo=UTC)
    received = sent + timedelta(seconds=10 + audio.duration_s)
    fl = measure(segments, total_duration_s=audio.duration_s, words=37, filled_pauses=0,
                 question_sent_at=sent, received_at=received)  # fmt: skip
    long_pauses = [p for p in fl.pauses if p >= 0.5]
    # Each inserted break is found, within 200 ms (espeak adds a little silence at sentence ends).
    assert len(long_pauses) == len(BREAKS_MS)
    for found, inserted in zip(long_pauses, BREAKS_MS, strict=True):
        assert abs(found - inserted / 1000) < 0.2, (fl.pauses, BREAKS_MS)
    assert fl.speech_duration_s < audio.duration_s - sum(BREAKS_MS) / 1000 + 0.3
    assert fl.articulation_rate_wpm > fl.speaking_rate_wpm > 0
    assert fl.mean_length_of_run_words == pytest.approx(37 / (fl.silent_pause_count + 1))
    assert fl.time_to_answer_s == pytest.approx(10 + fl.speech_onset_s, abs=0.01)


def test_silence_has_no_speech(ffmpeg: Path) -> None:
    audio = decode(to_ogg_opus(Speech(silence(3, 16000), 16000), ffmpeg), ffmpeg, max_duration_s=60)
    assert speech_segments(audio.samples) == []
    fl = measure([], total_duration_s=3, words=0, filled_pauses=0)
    assert fl.speech_duration_s == 0 and fl.silent_pause_count == 0 and fl.speaking_rate_wpm == 0


def test_model_hash_is_checked_and_errors_name_the_fix(tmp_path: Path) -> None:
    check_model(default_model_dir(), TINY_EN_SHA256)
    with pytest.raises(ModelError, match="SC_TRANSCRIPTION__MODEL_SHA256"):
        check_model(default_model_dir(), "0" * 64)
    with pytest.raises(ModelError, match="SC_TRANSCRIPTION__MODEL_DIR"):
        check_model(tmp_path, TINY_EN_SHA256)
    (tmp_path / "model.bin").write_bytes(b"not a model")
    check_model(tmp_path, "")  # an empty hash skips the check, for a user's own model


@pytest.mark.parametrize("lang", languages())
def test_every_rejection_reason_has_a_real_translation_in_every_language(lang: str) -> None:
    catalog = read_catalog(lang)
    problems = []
    for reason in RejectionReason:
        msgids = [rejections.TEXTS[reason], rejections.NO_CREDIT]
        if reason is RejectionReason.AUDIO_TOO_LONG:
            msgids.append(rejections.TOO_LONG_WITH_LIMIT)
        for msgid in msgids:
            entry = catalog.get(msgid)
            if entry is None:
                problems.append(f"{reason.value}: {msgid!r} is not in the catalog")
            elif lang != DEFAULT_LANGUAGE and (not entry.string or entry.fuzzy):
                problems.append(f"{reason.value}: {msgid!r} is not translated")
        for limit in (None, 90):
            text = rejection_text(reason, lang, limit_s=limit)
            if lang != DEFAULT_LANGUAGE and text == rejection_text(reason, DEFAULT_LANGUAGE, limit_s=limit):
                problems.append(f"{reason.value}: the learner would read the English text")
            if "{" in text or not text.endswith(gettext(lang, rejections.NO_CREDIT)):
                problems.append(f"{reason.value}: {text!r} does not end saying no credit was spent")
    assert not problems, f"{lang}: " + "; ".join(problems)
    assert "90 s" in rejection_text("audio.too_long", "en", limit_s=90)
    # A code this version does not know (a newer job, a bad event) still gets a text, in the learner's language.
    assert rejection_text("audio.too_short", lang) == rejection_text(None, lang)
    assert rejection_text(None, lang).startswith(gettext(lang, rejections.UNKNOWN))


def test_a_language_without_a_catalog_reads_english() -> None:
    for reason in RejectionReason:
        assert rejection_text(reason, "de") == rejection_text(reason, "en")


def test_the_pipeline_emits_only_the_cores_reason_codes_and_the_docs_list_them() -> None:
    # Each Rejection the pipeline raises names a RejectionReason (no string codes), and every code is raised.
    used: set[str] = set()
    for path in (ROOT / "flink_jobs/answers/pipeline.py", ROOT / "speech_coach/audio/decode.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("Rejection", "AudioError"):
                reason = node.args[1 if node.func.id == "Rejection" else 0]  # type: ignore[attr-defined]
                assert not isinstance(reason, ast.Constant), f"{path.name}:{node.lineno}: a code as a string"
            if isinstance(node, ast.Attribute) and getattr(node.value, "id", None) == "RejectionReason":
                used.add(node.attr)
    assert used == {r.name for r in RejectionReason}
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \|", (ROOT / "docs/answer-pipeline.md").read_text(), re.M))
    assert documented == {r.value for r in RejectionReason}


def _answer(track: str = "toefl", task: str = "toefl_independent", lang: str = "en") -> RawVoiceAnswer:
    now = datetime.now(UTC)
    return RawVoiceAnswer.model_validate({
        "answer_id": "a", "learner_id": "l", "question_id": "q", "track": track, "task_type": task,
        "interface_language": lang, "speaking_time_s": 45, "question_sent_at": now, "received_at": now,
        "audio": {"bucket": "b", "key": "k", "sha256": "0" * 64, "mime_type": "audio/ogg", "size_bytes": 1,
                  "duration_s": 1},
        "telegram": {"update_id": 1, "chat_id": 1, "message_id": 1, "file_unique_id": "f"},
    })  # fmt: skip


def _fluency(wpm: float, pauses: int):  # type: ignore[no-untyped-def]
    from speech_coach.speech.fluency import Segment

    # `pauses` pauses of 1 s spread over 40 s of speech
    step = 40 / (pauses + 1)
    segments = [Segment(i * (step + 1), i * (step + 1) + step) for i in range(pauses + 1)]
    return measure(segments, total_duration_s=45, words=round(wpm * 40 / 60), filled_pauses=0)


TRANSCRIPT = ("I prefer studying alone because I can focus on difficult topics, choose my own schedule and avoid "
              "distractions. For example, last semester I reviewed organic chemistry every evening.")  # fmt: skip


def test_offline_scores_follow_the_measured_features() -> None:
    engine = OfflineFeedback()
    question = "Some students prefer to study alone, while others prefer to study with a group. Which do you prefer?"
    lexical = analyze(TRANSCRIPT * 3)
    fluent = engine.feedback(FeedbackInput(_answer(), question, TRANSCRIPT * 3, _fluency(150, 4), lexical))
    halting = engine.feedback(FeedbackInput(_answer(), question, TRANSCRIPT * 3, _fluency(70, 20), lexical))
    delivery = {f.rubric[0].criterion: (f.rubric[0].score, h.rubric[0].score) for f, h in [(fluent, halting)]}
    assert delivery["Delivery"][0] > delivery["Delivery"][1]
    assert fluent.overall_score > halting.overall_score
    assert any("words per minute" in s for s in halting.suggestions)
    for result in (fluent, halting):
        assert result.scale == "toefl_0_4" and result.prompt_version.startswith("offline-rubric-")
        assert all(0 <= r.score <= 4 and r.score * 2 == int(r.score * 2) for r in result.rubric)
        assert 2 <= result.feedback.count(".") <= 5 and 1 <= len(result.suggestions) <= 3 and result.strengths


def test_offline_feedback_reads_in_the_learners_language_with_the_counts_plural() -> None:
    engine = OfflineFeedback()
    question = "Some students prefer to study alone, while others prefer to study with a group. Which do you prefer?"
    lexical = analyze(TRANSCRIPT)
    results = {
        lang: engine.feedback(FeedbackInput(_answer(lang=lang), question, TRANSCRIPT, _fluency(110, 1), lexical))
        for lang in ("en", "ru", "de")
    }
    en, ru = results["en"], results["ru"]
    assert results["de"] == en  # no catalog: English
    english = [en.feedback, *(r.comment for r in en.rubric), *en.strengths, *en.suggestions]
    russian = [ru.feedback, *(r.comment for r in ru.rubric), *ru.strengths, *ru.suggestions]
    assert len(russian) == len(english)
    for text_en, text_ru in zip(english, russian, strict=True):
        assert text_ru != text_en and re.search("[\u0400-\u04ff]", text_ru), text_ru  # translated, not a fallback
    # One pause: the singular in English, Russian's form for 1, which is not its form for 5.
    one = "{pauses} pause of a quarter second or longer", "{pauses} pauses of a quarter second or longer"
    assert ngettext("en", *one, 1).format(pauses=1) in en.feedback
    assert ngettext("ru", *one, 1).format(pauses=1) in ru.feedback
    assert ngettext("ru", *one, 1) != ngettext("ru", *one, 5)


def test_relevance_counts_the_questions_content_words() -> None:
    question = "Describe a place you have never been to but would like to visit. Explain why."
    assert "place" in content_lemmas(question) and "you" not in content_lemmas(question)
    on_topic = relevance(question, content_lemmas("I would like to visit Kyoto, a place I have never been to."))
    off_topic = relevance(question, content_lemmas("My favourite food is pizza with cheese."))
    assert on_topic is not None and off_topic is not None and on_topic > off_topic
    assert relevance(None, set()) is None


@pytest.mark.parametrize("track", list(SCALES))
def test_the_llm_schema_is_strict_and_bounded_by_the_scale(track: object) -> None:
    scale = SCALES[track]  # type: ignore[index]
    schema = response_schema(scale, 45)
    assert strict_problems(schema) == []
    value = instance(schema)
    Draft202012Validator(schema).validate(value)
    assert set(value["scores"]) == {c.key for c in scale.criteria}
    value["scores"][scale.criteria[0].key]["score"] = scale.high + 1
    assert not Draft202012Validator(schema).is_valid(value)


def test_a_short_repetition_loop_is_not_english_but_real_answers_are() -> None:
    from control.harness.answer_job import ANSWERS_45S, plain_text
    from speech_coach.speech.transcribe import LOOP_SHARE, repeated_share

    loop = "I'm not sure if I can see it, but I'm not sure if I can see it. I'm not sure if I can see it."
    assert repeated_share(loop) >= LOOP_SHARE
    assert repeated_share("I agree. I agree. I agree.") == 0.0  # too short to judge
    for answer in ANSWERS_45S:
        assert repeated_share(plain_text(answer)) < 0.1
    # Listen-and-repeat: one sentence said once, then its longer version: not a loop.
    assert repeated_share("The library opens at nine. The library opens at nine on weekdays.") < LOOP_SHARE


def test_playlists_given_as_an_answer_are_refused_and_nothing_is_fetched(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A learner's "voice message" that is an HLS, DASH, concat or SDP playlist must never reach a demuxer that opens
    what it names (a URL on the network, a file on the worker)."""
    import http.server
    import threading

    from speech_coach.audio.decode import AudioError, decode
    from speech_coach.settings import Settings
    from speech_coach.tools import find_ffmpeg

    fetched: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            fetched.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    local = tmp_path / "secret.wav"
    local.write_bytes(b"RIFF")
    playlists = {
        "hls": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{url}/seg.ts\n#EXTINF:10,\nfile://{local}\n"
        "#EXT-X-ENDLIST\n",
        "dash": '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" '
        'mediaPresentationDuration="PT2S" minBufferTime="PT1S"><Period><AdaptationSet mimeType="audio/mp4">'
        f'<Representation id="a" bandwidth="64000" codecs="mp4a.40.2"><BaseURL>{url}/dash.mp4</BaseURL>'
        "</Representation></AdaptationSet></Period></MPD>\n",
        "concat": f"ffconcat version 1.0\nfile {url}/part.wav\nfile {local}\n",
        "sdp": "v=0\no=- 0 0 IN IP4 127.0.0.1\ns=x\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio 9 RTP/AVP 0\n",
    }
    ffmpeg = find_ffmpeg(Settings(_env_file=None)).executable  # type: ignore[call-arg]
    try:
        for name, text in playlists.items():
            with pytest.raises(AudioError) as info:
                decode(text.encode(), ffmpeg, max_duration_s=60)
            assert info.value.reason == "audio.undecodable", name
            # Refused before a playlist demuxer tried to open what the playlist names (ffmpeg's nested-open checks
            # would catch some of that later; older ffmpeg builds have fewer of them).
            nested = re.search(r"Protocol '|fragment|Unsafe file name|Impossible to open", str(info.value))
            assert nested is None, (name, str(info.value))
    finally:
        server.shutdown()
    assert fetched == []
