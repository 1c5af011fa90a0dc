"""A fake generation backend for the TUI's Pilot tests: deterministic, no model.

``FakeBackend`` is both a ``tui.backend.Backend`` and the generator it hands over, an
``engine.generation.TextGenerator`` (``start`` has the interface's signature: a change to
the interface shows here; tests/engine/test_generation_interface.py checks it). Token counts are
one per 4 characters (rounded up); answers come from a script, one piece at a time, with
controllable delays, from a real background thread feeding the engine's own
``GenerationHandle``, and honour ``cancel()`` within one piece, also during a simulated
prompt phase.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from codeup_tui.engine.generation import GenerationHandle, Prompt, PromptTokens, StopReason, Timings
from codeup_tui.tui.model_loader import ModelSummary

# The engine's own timings record (plain data; importing it loads no model).
FakeTimings = Timings


class FakeHandle(GenerationHandle):
    """The engine's handle, fed by a scripted worker instead of a model."""

    def __init__(self, pieces: Sequence[str], prompt_tokens: int, piece_delay: float, prompt_delay: float,
                 stop_reason: str = "eos", error: BaseException | None = None,
                 on_piece: Callable[[str], None] | None = None,
                 midway_gate: threading.Event | None = None) -> None:
        super().__init__(on_piece)
        self.midway_gate = midway_gate
        self._set_timings(prompt_tokens=prompt_tokens)
        self.thread = threading.Thread(
            target=self._run, args=(list(pieces), piece_delay, prompt_delay, StopReason(stop_reason), error),
            daemon=True,
        )
        self.thread.start()

    def _run(self, pieces, piece_delay, prompt_delay, stop_reason, error) -> None:
        start = time.perf_counter()
        # The prompt phase: checks for cancel every 10 ms, like the engine between chunks.
        while time.perf_counter() - start < prompt_delay:
            if self._cancel.wait(0.01):
                return self._finish(StopReason.CANCELLED)
        self._set_timings(prompt_evaluated=self.timings().prompt_tokens, prompt_seconds=0.5)
        gen_start = time.perf_counter()
        for n, piece in enumerate(pieces, 1):
            if self._cancel.is_set():
                return self._finish(StopReason.CANCELLED)
            if piece_delay:
                self._cancel.wait(piece_delay)
                if self._cancel.is_set():
                    return self._finish(StopReason.CANCELLED)
            self._emit(piece)
            self._set_timings(generated_tokens=n, generation_seconds=max(time.perf_counter() - gen_start, 1e-3))
            if self.midway_gate is not None and n == len(pieces) // 2:
                # the test sees a half-streamed answer for as long as it needs, however slow the machine
                while not self.midway_gate.wait(0.02):
                    if self._cancel.is_set():
                        return self._finish(StopReason.CANCELLED)
        self._finish(stop_reason, error)


@dataclass
class FakeBackend:
    """Scripted answers; records every prompt it was started with."""

    answers: list[Sequence[str]] = field(default_factory=lambda: [["Hello", " from", " the", " fake", "."]])
    piece_delay: float = 0.0
    prompt_delay: float = 0.0
    n_ctx_value: int = 2048
    load_gate: threading.Event | None = None  # load waits for it when given
    midway_gate: threading.Event | None = None  # each answer stops halfway until it is set
    load_error: Exception | None = None
    prompts: list[str] = field(default_factory=list)
    handles: list[FakeHandle] = field(default_factory=list)
    loaded: bool = False
    closed: bool = False
    chat_template: Any = None  # the model file's own chat template (engine.chat_template.ChatTemplate)
    stops: list[tuple[str, ...]] = field(default_factory=list)
    drafts: list[Any] = field(default_factory=list)  # the draft settings each start got
    tokenized: list[str] = field(default_factory=list)  # every text tokenize_prompt was given
    started_with: list[Any] = field(default_factory=list)  # the prompt each start got, as given

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
    def generator(self) -> "FakeBackend | None":
        return self if self.loaded else None

    # ---- engine.generation.TextGenerator ----------------------------------------------------
    @property
    def n_ctx(self) -> int:
        return self.n_ctx_value if self.loaded else 0

    def tokenize_prompt(self, text: str, *, add_bos: bool | None = None, parse_special: bool = False) -> PromptTokens:
        self.tokenized.append(text)
        return PromptTokens.of_ids(text, range((len(text) + 3) // 4 + (1 if add_bos else 0)))

    def count_tokens(self, text: str, *, add_bos: bool | None = False, parse_special: bool = False) -> int:
        return len(self.tokenize_prompt(text, add_bos=add_bos, parse_special=parse_special))

    def start(
        self,
        prompt: Prompt,
        params: Any = None,
        *,
        max_tokens: int = -1,
        stop: Sequence[str] = (),
        add_bos: bool | None = None,
        parse_special: bool = False,
        keep: int | None = None,
        on_piece: Callable[[str], None] | None = None,
        draft: Any = None,
        messages: Sequence[dict] | None = None,
    ) -> FakeHandle:
        if isinstance(prompt, PromptTokens):
            text, n_tokens = prompt.text, len(prompt)
        elif isinstance(prompt, str):
            text, n_tokens = prompt, self.count_tokens(prompt, add_bos=add_bos)
        else:
            raise TypeError("the fake is given text or a tokenized prompt")
        self.prompts.append(text)
        self.drafts.append(draft)
        self.stops.append(tuple(stop))
        self.started_with.append(prompt)
        script = self.answers[min(len(self.prompts) - 1, len(self.answers) - 1)]
        handle = FakeHandle(script, n_tokens, self.piece_delay, self.prompt_delay, on_piece=on_piece,
                            midway_gate=self.midway_gate)
        self.handles.append(handle)
        return handle

    def close(self) -> None:
        self.closed = True
