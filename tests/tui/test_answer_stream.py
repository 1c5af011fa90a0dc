"""From a generation handle to the screen's messages, without a terminal (tui/answer_stream.py)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

from codeup_tui.tui.answer_stream import FLUSH_SECONDS, final_state, relay_answer
from codeup_tui.tui.messages import GenerationFinished, GenerationProgress


@dataclass
class Timings:
    generated_tokens: int = 0
    generation_tokens_per_second: float = 0.0
    acceptance: float | None = None


class ScriptedHandle:
    """Hands out ``pieces`` (None: nothing new within the timeout), then ends with ``reason``."""

    def __init__(self, pieces: list[str | None], reason: str = "eos", error: Exception | None = None) -> None:
        self.pieces = list(pieces)
        self.result = SimpleNamespace(text="".join(p for p in pieces if p), stop_reason=SimpleNamespace(value=reason),
                                      error=error)

    def next_piece(self, timeout: float) -> str | None:
        if not self.pieces:
            return None  # the end
        piece = self.pieces.pop(0)
        return "" if piece is None else piece

    def timings(self) -> Timings:
        return Timings(generated_tokens=len(self.result.text))


class Clock:
    """Each reading is ``step`` seconds after the last."""

    def __init__(self, step: float) -> None:
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_pieces_are_coalesced_and_the_whole_text_arrives():
    posted: list = []
    handle = ScriptedHandle(["def", " f", "(x", "):", "\n", "    ", "return", " x"])
    relay_answer(handle, 7, posted.append, clock=Clock(FLUSH_SECONDS / 3))  # three pieces per flush
    progress = [m for m in posted if isinstance(m, GenerationProgress)]
    assert 2 <= len(progress) <= 4  # not one message per token
    assert "".join(m.text for m in progress) == "def f(x):\n    return x"
    finished = posted[-1]
    assert isinstance(finished, GenerationFinished) and finished.exchange_id == 7
    assert (finished.text, finished.stop_reason, finished.error) == ("def f(x):\n    return x", "eos", None)


def test_timings_are_posted_while_the_prompt_is_processed():
    posted: list = []
    relay_answer(ScriptedHandle([None] * 20 + ["ok"]), 1, posted.append, clock=Clock(0.1))
    waiting = [m for m in posted if isinstance(m, GenerationProgress) and not m.text]
    assert len(waiting) >= 5  # the status line shows progress with no text yet
    assert "".join(m.text for m in posted if isinstance(m, GenerationProgress)) == "ok"


def test_an_engine_error_ends_the_stream_with_its_reason():
    posted: list = []
    relay_answer(ScriptedHandle(["par"], "error", ValueError("the model broke")), 3, posted.append)
    finished = posted[-1]
    assert finished.stop_reason == "error" and "the model broke" in finished.error
    assert final_state(finished) == ("error", f"error: {finished.error}")


def test_the_final_line_says_why_it_ended_and_how_fast():
    done = GenerationFinished(1, "x", "eos", None, Timings(212, 31.04, 0.64))
    assert final_state(done) == ("done", "done · 212 tokens · 31.0 t/s · draft 64%")
    one = GenerationFinished(1, "x", "limit", None, Timings(1, 0.0))
    assert final_state(one) == ("done", "stopped at the token limit · 1 token")
    assert final_state(GenerationFinished(1, "", "cancelled", None, None)) == ("stopped", "stopped")
