"""Speculative decoding from the prompt: draft tokens by n-gram lookup, verify them in one batch.

An answer that edits a file repeats most of the file. When the last few tokens of the text
(an n-gram) occurred before — in the prompt, in the answer so far, or in an earlier answer
of the session — the tokens that followed them then are a cheap guess of what follows now
(llama.cpp's `ngram-simple` / prompt-lookup decoding). The generator evaluates the sampled
token together with the guessed ones in one forward pass: the weights are read once for all
of them, so every accepted guess is almost free. `accept` decides which guesses stand, with
the sampler's own chain and its random stream used exactly as without drafting, so the text
is the same with drafting as without (greedy, and sampling with a seed).

Pieces:
- `DraftParams`: the knobs, with llama.cpp's names (`--draft-max`, `--draft-min`,
  `--spec-type`, `--draft-ngram-min/max`).
- `NgramIndex`: where each n-gram of a token sequence was last followed by something.
- `PromptLookupDrafter`: the index over the current context plus a bounded one over earlier
  answers, and the guess length that pays (measured step times, estimated acceptance).
- `accept`: the verification rule (one rule for greedy and sampling).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .errors import UsageError
from .sampling import Sampler

SPEC_TYPES = ("none", "ngram")


@dataclass(frozen=True)
class DraftParams:
    """How drafting runs. draft_max 0 or spec_type "none" turns it off.

    draft_max: at most this many tokens guessed per step (llama.cpp's --draft-max, 16).
    draft_min: a guess shorter than this is not worth a batch (llama.cpp's --draft-min, 0).
    ngram_max / ngram_min: the lookup tries the last ngram_max tokens first, then shorter
    n-grams down to ngram_min. A one-token match is a weak guess, but a short guess costs
    little beside a plain step (default model: T(2) = 1.15 T(1)) and the drafter learns per
    n-gram size how often it is right, declining what does not pay: 1 by default (edit
    prompts, with over without drafting, median 1.76 -> 1.9-2.0).
    """

    spec_type: str = "ngram"
    draft_max: int = 16
    draft_min: int = 0
    ngram_max: int = 4
    ngram_min: int = 1

    def __post_init__(self) -> None:
        if self.spec_type not in SPEC_TYPES:
            raise UsageError(f"spec_type must be one of {', '.join(SPEC_TYPES)}, got {self.spec_type!r}")
        for name in ("draft_max", "draft_min", "ngram_max", "ngram_min"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise UsageError(f"{name} must be a whole number >= 0, got {value!r}")
        if self.draft_max > 256:
            raise UsageError(f"draft_max must be at most 256, got {self.draft_max}")
        if not 1 <= self.ngram_min <= self.ngram_max <= 32:
            raise UsageError(
                f"the n-gram sizes must satisfy 1 <= ngram_min <= ngram_max <= 32, got {self.ngram_min} and {self.ngram_max}"
            )
        if self.draft_min > self.draft_max:
            raise UsageError(f"draft_min ({self.draft_min}) must not exceed draft_max ({self.draft_max})")

    @property
    def enabled(self) -> bool:
        return self.spec_type != "none" and self.draft_max > 0


class NgramIndex:
    """For each n-gram (n in [n_min, n_max]) of a growing token list, the position right after
    its latest occurrence that has a continuation (and, with `every`, after each of its
    occurrences, in order). Appending is O(n_max) dict updates."""

    def __init__(self, n_min: int, n_max: int, limit: int | None = None, every: bool = False) -> None:
        self.n_min, self.n_max = n_min, n_max
        self.limit = limit  # keep at most this many tokens (the oldest are forgotten)
        self.tokens: list[int] = []
        self._offset = 0  # how many tokens were forgotten from the front
        self._next: dict[tuple[int, ...], int] = {}
        self._every: dict[tuple[int, ...], list[int]] | None = {} if every else None

    def __len__(self) -> int:
        return len(self.tokens)

    def extend(self, tokens: Sequence[int]) -> None:
        for t in tokens:
            self.append(int(t))

    def append(self, token: int) -> None:
        toks = self.tokens
        toks.append(token)
        end = len(toks) - 1  # `token` is the continuation of every n-gram ending just before it
        for n in range(self.n_min, min(self.n_max, end) + 1):
            key = tuple(toks[end - n : end])
            self._next[key] = end + self._offset
            if self._every is not None:
                self._every.setdefault(key, []).append(end)
        if self.limit is not None and len(toks) > 2 * self.limit:
            self._forget(len(toks) - self.limit)

    def _forget(self, count: int) -> None:
        del self.tokens[:count]
        self._offset += count
        self._next = {k: v for k, v in self._next.items() if v >= self._offset}

    def continuation(self, key: Sequence[int], count: int) -> list[int]:
        """Up to `count` tokens that followed the latest earlier occurrence of `key`."""
        at = self._next.get(tuple(key))
        if at is None:
            return []
        at -= self._offset
        return self.tokens[at : at + count]

    def continuation_from(self, key: Sequence[int], count: int, after: int) -> tuple[int, list[int]]:
        """(where it starts, up to `count` tokens) following the first occurrence of `key`
        whose continuation starts at `after` or later, else the latest; (-1, []) if none.
        Needs `every` (and no `limit`)."""
        assert self._every is not None and self.limit is None
        starts = self._every.get(tuple(key))
        if not starts:
            return -1, []
        i = bisect.bisect_left(starts, after)
        at = starts[i] if i < len(starts) else starts[-1]
        return at, self.tokens[at : at + count]


class PromptLookupDrafter:
    """Guesses the next tokens of a context from where its last n-gram occurred before.

    `reset(context)` indexes a new context (the prompt); `push` adds each token as it is
    accepted; `draft()` returns the guess for what follows the context. Earlier answers are
    kept in a bounded second index (`remember_answer`), so a follow-up turn that repeats an
    earlier answer drafts from it even when the prompt no longer holds it.

    How long a guess is worth: a verification step of m tokens costs T(m) (measured, see
    `observe`), and a guess of k tokens yields 1 + a + a^2 + ... + a^k tokens on average when
    each guessed token is right with probability a (estimated per matched n-gram size from the
    recent results, see `feedback`). The drafter proposes the k that maximises tokens per
    second, and nothing when a plain step is faster: text with nothing to copy costs only an
    occasional one-token probe (every PROBE_EVERY declined guesses), so the estimate recovers
    when the answer starts copying again.
    """

    HISTORY_TOKENS = 16384  # earlier answers remembered for drafting
    PROBE_EVERY = 32  # declined guesses between two probes
    DECAY = 0.9  # weight of the past in the acceptance and timing estimates
    PRIOR_SLOPE = 0.35  # before any batch was timed: T(m) = T(1) * (1 + PRIOR_SLOPE * (m - 1))

    def __init__(self, params: DraftParams) -> None:
        self.params = params
        self.context = NgramIndex(params.ngram_min, params.ngram_max, every=True)
        self.history = NgramIndex(params.ngram_min, params.ngram_max, limit=self.HISTORY_TOKENS)
        self._follow = 0  # where in the context the copy being made goes on (see draft)
        self._source = -1  # where the last guess came from in the context (-1: elsewhere)
        # per matched n-gram size: decayed counts of right guesses and of rejections
        self._right: dict[int, float] = {}
        self._wrong: dict[int, float] = {}
        self._times: dict[int, float] = {}  # batch size -> decayed mean seconds
        self._declined = 0
        self._last_n = 0

    def reset(self, context: Sequence[int]) -> None:
        self.context = NgramIndex(self.params.ngram_min, self.params.ngram_max, every=True)
        self.context.extend(context)
        self._declined = 0
        self._follow = 0
        self._source = -1

    def push(self, token: int) -> None:
        self.context.append(token)

    def remember_answer(self, tokens: Sequence[int]) -> None:
        self.history.extend(tokens)

    def observe(self, batch: int, seconds: float) -> None:
        """The time one forward pass of `batch` tokens took."""
        old = self._times.get(batch)
        self._times[batch] = seconds if old is None else self.DECAY * old + (1 - self.DECAY) * seconds

    def acceptance(self, n: int) -> float:
        """The estimated chance that a token guessed from an n-gram match is right."""
        right, wrong = self._right.get(n, 1.0), self._wrong.get(n, 1.0)  # prior: 1/2
        return right / (right + wrong)

    def _cost(self, m: int) -> float:
        """T(m): measured, else interpolated from the widest measured batch, else the prior."""
        t1 = self._times.get(1)
        if t1 is None:  # nothing timed yet: relative costs from the prior
            return 1.0 + self.PRIOR_SLOPE * (m - 1)
        if m in self._times:
            return self._times[m]
        wider = [k for k in self._times if k > 1]
        if wider:
            k = max(wider)
            slope = max(0.0, (self._times[k] - t1) / (k - 1))
        else:
            slope = self.PRIOR_SLOPE * t1
        return t1 + slope * (m - 1)

    def best_length(self, available: int, n: int) -> int:
        """The guess length (0 = none) with the most expected tokens per second."""
        a = self.acceptance(n)
        best, best_rate = 0, 1.0 / self._cost(1)
        expected, power = 1.0, 1.0
        for k in range(1, available + 1):
            power *= a
            expected += power
            rate = expected / self._cost(k + 1)
            if rate > best_rate:
                best, best_rate = k, rate
        return best

    def draft(self, room: int) -> list[int]:
        """The guessed continuation of the context: at most `room` tokens, or []."""
        p = self.params
        if not p.enabled or room <= 0:
            return []
        count = min(room, p.draft_max)
        toks = self.context.tokens
        # An answer that copies a file copies it in order: of the places the last n-gram
        # occurred, the first at or after where the last accepted guess ended is the one
        # being copied (the latest occurrence is often a repeat in the answer itself, or a
        # line like it elsewhere in the file).
        for n in range(min(p.ngram_max, len(toks)), p.ngram_min - 1, -1):
            key = toks[len(toks) - n :]
            source, guess = self.context.continuation_from(key, count, self._follow)
            if not guess:
                source, guess = -1, self.history.continuation(key, count)
            if guess:
                break
        else:
            return []
        k = self.best_length(len(guess), n)
        if k == 0:
            self._declined += 1
            if self._declined < self.PROBE_EVERY:
                return []
            k = 1  # a probe keeps the estimate honest
        self._declined = 0
        if k < max(p.draft_min, 1):
            return []
        self._last_n = n
        self._source = source
        return guess[:k]

    def feedback(self, drafted: int, accepted: int) -> None:
        """Learn from how much of the last guess was accepted."""
        if drafted == 0:
            return
        n = self._last_n
        if self._source >= 0:
            self._follow = self._source + accepted
        self._right[n] = self.DECAY * self._right.get(n, 1.0) + accepted
        self._wrong[n] = self.DECAY * self._wrong.get(n, 1.0) + (1 if accepted < drafted else 0)


def accept(
    sampler: Sampler, logits: np.ndarray, draft: Sequence[int], history: list[int]
) -> list[int]:
    """The tokens a verification step produces, in order.

    `logits[i]` are the logits after `history + draft[:i]` (len(draft) + 1 rows). At each
    position the sampler picks a token exactly as it would without drafting (its whole
    chain, one random number per token); a drafted token stands while it equals the pick.
    The first pick that differs (or, when all are kept, one more pick after the last) ends
    the list, so it is the accepted draft plus exactly one token the model chose.

    For a deterministic draft this is the speculative sampling rule: the guess x is kept with
    probability p(x), and on rejection the token is distributed as p with x removed and
    renormalised — and since the random stream is used exactly as without drafting, a seed
    gives the same text with drafting as without, not only the same distribution.
    `history` is not modified.
    """
    out: list[int] = []
    seen = list(history)
    for i, guess in enumerate(draft):
        token = sampler.sample(logits[i], seen)
        out.append(token)
        if token != guess:
            return out
        seen.append(token)
    out.append(sampler.sample(logits[len(draft)], seen))
    return out
