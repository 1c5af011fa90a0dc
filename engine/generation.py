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

Plain data and a Protocol: importing this module loads no model code (no numba), so the TUI
and the test fakes can name the interface without paying for the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Union, runtime_checkable

if TYPE_CHECKING:
    from .generate import GenerationHandle
    from .sampling import SamplingParams
    from .speculative import DraftParams


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
    ) -> "GenerationHandle":
        """Generate from `prompt` in the background. `add_bos`/`parse_special` apply to text
        only; `keep`: on a full context keep the first `keep` tokens and drop half the rest;
        `draft`: speculative decoding's settings (the local engine's; a server drafts by its
        own); `messages`: the same conversation as chat messages (a server without
        completions is sent these; the local engine uses the prompt)."""
        ...
