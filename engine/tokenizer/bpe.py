"""Byte-level BPE merging (`tokenizer.ggml.model == "gpt2"`), as llama.cpp does it.

Each pre-tokenized word is written in the byte-level alphabet (see `byte_unicode`) and split
into characters; the adjacent pair with the **lowest merge rank** (its index in
`tokenizer.ggml.merges`; ties: the leftmost pair) is merged until no pair has a rank. Each
final piece is its token; a piece that is not in the vocabulary is looked up one raw byte at
a time and bytes without a token are dropped (which a complete byte-level vocabulary never
needs).

Words are merged independently, so a cache of word -> ids is exact; code repeats its words.
"""

from __future__ import annotations

import heapq
from typing import Sequence

from .byte_unicode import bytes_to_unicode_text

_SHORT = 48  # words up to this many characters rescan their pair list; longer use a heap
_CACHE_LIMIT = 200_000  # entries; the cache is emptied when it grows past this
_CACHE_MAX_LEN = 256


def merge_ranks(merges: Sequence[str]) -> dict[str, int]:
    """Rank of each merge, keyed by the merge text "A B".

    llama.cpp splits each entry at the first space after index 0 and keys on (A, B). Pieces
    of byte-level text never contain a space (0x20 is written 'Ġ'), so looking up
    `left + " " + right` finds exactly the entries whose split is (left, right). The first
    occurrence of a duplicate entry keeps its rank, as with std::map::emplace.
    """
    n = len(merges)
    return dict(zip(reversed(merges), range(n - 1, -1, -1)))


class BpeModel:
    def __init__(self, token_to_id: dict[str, int], merges: Sequence[str], ignore_merges: bool) -> None:
        self._token_to_id = token_to_id
        self._ranks = merge_ranks(merges)
        self._ignore_merges = ignore_merges
        # Raw single bytes as token texts (the reader keeps undecodable bytes as surrogate
        # escapes), for pieces that are not tokens.
        self._byte_ids: list[int | None] = [
            token_to_id.get(bytes([b]).decode("utf-8", "surrogateescape")) for b in range(256)
        ]
        self._cache: dict[str, tuple[int, ...]] = {}

    def tokenize(self, words: Sequence[str], out: list[int]) -> None:
        """Append the ids of each pre-tokenized word (plain text) to `out`."""
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        for word in words:
            ids = cache.get(word)
            if ids is None:
                ids = self._tokenize_word(word)
                if len(word) <= _CACHE_MAX_LEN:  # long words rarely repeat
                    cache[word] = ids
            out.extend(ids)

    def _tokenize_word(self, word: str) -> tuple[int, ...]:
        text = bytes_to_unicode_text(word.encode("utf-8"))
        token_to_id = self._token_to_id
        if self._ignore_merges:
            tid = token_to_id.get(text)
            if tid is not None:
                return (tid,)
        pieces = self._merge_short(text) if len(text) <= _SHORT else self._merge_heap(text)
        out: list[int] = []
        for piece in pieces:
            tid = token_to_id.get(piece)
            if tid is not None:
                out.append(tid)
                continue
            for b in piece.encode("utf-8"):
                bid = self._byte_ids[b]
                if bid is not None:
                    out.append(bid)
        return tuple(out)

    def _merge_short(self, text: str) -> list[str]:
        syms = list(text)
        if len(syms) < 2:
            return syms
        ranks = self._ranks
        pair = [ranks.get(syms[i] + " " + syms[i + 1]) for i in range(len(syms) - 1)]
        while True:
            best = None
            at = -1
            for i, r in enumerate(pair):
                # strictly smaller: on a tie the leftmost pair wins, as in llama.cpp's heap
                if r is not None and (best is None or r < best):
                    best = r
                    at = i
            if at < 0:
                return syms
            merged = syms[at] + syms[at + 1]
            syms[at] = merged
            del syms[at + 1]
            del pair[at]
            if at > 0:
                pair[at - 1] = ranks.get(syms[at - 1] + " " + merged)
            if at < len(syms) - 1:
                pair[at] = ranks.get(merged + " " + syms[at + 1])

    def _merge_heap(self, text: str) -> list[str]:
        # Linked list of symbols; a heap entry (rank, left, right, merged text) is stale
        # when the two symbols no longer concatenate to the text it was pushed with.
        syms = list(text)
        n = len(syms)
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        ranks = self._ranks
        heap: list[tuple[int, int, int, str]] = []

        def push(left: int, right: int) -> None:
            if left >= 0 and right >= 0:
                rank = ranks.get(syms[left] + " " + syms[right])
                if rank is not None:
                    heapq.heappush(heap, (rank, left, right, syms[left] + syms[right]))

        for i in range(n - 1):
            push(i, i + 1)
        while heap:
            _, left, right, merged = heapq.heappop(heap)
            lt, rt = syms[left], syms[right]
            if not lt or not rt or lt + rt != merged:
                continue
            syms[left] = merged
            syms[right] = ""
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            push(prev[left], left)
            push(left, nxt[left])
        return [s for s in syms if s]
