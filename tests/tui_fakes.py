"""A fake generation backend for the TUI's Pilot tests: deterministic, no model.

``FakeBackend`` implements ``tui.backend.Backend``. Token counts are one per 4 characters
(rounded up); answers come from a script, one piece at a time, with controllable delays, from
a real background thread (like the engine's), and honour ``cancel()`` within one piece, also
during a simulated prompt phase.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.generate import Timings
from tui.model_loader import ModelSummary

_END = object()


# The engine's own timings record (plain data; importing it loads no model).
FakeTimings = Timings


@dataclass
class FakeResult:
    text: str = ""
    stop_reason: str | None = None
    error: BaseException | None = None


class FakeHandle:
    def __init__(self, pieces: Sequence[str], prompt_tokens: int, piece_delay: float, prompt_delay: float,
                 stop_reason: str = "eos", error: BaseException | None = None) -> None:
        self.result = FakeResult()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._ended = False
        self._timings = FakeTimings(prompt_tokens=prompt_tokens)
        self._lock = threading.Lock()
        self.thread = threading.Thread(
            target=self._run, args=(list(pieces), piece_delay, prompt_delay, stop_reason, error), daemon=True
        )
        self.thread.start()

    def _run(self, pieces, piece_delay, prompt_delay, stop_reason, error) -> None:
        start = time.perf_counter()
        # The prompt phase: checks for cancel every 10 ms, like the engine between chunks.
        while time.perf_counter() - start < prompt_delay:
            if self._cancel.wait(0.01):
                return self._finish("cancelled")
        with self._lock:
            self._timings = FakeTimings(self._timings.prompt_tokens, self._timings.prompt_tokens, 0.5)
        gen_start = time.perf_counter()
        for n, piece in enumerate(pieces, 1):
            if self._cancel.is_set():
                return self._finish("cancelled")
            if piece_delay:
                self._cancel.wait(piece_delay)
                if self._cancel.is_set():
                    return self._finish("cancelled")
            self.result.text += piece
            self._queue.put(piece)
            with self._lock:
                self._timings = FakeTimings(self._timings.prompt_tokens, self._timings.prompt_tokens, 0.5, n,
                                            max(time.perf_counter() - gen_start, 1e-3))
        self._finish(stop_reason, error)

    def _finish(self, reason: str, error: BaseException | None = None) -> None:
        self.result.stop_reason = reason
        self.result.error = error
        self._done.set()
        self._queue.put(_END)

    def next_piece(self, timeout: float | None = None) -> str | None:
        if self._ended:
            return None
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return ""
        if item is _END:
            self._ended = True
            return None
        return item

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def timings(self) -> FakeTimings:
        with self._lock:
            return self._timings


@dataclass
class FakeBackend:
    """Scripted answers; records every prompt it was started with."""

    answers: list[Sequence[str]] = field(default_factory=lambda: [["Hello", " from", " the", " fake", "."]])
    piece_delay: float = 0.0
    prompt_delay: float = 0.0
    n_ctx_value: int = 2048
    load_gate: threading.Event | None = None  # load waits for it when given
    load_error: Exception | None = None
    prompts: list[str] = field(default_factory=list)
    handles: list[FakeHandle] = field(default_factory=list)
    loaded: bool = False
    closed: bool = False
    chat_template: Any = None  # the model file's own chat template (engine.chat_template.ChatTemplate)
    stops: list[tuple[str, ...]] = field(default_factory=list)
    drafts: list[Any] = field(default_factory=list)  # the draft settings each start got

    def load(self, progress, cancel) -> ModelSummary:
        progress("loading", "loading fake-model.Q4_1.gguf…")
        if self.load_gate is not None:
            while not self.load_gate.wait(0.02):
                if cancel.is_set():
                    raise RuntimeError("cancelled")
        if self.load_error is not None:
            raise self.load_error
        self.loaded = True
        return ModelSummary(
            name="fake-model", file_type="Q4_1", n_ctx=self.n_ctx_value, format_name="GGUF v3",
            architecture="llama", path=Path("/models/fake-model.Q4_1.gguf"), threads=4,
            chat_template=self.chat_template,
        )

    @property
    def n_ctx(self) -> int:
        return self.n_ctx_value if self.loaded else 0

    def count_tokens(self, text: str, *, add_bos: bool | None = False, parse_special: bool = False) -> int:
        return (len(text) + 3) // 4 + (1 if add_bos else 0)

    def start(self, prompt: str, *, params=None, max_tokens: int = -1, stop=(), add_bos=None,
              parse_special: bool = False, draft=None) -> FakeHandle:
        self.prompts.append(prompt)
        self.drafts.append(draft)
        self.stops.append(tuple(stop))
        script = self.answers[min(len(self.prompts) - 1, len(self.answers) - 1)]
        handle = FakeHandle(script, self.count_tokens(prompt), self.piece_delay, self.prompt_delay)
        self.handles.append(handle)
        return handle

    def close(self) -> None:
        self.closed = True
