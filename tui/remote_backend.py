"""The TUI's backend for a model on an OpenAI-compatible server (``codeup-tui --endpoint URL``).

Only construction: ``load`` makes an ``engine.remote.RemoteClient``, asks the server for its
model and context size and whether it can count tokens (``/tokenize``; else counts are
estimates, which the summary flags so the status bar labels them), and hands the client over
as the ``generator`` (``engine.generation.TextGenerator``, as the local one). Its extra:
``models`` (the server's, which F2 offers for ``remote_model``). Plain Python, no Textual;
the engine module is imported in ``load`` (a worker thread), so the screen is up first.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from codeup_tui.engine.generation import TextGenerator
from .model_loader import ModelSummary, ProgressCallback


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
        self._lock = threading.Lock()

    def load(self, progress: ProgressCallback, cancel: threading.Event) -> ModelSummary:
        from codeup_tui.engine.remote import RemoteClient

        timeouts = {name: value for name, value in (("connect_timeout", self.connect_timeout),
                                                    ("read_timeout", self.read_timeout)) if value is not None}
        client = RemoteClient(self.url, self.api_key, n_ctx=self.n_ctx_override, model=self.model, **timeouts)
        progress("loading", f"connecting to {client.endpoint.url}…")
        info = client.probe()
        client.tokenize_prompt("codeup")  # learn now whether counts will be the server's or estimates
        notes = [f"served by {client.endpoint.url} (OpenAI-compatible API)"]
        if not info.n_ctx_known:
            notes.append(f"the server does not say its context size: {info.n_ctx} tokens assumed "
                         "(--ctx-size sets it)")
        if not client.has_tokenize:
            notes.append("the server cannot count tokens (no /tokenize): counts are estimates, marked ~")
        with self._lock:
            self.client = client
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
    def generator(self) -> TextGenerator | None:
        """The connected client (``engine.generation.TextGenerator``); None before ``load``."""
        return self.client

    @property
    def models(self) -> tuple[str, ...]:
        """The models the server lists (empty before loading, or when it lists none)."""
        client = self.client
        return tuple(client.models) if client is not None else ()

    def close(self) -> None:
        # Nothing is held between requests: each has its own connection (a running answer is
        # cancelled by the app, which closes its stream).
        with self._lock:
            self.client = None
