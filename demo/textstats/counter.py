"""Split text into words and sentences, and count them."""

from __future__ import annotations

import re
from collections import Counter

_WORD = re.compile(r"[A-Za-z']+")
_SENTENCE_END = re.compile(r"[.!?]+")


def words(text: str) -> list[str]:
    """The words of `text`, lower-cased, in the order they appear."""
    return [word.lower() for word in _WORD.findall(text)]


def word_counts(text: str) -> Counter[str]:
    """How many times each word occurs."""
    return Counter(words(text))


def sentences(text: str) -> list[str]:
    """The sentences of `text`, split at '.', '!' and '?', without empty ones."""
    parts = _SENTENCE_END.split(text)
    return [part.strip() for part in parts if part.strip()]


def average_word_length(text: str) -> float:
    """The mean number of letters per word."""
    found = words(text)
    return sum(len(word) for word in found) / len(found)
