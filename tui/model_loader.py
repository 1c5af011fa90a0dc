"""Resolve and open the model the app works with.

Plain Python, no Textual: the app calls :func:`open_model` from a worker thread and turns
the progress reports into messages. The engine is reached only through
``engine.default_model`` and ``engine.formats``, imported lazily so the screen is up before
the engine's imports run. Every engine call can be replaced (tests inject fakes so they
never download anything).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

Stage = Literal["downloading", "loading"]
"""What a progress report is about: fetching the default model, or opening a file."""

ProgressCallback = Callable[[Stage, str], None]
"""Receives (stage, one-line text). It may raise to abandon the load (see LoadCancelled)."""


class HParams(Protocol):
    @property
    def n_ctx_train(self) -> int: ...


class ModelFileLike(Protocol):
    """The part of ``engine.formats.ModelFile`` the TUI reads."""

    @property
    def path(self) -> Path: ...
    @property
    def format_name(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def file_type_name(self) -> str: ...
    @property
    def hparams(self) -> HParams | None: ...

    def close(self) -> None: ...


class LoadCancelled(Exception):
    """Raised from a progress callback to abandon a load (the app is quitting)."""


def _engine_open_model_file(path: Path) -> ModelFileLike:
    from engine.formats import open_model_file

    return open_model_file(path)


def _engine_ensure_default_model(
    progress: Callable[[str], None] | None = None, cancel: threading.Event | None = None
) -> Path:
    from engine.default_model import ensure_default_model

    return ensure_default_model(progress=progress, cancel=cancel)


def _engine_cached_default_model() -> Path | None:
    from engine.default_model import cached_default_model

    return cached_default_model()


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from.

    ``path`` is the ``--model`` argument; ``None`` means the default model, which
    ``ensure_default_model`` provides (downloading it the first time). The three callables
    default to the engine's functions.
    """

    path: Path | None = None
    open_model_file: Callable[[Path], ModelFileLike] = field(default=_engine_open_model_file)
    ensure_default_model: Callable[..., Path] = field(default=_engine_ensure_default_model)
    cached_default_model: Callable[[], Path | None] = field(default=_engine_cached_default_model)


@dataclass(frozen=True)
class ModelSummary:
    """What the UI shows about an opened model file."""

    name: str
    file_type: str
    n_ctx: int
    format_name: str
    architecture: str
    path: Path
    notes: tuple[str, ...] = ()
    """Facts the engine wants a user to know (for example values it had to assume)."""

    @classmethod
    def from_model_file(cls, model: ModelFileLike) -> ModelSummary:
        return cls(
            name=str(model.name),
            file_type=str(model.file_type_name),
            n_ctx=int(getattr(model.hparams, "n_ctx_train", 0) or 0),
            format_name=str(model.format_name),
            architecture=str(model.architecture),
            path=Path(model.path),
            notes=tuple(one_line(str(note)) for note in getattr(model, "notes", ()) or ()),
        )

    @property
    def context_text(self) -> str:
        """Context length for display ("?" when the file does not record one)."""
        return f"{self.n_ctx}" if self.n_ctx > 0 else "?"

    def status_line(self) -> str:
        return " · ".join([self.name, self.file_type, f"ctx {self.context_text}", self.format_name])


ModelState = Literal["starting", "downloading", "loading", "ready", "error"]


@dataclass(frozen=True)
class ModelStatus:
    """The model's state as the UI shows it: one line of text plus the summary when ready."""

    state: ModelState
    text: str
    summary: ModelSummary | None = None
    error: str | None = None

    @classmethod
    def starting(cls) -> ModelStatus:
        return cls("starting", "loading…")

    @classmethod
    def progress(cls, stage: Stage, text: str) -> ModelStatus:
        return cls(stage, text)

    @classmethod
    def ready(cls, summary: ModelSummary) -> ModelStatus:
        return cls("ready", summary.status_line(), summary)

    @classmethod
    def failed(cls, error: str) -> ModelStatus:
        return cls("error", f"model error: {error}", error=error)

    @property
    def busy(self) -> bool:
        return self.state in ("starting", "downloading", "loading")


def one_line(text: str) -> str:
    """Collapse whitespace (newlines included) so a message fits a status line."""
    return " ".join(text.split())


def describe_error(exc: BaseException) -> str:
    """One line for the status bar.

    Engine errors (``CodeupError``) already read well on their own; anything else is
    unexpected, so its type is kept to make the report useful.
    """
    try:
        from engine.errors import CodeupError
    except ImportError:  # the engine itself is broken: still say what happened
        CodeupError = ()  # type: ignore[assignment,misc]
    text = one_line(str(exc))
    if isinstance(exc, CodeupError) and text:
        return text
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def open_model(
    source: ModelSource, progress: ProgressCallback, cancel: threading.Event | None = None
) -> ModelFileLike:
    """Resolve the model file and open it; blocking, so call it from a worker thread.

    Reports "downloading" before fetching the default model (only when it is not cached
    yet) and "loading" before opening the file. Engine errors propagate to the caller.
    Setting ``cancel`` stops a download of the default model (the app is quitting).
    """
    path = source.path
    if path is None:
        if source.cached_default_model() is None:
            progress("downloading", "downloading default model…")

        def report_download(line: str) -> None:
            progress("downloading", one_line(line))

        path = source.ensure_default_model(progress=report_download, cancel=cancel)
    path = Path(path)
    progress("loading", f"loading {path.name}…")
    return source.open_model_file(path)
