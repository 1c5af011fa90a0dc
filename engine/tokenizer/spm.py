"""SentencePiece-style tokenization (`tokenizer.ggml.model == "llama"`), as llama.cpp does it.

The text (spaces already escaped to U+2581 '▁') is split into characters; the adjacent pair
whose concatenation is a vocabulary token with the **highest score** is merged (ties: the
leftmost pair), again and again until no pair forms a token. Every final symbol is its token,
or, failing that, one `<0xXX>` byte token per UTF-8 byte (byte fallback).

Two exact speed-ups over doing that on a whole file at once:
- Chunking. Two neighbouring characters can only ever end up in one token if some token
  contains them side by side. Where no token does (in Llama's vocabulary: before every '▁'
  that follows another character, so roughly at every word), no merge can cross, so the
  chunks can be merged independently and the result is the same as for the whole text.
- A cache of chunk -> ids, because source code repeats its words and indentation.
"""

from __future__ import annotations

import heapq
from typing import Sequence

# Chunks up to this many characters are merged by rescanning the pair list after each
# merge (fast for short lists); longer ones use a heap with stale-entry checks.
_SHORT = 48
_CACHE_LIMIT = 200_000  # entries; the cache is emptied when it grows past this
_CACHE_MAX_LEN = 256


class SpmModel:
    def __init__(
        self,
        token_to_id: dict[str, int],
        scores: Sequence[float],
        byte_ids: Sequence[int | None],
    ) -> None:
        self._token_to_id = token_to_id
        # Score of the token a merged text would become (the id the text maps to).
        self._score_of = {text: float(scores[tid]) for text, tid in token_to_id.items()}
        self._byte_ids = byte_ids
        # Every pair of adjacent characters inside any token (see "Chunking" above).
        self._pairs = {t[i : i + 2] for t in token_to_id for i in range(len(t) - 1)}
        self._cache: dict[str, tuple[int, ...]] = {}

    # ---- public -------------------------------------------------------------------------------
    def tokenize(self, text: str, out: list[int]) -> None:
        """Append the ids of `text` (already '▁'-escaped) to `out`."""
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        for chunk in self._chunks(text):
            ids = cache.get(chunk)
            if ids is None:
                ids = tuple(self._tokenize_chunk(chunk))
                if len(chunk) <= _CACHE_MAX_LEN:  # long chunks rarely repeat
                    cache[chunk] = ids
            out.extend(ids)

    # ---- internals ----------------------------------------------------------------------------
    def _chunks(self, text: str) -> list[str]:
        pairs = self._pairs
        cuts = [i for i in range(1, len(text)) if text[i - 1 : i + 1] not in pairs]
        if not cuts:
            return [text] if text else []
        chunks = []
        start = 0
        for cut in cuts:
            chunks.append(text[start:cut])
            start = cut
        chunks.append(text[start:])
        return chunks

    def _tokenize_chunk(self, chunk: str) -> list[int]:
        symbols = self._merge_short(chunk) if len(chunk) <= _SHORT else self._merge_heap(chunk)
        out: list[int] = []
        token_to_id = self._token_to_id
        for sym in symbols:
            tid = token_to_id.get(sym)
            if tid is not None:
                out.append(tid)
                continue
            # A symbol that is not a token was never merged, so it is one character: emit
            # its UTF-8 bytes (surrogate escapes stand for the raw bytes of broken input).
            for b in sym.encode("utf-8", "surrogateescape"):
                bid = self._byte_ids[b]
                if bid is not None:
                    out.append(bid)
        return out

    def _merge_short(self, chunk: str) -> list[str]:
        syms = list(chunk)
        if len(syms) < 2:
            return syms
        score_of = self._score_of
        pair = [score_of.get(syms[i] + syms[i + 1]) for i in range(len(syms) - 1)]
        while True:
            best = None
            at = -1
            for i, s in enumerate(pair):
                # strictly greater: on a tie the leftmost pair wins, as in llama.cpp's heap
                if s is not None and (best is None or s > best):
                    best = s
                    at = i
            if at < 0:
                return syms
            merged = syms[at] + syms[at + 1]
            syms[at] = merged
            del syms[at + 1]
            del pair[at]
            if at > 0:
                pair[at - 1] = score_of.get(syms[at - 1] + merged)
            if at < len(syms) - 1:
                pair[at] = score_of.get(merged + syms[at + 1])

    def _merge_heap(self, chunk: str) -> list[str]:
        # A doubly linked list of symbols; heap entries (-score, left, right, length) go
        # stale when either side has changed since they were pushed.
        text = list(chunk)
        n = len(text)
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        nxt[-1] = -1
        score_of = self._score_of
        heap: list[tuple[float, int, int, int]] = []

        def push(left: int, right: int) -> None:
            if left >= 0 and right >= 0:
                merged = text[left] + text[right]
                s = score_of.get(merged)
                if s is not None:
                    # max-heap on score; equal scores pop the smaller left index first
                    heapq.heappush(heap, (-s, left, right, len(merged)))

        for i in range(n - 1):
            push(i, i + 1)

        while heap:
            _, left, right, size = heapq.heappop(heap)
            lt, rt = text[left], text[right]
            if not lt or not rt or len(lt) + len(rt) != size:
                continue
            text[left] = lt + rt
            text[right] = ""
            nxt[left] = nxt[right]
            if nxt[right] >= 0:
                prev[nxt[right]] = left
            push(prev[left], left)
            push(left, nxt[left])
        return [t for t in text if t]
