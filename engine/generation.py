"""The one generation interface: what `codeup run`, the TUI and the tests need of a model,
whether it runs here (`engine.generate.Generator`) or on a server (`engine.remote.RemoteClient`).

    generator: TextGenerator = Generator(model)      # or RemoteClient(url) after probe()
    prompt = generator.tokenize_prompt(text, add_bos=True, parse_special=True)
    if len(prompt) + reserve <= generator.n_ctx:      # the budget is measured on these ids...
        handle = generator.start(prompt, params, max_tokens=200, stop=["###"])  # ...and they are sent
        for piece in handle: ...

A prompt is tokenized once: `tokenize_prompt` returns a `PromptTokens`, and `start` given one
uses its ids as they are (the local engine does not tokenize again; a remote one asks the
server's `/tokenize` no second time). `start` also takes plain text or a list of ids.

The handle (`GenerationHandle`, its `Timings` and `GenerationResult`, `StopReason`) and the
stop-string filter live here too: the local engine's worker and the remote client's stream
feed the same handle. Importing this module loads no model code (no numpy, no numba), so the
TUI and the test fakes can name the interface without paying for the engine.
"""

from __future__ import annotations

import enum
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol, Union, runtime_checkable

if TYPE_CHECKING:
    from .sampling import Sampler, SamplingParams
    from .speculative import DraftParams


class StopReason(str, enum.Enum):
    EOS = "eos"  # the model ended its answer
    STOP_STRING = "stop"  # a stop string appeared (it is not part of the text)
    LIMIT = "limit"  # max_tokens reached
    CONTEXT_FULL = "context"  # no room left and no context shift asked for
    CANCELLED = "cancelled"
    ERROR = "error"


@dataclass(frozen=True)
class Timings:
    prompt_tokens: int = 0  # tokens in the prompt
    prompt_evaluated: int = 0  # of which evaluated now (the rest came from the prompt cache)
    prompt_seconds: float = 0.0
    generated_tokens: int = 0
    generation_seconds: float = 0.0
    drafted_tokens: int = 0  # tokens guessed by speculative drafting and verified
    accepted_tokens: int = 0  # of which the model agreed with (each one saved a forward pass)

    @property
    def prompt_tokens_per_second(self) -> float:
        return self.prompt_evaluated / self.prompt_seconds if self.prompt_seconds > 0 else 0.0

    @property
    def generation_tokens_per_second(self) -> float:
        return self.generated_tokens / self.generation_seconds if self.generation_seconds > 0 else 0.0

    @property
    def acceptance(self) -> float | None:
        """The share of drafted tokens that were accepted; None when nothing was drafted."""
        return self.accepted_tokens / self.drafted_tokens if self.drafted_tokens else None

    def summary(self) -> str:
        cached = self.prompt_tokens - self.prompt_evaluated
        reuse = f" ({cached} reused from the cache)" if cached else ""
        drafts = (
            f"; drafts: {self.accepted_tokens} of {self.drafted_tokens} accepted ({100 * self.acceptance:.0f}%)"
            if self.drafted_tokens else ""
        )
        return (
            f"prompt: {self.prompt_evaluated} tokens{reuse} in {self.prompt_seconds:.2f} s "
            f"({self.prompt_tokens_per_second:.1f} tok/s); generation: {self.generated_tokens} tokens "
            f"in {self.generation_seconds:.2f} s ({self.generation_tokens_per_second:.1f} tok/s){drafts}"
        )


@dataclass
class GenerationResult:
    text: str = ""  # everything streamed, stop string excluded
    tokens: list[int] = field(default_factory=list)  # generated tokens
    stop_reason: StopReason | None = None
    timings: Timings = field(default_factory=Timings)
    error: BaseException | None = None


_END = object()


class StopStringFilter:
    """Holds back text that could be the start of a stop string, so a stop string split
    across tokens is caught and never shown."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.held = ""

    def feed(self, text: str) -> tuple[str, bool]:
        """Text safe to show now, and whether a stop string was found."""
        buf = self.held + text
        hits = [i for i in (buf.find(s) for s in self.stops) if i >= 0]
        if hits:
            self.held = ""
            return buf[: min(hits)], True
        keep = 0
        for s in self.stops:  # the longest tail of buf that begins some stop string
            for n in range(min(len(s) - 1, len(buf)), keep, -1):
                if buf.endswith(s[:n]):
                    keep = n
                    break
        self.held = buf[len(buf) - keep :] if keep else ""
        return buf[: len(buf) - keep], False

    def flush(self) -> str:
        held, self.held = self.held, ""
        return held


class GenerationHandle:
    """A running (or finished) generation. Iterate for text pieces; all methods thread-safe."""

    def __init__(self, on_piece: Callable[[str], None] | None) -> None:
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._timings = Timings()
        self._on_piece = on_piece
        self.result = GenerationResult()
        self.thread: threading.Thread | None = None
        self.sampler: "Sampler | None" = None  # the local engine's (its `logprobs`, when asked for)
        self._ended = False

    # ---- for the consumer -----------------------------------------------------------------
    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def timings(self) -> Timings:
        """The timings so far (live while running, final when done)."""
        with self._lock:
            return self._timings

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def next_piece(self, timeout: float | None = None) -> str | None:
        """The next piece of text; "" if none came within `timeout`; None once finished.
        Safe to call again after an interrupted call (nothing is lost)."""
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

    def __iter__(self):
        while (piece := self.next_piece()) is not None:
            yield piece
        if self.result.error is not None:
            raise self.result.error

    def text(self) -> str:
        """Wait for the end and return the whole text."""
        for _ in self:
            pass
        return self.result.text

    # ---- for the worker ----------------------------------------------------------------------
    def _emit(self, text: str) -> None:
        if text:
            self.result.text += text
            self._queue.put(text)
            if self._on_piece is not None:
                self._on_piece(text)

    def _set_timings(self, **changes) -> None:
        with self._lock:
            self._timings = replace(self._timings, **changes)

    def _finish(self, reason: StopReason, error: BaseException | None = None) -> None:
        self.result.stop_reason = reason
        self.result.error = error
        self.result.timings = self.timings()
        self._done.set()
        self._queue.put(_END)


@dataclass(frozen=True)
class PromptTokens:
    """A prompt tokenized once: its text and its token ids, or, from a server that cannot
    tokenize, an estimated count (`ids` None, `estimated` True). `len()` is its length in tokens."""

    text: str
    ids: tuple[int, ...] | None
    count: int
    estimated: bool = False

    @classmethod
    def of_ids(cls, text: str, ids: Sequence[int]) -> "PromptTokens":
        ids = tuple(int(t) for t in ids)
        return cls(text, ids, len(ids))

    def __len__(self) -> int:
        return self.count


Prompt = Union[str, Sequence[int], PromptTokens]
"""What `start` takes: text (tokenized there), token ids, or a prompt tokenized before."""


@runtime_checkable
class TextGenerator(Protocol):
    """A model to generate with, here or on a server. `start` checks the prompt on the
    caller's thread (a bad one raises a one-line `CodeupError`) and generates in the
    background; the handle streams the pieces (`next_piece`, iteration), `cancel()`s and
    reports `timings()` and `result`."""

    @property
    def n_ctx(self) -> int:
        """The context size in tokens (a server's: once probed)."""
        ...

    def tokenize_prompt(self, text: str, *, add_bos: bool | None = None,
                        parse_special: bool = False) -> PromptTokens:
        """`text` tokenized as `start` would (`add_bos` None: the model's default); its
        `len()` counts it. Call it off the UI thread: a server is asked over the network."""
        ...

    def start(
        self,
        prompt: Prompt,
        params: "SamplingParams | None" = None,
        *,
        max_tokens: int = -1,
        stop: Sequence[str] = (),
        add_bos: bool | None = None,
        parse_special: bool = False,
        keep: int | None = None,
        on_piece: Callable[[str], None] | None = None,
        draft: "DraftParams | None" = None,
        messages: Sequence[dict] | None = None,
    ) -> GenerationHandle:
        """Generate from `prompt` in the background. `add_bos`/`parse_special` apply to text
        only; `keep`: on a full context keep the first `keep` tokens and drop half the rest;
        `draft`: speculative decoding's settings (the local engine's; a server drafts by its
        own); `messages`: the same conversation as chat messages (a server without
        completions is sent these; the local engine uses the prompt)."""
        ...
