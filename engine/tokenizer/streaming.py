"""Decode generated tokens one at a time without ever emitting a broken character.

A token may end in the middle of a UTF-8 sequence (an emoji is often four `<0xXX>` byte
tokens, or two byte-level BPE tokens), so `push` returns only the text whose bytes are
complete and keeps the rest for the next token; `flush` returns what is left (an incomplete
sequence at the very end becomes U+FFFD, as `decode` would make it).

The rules are `Tokenizer.decode`'s (hidden control tokens, the leading-space rule of SPM
vocabularies, a leading BOS dropped), so that the concatenation of everything `push` and
`flush` return equals `decode(ids, skip_special, clean_spaces=False)`. The one thing it does
not do is the `clean_spaces` pass of some BPE vocabularies (GPT-2, Llama 3), a rewrite of the
whole text that llama.cpp also leaves out when it streams.
"""

from __future__ import annotations

import codecs
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tokenizer import Tokenizer


class IncrementalDecoder:
    def __init__(
        self,
        tokenizer: "Tokenizer",
        skip_special: bool = True,
        strip_leading_space: bool | None = None,
    ) -> None:
        """`strip_leading_space`: None follows `decode` (SPM vocabularies drop the space that
        encoding added in front of the first word); pass False when streaming a continuation
        whose first token's space belongs to the text (after a prompt, for example)."""
        self._tokenizer = tokenizer
        self._skip_special = skip_special
        self._strip_default = strip_leading_space
        self.reset()

    def reset(self) -> None:
        """Start a new text."""
        self._utf8 = codecs.getincrementaldecoder("utf-8")("replace")
        self._n_pushed = 0
        self._lead = 0  # index of the token whose piece loses a leading space
        strip = self._strip_default
        self._strip = self._tokenizer.add_space_prefix if strip is None else strip

    def push(self, token_id: int) -> str:
        """Add one token; return the newly completed text (possibly "")."""
        tok = self._tokenizer
        index = self._n_pushed
        self._n_pushed += 1
        if index == 0 and self._skip_special and tok.add_bos and token_id == tok.bos_id:
            # decode() drops one leading BOS and then, by default, keeps the next space
            if self._strip_default is None:
                self._strip = False
            self._lead = 1
            return ""
        piece = tok.token_to_piece(token_id, special=not self._skip_special)
        if index == self._lead and self._strip and piece.startswith(b" "):
            piece = piece[1:]
        return self._utf8.decode(piece, False) if piece else ""

    def flush(self) -> str:
        """The rest of the text (an unfinished UTF-8 sequence becomes U+FFFD)."""
        return self._utf8.decode(b"", True)
