"""The generation backend the TUI talks to: a small interface, and the local implementation
over ``engine.load_model`` + ``engine.generate.Generator``.

Plain Python, no Textual. The remote backend (an OpenAI-compatible server,
tui/remote_backend.py) and the fake one the tests use (tests/tui_fakes.py) only provide
:class:`Backend`. Every method
except ``load`` is quick; ``load`` and the handle's ``next_piece`` block, so the app calls
them from thread workers.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Protocol

from tui.model_loader import (
    ModelLike,
    ModelSource,
    ModelSummary,
    ProgressCallback,
    open_model,
)


class TimingsLike(Protocol):
    """Live numbers of a generation (``engine.generate.Timings``)."""

    prompt_tokens: int
    prompt_evaluated: int
    prompt_seconds: float
    generated_tokens: int
    generation_seconds: float

    @property
    def prompt_tokens_per_second(self) -> float: ...
    @property
    def generation_tokens_per_second(self) -> float: ...


class ResultLike(Protocol):
    text: str
    stop_reason: Any  # engine.generate.StopReason, a str enum: compare with its value
    error: BaseException | None


class GenerationHandleLike(Protocol):
    """A running generation (``engine.generate.GenerationHandle``); thread-safe."""

    result: ResultLike

    def next_piece(self, timeout: float | None = None) -> str | None:
        """Text; "" when nothing came within ``timeout``; None once finished."""

    def cancel(self) -> None: ...

    def timings(self) -> TimingsLike: ...

    @property
    def done(self) -> bool: ...


class Backend(Protocol):
    """What the TUI needs from a model, local or remote."""

    def load(self, progress: ProgressCallback, cancel: threading.Event) -> ModelSummary:
        """Make the model ready (blocking); engine errors propagate."""

    @property
    def n_ctx(self) -> int:
        """The context size, in tokens (0 before ``load``)."""

    def count_tokens(self, text: str, *, add_bos: bool | None = False, parse_special: bool = False) -> int:
        """Tokens ``text`` takes with the model's tokenizer (``add_bos`` None: the model's default)."""

    def start(
        self,
        prompt: str,
        *,
        params: Any = None,
        max_tokens: int = -1,
        stop: Sequence[str] = (),
        add_bos: bool | None = None,
        parse_special: bool = False,
        draft: Any = None,
    ) -> GenerationHandleLike:
        """Start generating in the background; raises (one-line ``CodeupError``) on a bad prompt.
        ``draft``: speculative decoding's settings (``engine.speculative.DraftParams``)."""

    def close(self) -> None:
        """Release the model (safe to call more than once, and before ``load``)."""


class LocalBackend:
    """The model in this process: ``engine.load_model`` and a ``Generator`` (prompt cache)."""

    def __init__(self, source: ModelSource | None = None) -> None:
        self.source = source or ModelSource()
        self.model: ModelLike | None = None
        self._generator: Any = None
        self._lock = threading.Lock()

    def load(self, progress: ProgressCallback, cancel: threading.Event) -> ModelSummary:
        model = open_model(self.source, progress, cancel)
        try:
            if hasattr(model, "eval"):  # an engine model: a first run compiles its kernels here, visibly
                from engine.kernel_cache import warm_up

                warm_up(model, lambda text: progress("loading", text))
            summary = ModelSummary.from_model(model, threads=self._threads())
        except BaseException:
            model.close()
            raise
        with self._lock:
            old, self.model, self._generator = self.model, model, None
        if old is not None:
            old.close()
        return summary

    def _threads(self) -> int:
        if self.source.n_threads:
            return self.source.n_threads
        try:
            import numba

            return int(numba.get_num_threads())
        except Exception:  # numba missing or broken: the count is only shown
            return 0

    @property
    def n_ctx(self) -> int:
        model = self.model
        return int(model.info.n_ctx) if model is not None else 0

    def _model(self) -> ModelLike:
        model = self.model
        if model is None:
            from engine.errors import UsageError

            raise UsageError("the model is not loaded yet")
        return model

    def count_tokens(self, text: str, *, add_bos: bool | None = False, parse_special: bool = False) -> int:
        tokenizer = self._model().tokenizer
        bos = tokenizer.add_bos if add_bos is None else add_bos
        return len(tokenizer.encode(text, add_bos=bos, parse_special=parse_special))

    def start(
        self,
        prompt: str,
        *,
        params: Any = None,
        max_tokens: int = -1,
        stop: Sequence[str] = (),
        add_bos: bool | None = None,
        parse_special: bool = False,
        draft: Any = None,
    ) -> GenerationHandleLike:
        model = self._model()
        with self._lock:
            if self._generator is None:
                from engine.generate import Generator

                self._generator = Generator(model)
            generator = self._generator
        return generator.start(
            prompt, params, max_tokens=max_tokens, stop=stop, add_bos=add_bos, parse_special=parse_special,
            draft=draft,
        )

    def close(self) -> None:
        with self._lock:
            model, self.model, self._generator = self.model, None, None
        if model is not None:
            model.close()
