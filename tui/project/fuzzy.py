"""Fuzzy matching of paths for the file finder: the query's characters in order, in the
path, case-insensitively; matches at word starts, after ``/`` and in consecutive runs score
higher, and shorter paths break ties."""

from __future__ import annotations

from collections.abc import Iterable

_SEPARATORS = "/_-. "


def fuzzy_score(query: str, candidate: str) -> tuple[int, list[int]] | None:
    """(score, matched positions), or None when ``query`` is not a subsequence."""
    if not query:
        return 0, []
    q = query.lower().replace(" ", "")
    text = candidate.lower()
    positions: list[int] = []
    start = 0
    for ch in q:
        found = text.find(ch, start)
        if found < 0:
            return None
        positions.append(found)
        start = found + 1
    # Greedy left-to-right matching (cheap, good enough for paths), then bonuses.
    score = 0
    previous = -2
    name_start = text.rfind("/") + 1
    for index, pos in enumerate(positions):
        if pos == previous + 1:
            score += 5
        if pos == 0 or text[pos - 1] in _SEPARATORS:
            score += 8
        if pos >= name_start:
            score += 3
        if index == 0:
            score -= min(pos, 10) // 2
        previous = pos
    if q in text[name_start:]:
        score += 20
    score -= len(candidate) // 16
    return score, positions


def fuzzy_filter(query: str, candidates: Iterable[str], limit: int = 200) -> list[tuple[str, list[int]]]:
    """The best matches first (all candidates in order when the query is empty)."""
    if not query.strip():
        return [(c, []) for c in list(candidates)[:limit]]
    scored = []
    for candidate in candidates:
        result = fuzzy_score(query, candidate)
        if result is not None:
            scored.append((-result[0], len(candidate), candidate, result[1]))
    scored.sort()
    return [(candidate, positions) for _s, _l, candidate, positions in scored[:limit]]
