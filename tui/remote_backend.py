"""The TUI's backend for a model on an OpenAI-compatible server (``codeup-tui --endpoint URL``).

It implements ``tui.backend.Backend`` over ``engine.remote.RemoteClient``, so the app works
unchanged: ``load`` asks the server for its model and context size, ``count_tokens`` uses
the server's ``/tokenize`` (or an estimate, which the summary flags so the status bar labels
it), ``start`` streams the answer. Its extras: ``models`` (the server's, which F2 offers
for ``remote_model``) and ``start(messages=...)`` (the conversation as chat messages, for a
server without completions). Plain Python, no Textual; the engine module is imported
in ``load`` (a worker thread), so the screen is up first.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tui.backend import GenerationHandleLike
from tui.model_loader import ModelSummary, ProgressCallback


class RemoteBackend:
    """A server at ``url``; ``api_key`` None: none sent (the CLI reads $CODEUP_API_KEY)."""

    def __init__(
        self,
        url: str,
        api_key: str | None = None,
        *,
        n_ctx: int | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        model: str | None = None,
    ) -> None:
        self.url = url
        self.api_key = api_key
        self.model = model
        """The server's model to ask for (None: the first it lists)."""
        self.n_ctx_override = n_ctx
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.client: Any = None
        self._n_ctx = 0
        self._lock = threading.Lock()

    def load(self, progress: ProgressCallback, cancel: threading.Event) -> ModelSummary:
        from engine.remote import RemoteClient

        timeouts = {name: value for name, value in (("connect_timeout", self.connect_timeout),
                                                    ("read_timeout", self.read_timeout)) if value is not None}
        client = RemoteClient(self.url, self.api_key, n_ctx=self.n_ctx_override, model=self.model, **timeouts)
        progress("loading", f"connecting to {client.endpoint.url}…")
        info = client.probe()
        client.count_tokens("codeup")  # learn now whether counts will be the server's or estimates
        notes = [f"served by {client.endpoint.url} (OpenAI-compatible API)"]
        if not info.n_ctx_known:
            notes.append(f"the server does not say its context size: {info.n_ctx} tokens assumed "
                         "(--ctx-size sets it)")
        if not client.has_tokenize:
            notes.append("the server cannot count tokens (no /tokenize): counts are estimates, marked ~")
        with self._lock:
            self.client, self._n_ctx = client, info.n_ctx
        return ModelSummary(
            name=info.model,
            file_type="remote",
            n_ctx=info.n_ctx,
            format_name="OpenAI-compatible API",
            architecture=f"remote: {client.endpoint.display}",
            path=Path(client.endpoint.display),
            notes=tuple(notes),
            location=f"remote: {client.endpoint.display}",
            estimated_counts=not client.has_tokenize,
        )

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    takes_messages = True
    """`start` takes the conversation as chat messages too (for a server without completions)."""

    @property
    def models(self) -> tuple[str, ...]:
        """The models the server lists (empty before loading, or when it lists none)."""
        client = self.client
        return tuple(client.models) if client is not None else ()

    @property
    def estimated_counts(self) -> bool:
        client = self.client
        return client is not None and not client.has_tokenize

    def _client(self) -> Any:
        client = self.client
        if client is None:
            from engine.errors import UsageError

            raise UsageError("not connected to the server yet")
        return client

    def count_tokens(self, text: str, *, add_bos: bool | None = False, parse_special: bool = False) -> int:
        count, _estimated = self._client().count_tokens(text, add_bos=add_bos, parse_special=parse_special)
        return count

    def start(
        self,
        prompt: str,
        *,
        params: Any = None,
        max_tokens: int = -1,
        stop: Sequence[str] = (),
        add_bos: bool | None = None,
        parse_special: bool = False,
        messages: Sequence[dict] | None = None,
        draft: Any = None,
    ) -> GenerationHandleLike:
        # `draft` is the local engine's: a server drafts (or not) by its own settings.
        return self._client().start(prompt, params, max_tokens=max_tokens, stop=stop, add_bos=add_bos,
                                    parse_special=parse_special, messages=messages)

    def close(self) -> None:
        # Nothing is held between requests: each has its own connection (a running answer is
        # cancelled by the app, which closes its stream).
        with self._lock:
            self.client, self._n_ctx = None, 0
