"""How the TUI gets a model: :class:`Backend` loads it and hands over the engine's
generation interface (``engine.generation.TextGenerator``), which the screen uses directly;
:class:`LocalBackend` loads a model file here (``engine.load_model``) and hands over its
``engine.generate.Generator``.

Plain Python, no Textual. The remote backend (an OpenAI-compatible server,
tui/remote_backend.py) and the fake one the tests use (tests/helpers/tui_fakes.py) provide the same.
``load``, the generator's token counts and the handle's ``next_piece`` block, so the app
calls them from thread workers.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from codeup_tui.engine.generation import TextGenerator
from .model_loader import (
    ModelLike,
    ModelSource,
    ModelSummary,
    ProgressCallback,
    open_model,
)


class Backend(Protocol):
    """What the app needs to get a model, local or remote: ``load`` makes it ready and
    ``generator`` then generates with it (``engine.generation.TextGenerator``: token counts,
    the context size, ``start(prompt, ...) -> GenerationHandle``)."""

    def load(self, progress: ProgressCallback, cancel: threading.Event) -> ModelSummary:
        """Make the model ready (blocking); engine errors propagate."""

    @property
    def generator(self) -> TextGenerator | None:
        """The model's generation interface; None before ``load`` (and after ``close``)."""

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
                from codeup_tui.engine.kernel_cache import warm_up

                warm_up(model, lambda text: progress("loading", text))
            summary = ModelSummary.from_model(model, threads=self._threads())
            from codeup_tui.engine.generate import Generator

            generator = Generator(model)  # type: ignore[arg-type]
        except BaseException:
            model.close()
            raise
        with self._lock:
            old, self.model, self._generator = self.model, model, generator
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
    def generator(self) -> TextGenerator | None:
        return self._generator

    def close(self) -> None:
        with self._lock:
            model, self.model, self._generator = self.model, None, None
        if model is not None:
            model.close()
