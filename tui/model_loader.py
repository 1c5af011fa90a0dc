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
from typing import Any, Literal, Protocol

Stage = Literal["downloading", "loading"]
"""What a progress report is about: fetching the default model, or opening a file."""

ProgressCallback = Callable[[Stage, str], None]
"""Receives (stage, one-line text). It may raise to abandon the load (see LoadCancelled)."""


class ModelInfoLike(Protocol):
    """The part of ``engine.model.ModelInfo`` the TUI reads."""

    @property
    def path(self) -> Path: ...
    @property
    def name(self) -> str: ...
    @property
    def format_name(self) -> str: ...
    @property
    def architecture(self) -> str: ...
    @property
    def file_type(self) -> str: ...
    @property
    def n_ctx(self) -> int: ...


class TokenizerLike(Protocol):
    add_bos: bool

    def encode(self, text: str, add_bos: bool = False, parse_special: bool = False) -> list[int]: ...


class ModelLike(Protocol):
    """The part of a loaded ``engine.model.Model`` the TUI uses."""

    @property
    def info(self) -> ModelInfoLike: ...
    @property
    def tokenizer(self) -> TokenizerLike: ...

    def close(self) -> None: ...


class LoadCancelled(Exception):
    """Raised from a progress callback to abandon a load (the app is quitting)."""


def _engine_load_model(path: Path, n_ctx: int | None = None, n_threads: int | None = None, lora=None) -> ModelLike:
    from codeup_tui.engine import load_model

    return load_model(path, n_ctx=n_ctx, n_threads=n_threads, lora=lora)


def _engine_ensure_default_model(
    progress: Callable[[str], None] | None = None, cancel: threading.Event | None = None
) -> Path:
    from codeup_tui.engine.default_model import ensure_default_model

    return ensure_default_model(progress=progress, cancel=cancel)


def _engine_cached_default_model() -> Path | None:
    from codeup_tui.engine.default_model import cached_default_model

    return cached_default_model()


@dataclass(frozen=True)
class ModelSource:
    """Where the model comes from.

    ``path`` is the ``--model`` argument; ``None`` means the default model, which
    ``ensure_default_model`` provides (downloading it the first time). The three callables
    default to the engine's functions; ``n_ctx`` and ``n_threads`` go to ``load_model``.
    """

    path: Path | None = None
    load_model: Callable[..., ModelLike] = field(default=_engine_load_model)
    """``load_model(path, n_ctx=None, n_threads=None)``: the weights ready to evaluate."""
    n_ctx: int | None = None
    n_threads: int | None = None
    lora: tuple = ()
    """LoRA adapters ((file, scale), ...) given to ``load_model`` as ``lora=`` when any."""
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
    threads: int = 0
    """CPU threads the engine computes with (0: not known)."""
    location: str = ""
    """Where the model runs when not in this process ("remote: host:port"); "" here."""
    estimated_counts: bool = False
    """Token counts are estimates (a server that cannot tokenize): the UI labels them."""
    chat_template: Any = field(default=None, compare=False, repr=False)
    """The file's own chat template (``engine.chat_template.ChatTemplate``); None: it has none."""

    @classmethod
    def from_model(cls, model: ModelLike, threads: int = 0) -> ModelSummary:
        info = model.info
        notes = getattr(getattr(model, "file", None), "notes", ()) or ()
        chat_template = None
        if getattr(getattr(model, "file", None), "hparams", None) is not None:
            from codeup_tui.engine.memory import estimate, memory_warning

            warning = memory_warning(estimate(model.file, int(info.n_ctx)))  # type: ignore[attr-defined]
            if warning:
                notes = (*notes, warning)
        if getattr(getattr(model, "file", None), "metadata", None):
            from codeup_tui.engine.chat_template import model_chat_template
            from codeup_tui.engine.errors import CodeupError

            try:
                chat_template = model_chat_template(model.file)  # type: ignore[attr-defined]
            except CodeupError as exc:  # a template jinja cannot read: say so, prompt in alpaca
                notes = (*notes, f"{exc}; using alpaca")
        return cls(
            name=str(info.name),
            file_type=str(info.file_type),
            n_ctx=int(info.n_ctx or 0),
            format_name=str(info.format_name),
            architecture=str(info.architecture),
            path=Path(info.path),
            notes=tuple(one_line(str(note)) for note in notes),
            threads=threads,
            chat_template=chat_template,
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
        from codeup_tui.engine.errors import CodeupError
    except ImportError:  # the engine itself is broken: still say what happened
        CodeupError = ()  # type: ignore[assignment,misc]
    text = one_line(str(exc))
    if isinstance(exc, CodeupError) and text:
        return text
    name = type(exc).__name__
    return f"{name}: {text}" if text else name


def open_model(
    source: ModelSource, progress: ProgressCallback, cancel: threading.Event | None = None
) -> ModelLike:
    """Resolve the model file and load it; blocking, so call it from a worker thread.

    Reports "downloading" before fetching the default model (only when it is not cached
    yet) and "loading" before loading the file. Engine errors propagate to the caller.
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
    if source.lora:
        return source.load_model(path, n_ctx=source.n_ctx, n_threads=source.n_threads, lora=list(source.lora))
    return source.load_model(path, n_ctx=source.n_ctx, n_threads=source.n_threads)
