"""From a running generation to the screen: the answer's pieces coalesced into messages, and
the line an exchange ends with ("done · 212 tokens · 31.0 t/s · draft 64%").

``relay_answer`` runs in the generation worker; it only posts messages (``tui.messages``), so
the UI thread is the only one touching widgets. Plain code: a test drives it with a fake
handle and a list as the mailbox.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from textual.message import Message

from .messages import GenerationFinished, GenerationProgress
from .model_loader import describe_error

FLUSH_SECONDS = 0.05
"""New text is posted at most this often (tokens are coalesced: one message per token would
swamp the UI at 100 tokens/s)."""
TIMINGS_SECONDS = 0.25
"""...and the live timings at least this often, even with no new text (prompt processing)."""

STATE_TEXT = {
    "eos": "done",
    "stop": "done",
    "limit": "stopped at the token limit",
    "context": "stopped: the context is full",
    "cancelled": "stopped",
}


def relay_answer(handle: Any, exchange_id: int, post: Callable[[Message], Any], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
    """Read ``handle``'s pieces until it ends, posting ``GenerationProgress`` at most once per
    ``FLUSH_SECONDS``, then one ``GenerationFinished`` with the whole text and why it ended."""
    pending: list[str] = []
    last_post = last_timings = clock()
    while True:
        piece = handle.next_piece(timeout=FLUSH_SECONDS)
        if piece is None:
            break
        if piece:
            pending.append(piece)
        now = clock()
        if now - last_post >= FLUSH_SECONDS and (pending or now - last_timings >= TIMINGS_SECONDS):
            post(GenerationProgress(exchange_id, "".join(pending), handle.timings()))
            pending.clear()
            last_post = last_timings = now
    if pending:
        post(GenerationProgress(exchange_id, "".join(pending), handle.timings()))
    result = handle.result
    reason = str(getattr(result.stop_reason, "value", result.stop_reason))
    error = describe_error(result.error) if result.error is not None else None
    post(GenerationFinished(exchange_id, result.text, reason, error, handle.timings()))


def draft_text(timings: Any) -> str:
    """"draft 78%": the share of speculatively guessed tokens the model accepted ("" when
    nothing was guessed, or the backend does not draft)."""
    acceptance = getattr(timings, "acceptance", None)
    return "" if acceptance is None else f"draft {acceptance:.0%}"


def final_state(finished: GenerationFinished) -> tuple[str, str]:
    """The exchange's state ("done", "stopped" or "error") and the line shown under it."""
    if finished.stop_reason == "error":
        return "error", f"error: {finished.error or 'unknown'}"
    text = STATE_TEXT.get(finished.stop_reason, finished.stop_reason)
    state = "stopped" if finished.stop_reason == "cancelled" else "done"
    timings = finished.timings
    if timings is not None:
        n = timings.generated_tokens
        text += f" · {n} token" + ("" if n == 1 else "s")
        if timings.generation_tokens_per_second:
            text += f" · {timings.generation_tokens_per_second:.1f} t/s"
        if (drafts := draft_text(timings)):
            text += f" · {drafts}"
    return state, text
